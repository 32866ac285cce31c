"""The code-readability probe of the world MAGVIT (mmada_bench/world/code_probe.py)."""
import numpy as np
import pytest
import torch

from mmada_bench.world.code_probe import cell_examples, fit_probe
from mmada_bench.world.scene import CELLS, COLOURS, SHAPES, sample_scene


def _cell_coded(scenes, side=8):
    """Codes where every position holds (cell index * 100 + position in the cell), so a slice is recognisable."""
    codes = torch.zeros(len(scenes), side, side, dtype=torch.long)
    half = side // 2
    for c, (x0, y0) in enumerate(CELLS.values()):
        r0, c0 = y0 * side // 32, x0 * side // 32
        codes[:, r0:r0 + half, c0:c0 + half] = c * 100 + torch.arange(half * half).view(half, half)
    return codes.view(len(scenes), -1)


def test_cell_examples_take_each_object_s_own_cell():
    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng) for _ in range(20)]
    x, labels = cell_examples(scenes, _cell_coded(scenes))
    objects = [o for s in scenes for o in s.objects]
    assert len(x) == len(objects) == len(labels["shape"]) == len(labels["colour"])
    for row, obj, shape, colour in zip(x, objects, labels["shape"], labels["colour"]):
        assert set((row // 100).tolist()) == {list(CELLS).index(obj.cell)}
        assert SHAPES[shape] == obj.shape and list(COLOURS)[colour] == obj.colour


def test_cell_examples_reject_codes_that_are_not_an_even_square():
    with pytest.raises(ValueError, match="even square"):
        cell_examples([], torch.zeros(1, 63, dtype=torch.long))


@pytest.mark.parametrize("kind", ["mlp", "bag"])
def test_probe_reads_a_label_the_codes_carry_and_not_one_they_do_not(kind):
    g = torch.Generator().manual_seed(0)
    readable = torch.randint(0, 3, (800,), generator=g)
    x = readable[:, None] * 10 + torch.randint(0, 20, (800, 16), generator=g)  # label-specific code ranges
    unrelated = torch.randint(0, 3, (800,), generator=g)
    good = fit_probe(kind, x[:600], readable[:600], x[600:], readable[600:], steps=300)
    bad = fit_probe(kind, x[:600], unrelated[:600], x[600:], unrelated[600:], steps=300)
    assert good["test"] > 0.95
    assert bad["test"] < bad["chance"] + 0.1


def test_code_probe_cli_refuses_a_folder_without_a_magvit(tmp_path, capsys):
    from mmada_bench.world.cli import main

    assert main(["code-probe", "--magvit", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --magvit") and "magvit_config.json" in err and "\n" not in err
