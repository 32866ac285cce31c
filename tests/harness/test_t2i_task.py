"""Text-to-image task: smoke model + t2i-ci preset, PNGs + metadata + contact sheet, resume, CLIP / ImageReward rows,
missing weights, bad prompts. One generation run is shared by the module; the other runs resume it (scoring only)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

open_clip = pytest.importorskip("open_clip")

from mmada_bench import cli  # noqa: E402
from mmada_bench.cards.discovery import get_task  # noqa: E402
from mmada_bench.models.loader import resolve_model  # noqa: E402
from mmada_bench.models.smoke import SMOKE_MODEL_DIR  # noqa: E402
from mmada_bench.run import image_outputs as generation  # noqa: E402
from mmada_bench.run.planning import plan_task  # noqa: E402
from mmada_bench.run.runner import run  # noqa: E402
from mmada_bench.run.types import RunSettings  # noqa: E402

GOOD = ["a red apple on a table", "two dogs running in the snow", "a lighthouse at night"]


@pytest.fixture(scope="module")
def short_text():
    """A short t2i text prefix keeps the smoke model's sequences small (the layout is the same)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(generation, "MAX_TEXT_LEN", 24)
        yield


@pytest.fixture(scope="module")
def smoke_model():
    return resolve_model(str(SMOKE_MODEL_DIR))


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory):
    """Three good prompts, one empty prompt, one line that is not JSON."""
    path = tmp_path_factory.mktemp("prompts") / "mini.jsonl"
    lines = [json.dumps({"id": f"g{i}", "prompt": p}) for i, p in enumerate(GOOD)]
    lines.insert(1, json.dumps({"id": "empty", "prompt": "   "}))
    lines.append("{not json")
    path.write_text("\n".join(lines) + "\n")
    return path


def _settings(out, prompt_file, scorers, **kw) -> RunSettings:
    base = dict(tasks=["t2i"], output_dir=str(out), preset="ci", batch_size=2, prompts=str(prompt_file),
                scorers=scorers, progress=False)
    return RunSettings(**{**base, **kw})


@pytest.fixture(scope="module")
def scorers(tiny_clip, imagereward_dir):
    return {"clip_model": tiny_clip.name, "clip_pretrained": "none", "clip_checkpoint": str(tiny_clip.checkpoint),
            "imagereward_dir": str(imagereward_dir)}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, short_text, smoke_model, prompt_file, scorers):
    out = tmp_path_factory.mktemp("t2i_out")
    outcome = run(_settings(out, prompt_file, scorers), model=smoke_model)
    return out, outcome


def _image_dir(out, outcome):
    return out / "runs" / outcome.run_id / "images" / "t2i"


def _items(out, outcome) -> pd.DataFrame:
    return pd.read_parquet(out / "items" / outcome.run_id / "t2i.parquet")


def test_generation_writes_pngs_metadata_and_contact_sheet(first_run):
    out, outcome = first_run
    images = _image_dir(out, outcome)
    assert outcome.generated == 3 and outcome.resumed == 0  # 3 images; the 2 bad rows are records without a model call
    pngs = sorted(p.name for p in images.glob("0*.png"))
    assert len(pngs) == len(GOOD)
    meta = [json.loads(line) for line in (images / "metadata.jsonl").read_text().splitlines()]
    assert [m["prompt"] for m in meta] == GOOD
    assert sorted(m["file"] for m in meta) == pngs
    for m in meta:
        with Image.open(images / m["file"]) as png:
            assert png.format == "PNG" and png.size == (32, 32)
            assert png.text["prompt"] == m["prompt"] and int(png.text["seed"]) == m["seed"]
    seeds = {m["item_id"]: m["seed"] for m in meta}
    assert seeds == {"g0": 1234 + 0, "g1": 1234 + 2, "g2": 1234 + 3}  # seed + item index (the empty row is index 1)
    with Image.open(images / "contact_sheet.png") as sheet:
        assert sheet.width >= 2 * 128 and sheet.height >= 2 * 128


def test_bad_rows_are_error_records_not_fatal(first_run):
    out, outcome = first_run
    items = _items(out, outcome).set_index("item_id")
    assert "empty prompt" in items.loc["empty", "error"]
    bad = items[items["error"].fillna("").str.contains("not valid JSON")]
    assert len(bad) == 1
    assert items.loc[[f"g{i}" for i in range(3)], "error"].isna().all()
    for row in [r for r in outcome.rows if r["metric"] in ("clip_score", "imagereward")]:
        assert row["n"] == 3 and row["n_errors"] == 2
    oracle = {r["metric"]: r for r in outcome.rows if r["filter"] == "world-oracle"}  # no world prompt: no value
    assert oracle["geneval_world"]["n"] == 0 and oracle["geneval_world"]["value"] != oracle["geneval_world"]["value"]
    assert oracle["geneval_world_unparsable"]["value"] == 1.0 and oracle["geneval_world_unparsable"]["n"] == 3


def test_clip_rows_match_a_direct_computation(first_run, tiny_clip):
    out, outcome = first_run
    model = tiny_clip.model
    rows = [r for r in outcome.rows if r["metric"] == "clip_score"]
    assert len(rows) == 1 and rows[0]["is_primary"] and rows[0]["unit"] == "score"
    assert rows[0]["filter"] == f"{tiny_clip.name}:none@tiny.pt"
    items = _items(out, outcome).dropna(subset=["score"]).sort_values("index")
    _, _, preprocess = open_clip.create_model_and_transforms(tiny_clip.name, pretrained=None)
    pixels = torch.stack([preprocess(Image.open(out / "runs" / outcome.run_id / f).convert("RGB"))
                          for f in items["raw_output"]])
    with torch.no_grad():
        image_features = model.encode_image(pixels)
        text_features = model.encode_text(open_clip.get_tokenizer(tiny_clip.name)(list(items["prompt"])))
    cos = torch.nn.functional.cosine_similarity(image_features, text_features, dim=-1)
    expected = (100 * cos.clamp(min=0)).numpy()
    key = f"clip_score/{rows[0]['filter']}"
    per_image = np.array([json.loads(s)[key] for s in items["scores"]])
    np.testing.assert_allclose(per_image, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(items["score"].to_numpy(), per_image)
    assert rows[0]["value"] == pytest.approx(float(expected.mean()), abs=1e-4)
    board = pd.read_parquet(out / "leaderboard.parquet")
    stored = board[(board.run_id == outcome.run_id) & (board.metric == "clip_score")].iloc[0]
    assert stored["dataset_fingerprint"] == outcome.rows[0]["dataset_fingerprint"]
    assert len(stored["dataset_fingerprint"]) == 64


def test_imagereward_rows_through_the_fixture_folder(first_run, imagereward_dir):
    from mmada_scoring.imagereward import ImageRewardScorer

    out, outcome = first_run
    rows = [r for r in outcome.rows if r["metric"] == "imagereward"]
    assert len(rows) == 1 and not rows[0]["is_primary"]
    items = _items(out, outcome).dropna(subset=["score"]).sort_values("index")
    images = [Image.open(out / "runs" / outcome.run_id / f).convert("RGB") for f in items["raw_output"]]
    expected = ImageRewardScorer.from_folder(imagereward_dir).score(list(items["prompt"]), images)
    per_image = [json.loads(s)["imagereward/ImageReward-v1.0"] for s in items["scores"]]
    np.testing.assert_allclose(per_image, expected, atol=1e-5, rtol=0)
    assert rows[0]["value"] == pytest.approx(float(np.mean(expected)), abs=1e-5)


def test_rerun_keeps_images_and_regenerates_only_missing(first_run, smoke_model, prompt_file, scorers):
    out, outcome = first_run
    images = _image_dir(out, outcome)
    before = {p.name: p.read_bytes() for p in images.glob("0*.png")}
    again = run(_settings(out, prompt_file, scorers), model=smoke_model)
    assert again.run_id == outcome.run_id and again.generated == 0 and again.resumed == 5
    victim = sorted(before)[1]
    (images / victim).unlink()
    third = run(_settings(out, prompt_file, scorers), model=smoke_model)
    assert third.generated == 1
    assert {p.name: p.read_bytes() for p in images.glob("0*.png")} == before  # same seed -> same image


def test_images_do_not_depend_on_batching(first_run, tmp_path, smoke_model, prompt_file):
    out, outcome = first_run
    single = run(_settings(tmp_path, prompt_file, {"clip_checkpoint": str(tmp_path / "none.pt")}, batch_size=1),
                 model=smoke_model)
    a = {p.name: p.read_bytes() for p in _image_dir(out, outcome).glob("0*.png")}
    b = {p.name: p.read_bytes() for p in _image_dir(tmp_path, single).glob("0*.png")}
    assert a == b and len(a) == len(GOOD)


def test_missing_weights_clear_error_and_images_kept(first_run, prompt_file, scorers, tiny_clip, capsys):
    out, outcome = first_run
    args = ["run", "--tasks", "t2i", "--output-dir", str(out), "--batch-size", "2", "--prompts", str(prompt_file),
            "--no-progress", "--clip-model", tiny_clip.name, "--clip-pretrained", "none",
            "--clip-checkpoint", str(out / "missing" / "tiny.pt"), "--imagereward-dir", scorers["imagereward_dir"],
            "--preset", "ci", "--model", str(SMOKE_MODEL_DIR)]  # the settings of first_run: the same run, resumed
    status = cli.main(args)
    err = capsys.readouterr().err
    assert status == 1
    assert "--clip-checkpoint" in err and str(out / "missing" / "tiny.pt") in err and "images are kept" in err
    assert len(list(_image_dir(out, outcome).glob("0*.png"))) == len(GOOD)
    board = pd.read_parquet(out / "leaderboard.parquet")
    assert set(board[board.run_id == outcome.run_id].metric) >= {"imagereward"}
    items = _items(out, outcome).dropna(subset=["raw_output"])
    assert all("clip_score" not in s for s in items["scores"])  # this run's item table: ImageReward only


def test_show_prints_paper_baselines_with_protocol_difference(first_run, capsys):
    out, outcome = first_run
    assert cli.main(["show", outcome.run_id, "--all", "--output-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "clip_score/" in text and "imagereward/ImageReward-v1.0" in text
    mmada = [line for line in text.splitlines() if "MMaDA-8B " in line and ("CLIP Score" in line or "ImageReward" in line)]
    assert len(mmada) >= 2 and all(line.lstrip().startswith("*") and "private 50K" in line for line in mmada)
    assert any("32.46" in line for line in mmada) and any("1.15" in line for line in mmada)


def test_unreadable_prompt_source_is_reported(tmp_path, smoke_model):
    outcome = run(_settings(tmp_path, tmp_path / "nope.txt", {}), model=smoke_model)
    assert "nope.txt" in outcome.task_errors["t2i"] and not outcome.rows


def test_txt_prompts_bad_bytes_become_error_items(tmp_path):
    path = tmp_path / "set.txt"
    path.write_bytes(b"a cat\n\n\xff\xfe broken\na dog\n")
    plan = plan_task(get_task("t2i"), RunSettings(tasks=["t2i"], prompts=str(path), preset="ci"))
    assert [p.prompt for p in plan.items if not p.error] == ["a cat", "a dog"]
    assert [p.error for p in plan.items if p.error][0].count("not valid UTF-8") == 1
    assert plan.data.split == "set" and plan.preset.name == "t2i-ci"


def test_default_prompt_set_and_presets():
    card = get_task("t2i")
    plan = plan_task(card, RunSettings(tasks=["t2i"]))
    assert plan.preset.name == "t2i-paper" and plan.preset.settings.timesteps == 50
    assert plan.preset.settings.guidance_scale == 3.5
    assert 30 <= len(plan.items) <= 50 and not any(p.error for p in plan.items)
    assert len({p.prompt for p in plan.items}) == len(plan.items)
    assert plan.data.source.startswith("packaged:")
    assert plan_task(card, RunSettings(tasks=["t2i"], variant="fast")).preset.name == "t2i-fast"
    with pytest.raises(ValueError, match="text preset"):
        plan_task(card, RunSettings(tasks=["t2i"], preset="fast"))


def test_text_model_gets_a_clear_error(tmp_path, prompt_file):
    outcome = run(RunSettings(tasks=["t2i"], model="dummy", output_dir=str(tmp_path), preset="ci",
                              prompts=str(prompt_file), progress=False))
    assert "cannot generate images" in outcome.task_errors["t2i"]


def test_parquet_prompts_with_another_column_name(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "parti.parquet"
    pq.write_table(pa.table({"Prompt": ["a red cube", "", "a blue ball"], "Category": ["a", "b", "c"]}), path)
    plan = plan_task(get_task("t2i"), RunSettings(tasks=["t2i"], prompts=str(path), preset="t2i-fast"))
    assert [p.prompt for p in plan.items] == ["a red cube", "", "a blue ball"]
    assert [bool(p.error) for p in plan.items] == [False, True, False]
    assert plan.data.fingerprint == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    no_prompt = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"words": ["x"]}), no_prompt)
    with pytest.raises(ValueError, match="no prompt column"):
        plan_task(get_task("t2i"), RunSettings(tasks=["t2i"], prompts=str(no_prompt)))


def test_sampler_rows_with_own_generators_match_single_rows(smoke_model):
    from mmada_ref.prompting import Prompting
    from mmada_ref.sampling.image import generate_image_codes
    from mmada_ref.sampling.presets import get_preset

    tokens, n = smoke_model.tokens, smoke_model.model.config.num_vq_tokens
    prompting = Prompting(tokens, 16)
    texts = [smoke_model.tokenizer(t)["input_ids"] for t in GOOD[:2]]
    settings = get_preset("t2i-ci").settings

    def codes(rows, seeds):
        canvas = torch.full((len(rows), n), tokens.mask, dtype=torch.long)
        ids, mask = prompting.t2i(rows, canvas)
        uncond, umask = prompting.t2i_uncond(len(rows), canvas)
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        return generate_image_codes(smoke_model.model, ids, mask, uncond, umask, tokens, settings, n, generator=gens).codes

    both = codes(texts, [7, 8])
    assert torch.equal(both[0], codes(texts[:1], [7])[0]) and torch.equal(both[1], codes(texts[1:], [8])[0])
    with pytest.raises(ValueError, match="one per row"):
        codes(texts, [7])
