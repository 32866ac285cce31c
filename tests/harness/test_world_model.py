"""The packaged shapes-world model against its recorded held-out slice (a regression anywhere in the stack shows).

The model folder comes from ``MMADA_WORLD_MODEL`` (default: the packaged ``mmada_bench/assets/mmada-world``);
its ``recorded_slice.json`` was written by the build's packaging step (``world.evaluate.record_slice``)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mmada_bench.commands.show import format_show
from mmada_bench.models.smoke import DEFAULT_MODEL_DIR, WORLD_MODEL_DIR
from mmada_bench.results import baselines
from mmada_bench.results.leaderboard import read_leaderboard
from mmada_bench.run.runner import run
from mmada_bench.run.types import RunSettings
from mmada_bench.world.evaluate import RECORDED_SLICE, run_slice
from mmada_bench.world.package import WORLD_LABEL

MODEL = Path(os.environ.get("MMADA_WORLD_MODEL", WORLD_MODEL_DIR))
pytestmark = pytest.mark.skipif(not (MODEL / RECORDED_SLICE).is_file(),
                                reason=f"no packaged world model with {RECORDED_SLICE} at {MODEL}")


@pytest.fixture(scope="module")
def recorded():
    return json.loads((MODEL / RECORDED_SLICE).read_text())


@pytest.fixture(scope="module")
def measured(recorded, tmp_path_factory):
    return run_slice(MODEL, tmp_path_factory.mktemp("world_slice"), recorded["tasks"], recorded["limit"])


def test_the_slice_scores_are_the_recorded_ones(recorded, measured):
    assert measured["scores"] == recorded["scores"]


def test_every_slice_answer_is_the_recorded_one(recorded, measured):
    for task, outputs in recorded["outputs"].items():
        differ = {i: (o, measured["outputs"][task].get(i)) for i, o in outputs.items()
                  if measured["outputs"][task].get(i) != o}
        assert not differ, f"{task}: {len(differ)} of {len(outputs)} answers changed, e.g. {next(iter(differ.items()))}"


#: headline floors of a model that reads its images: POPE F1 (a fraction) of one that ignores them is at most 0.67
#: (always "yes" on the balanced split), the shapes-world issue's first failure
READS_ITS_IMAGES = {"pope": 0.75}


#: what the packaged model may weigh: the issue's 20 MB in all, and 5 MB for any one file the repository ships
MAX_MODEL_BYTES = 20_000_000
MAX_FILE_BYTES = 5_000_000


def test_the_packaged_model_is_small_enough_to_ship():
    sizes = {p.relative_to(MODEL).as_posix(): p.stat().st_size for p in MODEL.rglob("*") if p.is_file()}
    assert sum(sizes.values()) <= MAX_MODEL_BYTES, sizes
    too_big = {name: size for name, size in sizes.items() if size > MAX_FILE_BYTES}
    assert not too_big, too_big


def test_the_recorded_model_reads_its_images(recorded):
    # guards against recording a model that answers at chance
    assert set(READS_ITS_IMAGES) <= set(recorded["scores"]), sorted(recorded["scores"])
    for task, score in recorded["scores"].items():
        assert score["n_errors"] == 0, (task, score)
        if task in READS_ITS_IMAGES:
            assert score["value"] >= READS_ITS_IMAGES[task], (task, score)


@pytest.mark.skipif(MODEL != WORLD_MODEL_DIR, reason="MMADA_WORLD_MODEL points at another model than the packaged one")
def test_a_run_without_a_model_answers_with_the_packaged_world_model(recorded, tmp_path):
    # the default `run --tasks pope,mme` is the world model, labelled, and no longer at chance
    assert DEFAULT_MODEL_DIR == WORLD_MODEL_DIR
    limit = recorded["limit"]
    outcome = run(RunSettings(tasks=["pope"], limit=limit, output_dir=str(tmp_path), batch_size=8, progress=False))
    assert outcome.model_label == WORLD_LABEL and not outcome.task_errors
    primary = next(r for r in outcome.rows if r.get("is_primary") and not r.get("breakdown"))
    assert primary["split"] == "world" and primary["n"] == limit
    assert primary["value"] >= READS_ITS_IMAGES["pope"], primary
    # never shown beside the paper's baselines: they were measured on the real benchmark, not on this world
    shown = format_show(read_leaderboard(tmp_path), baselines.load())
    assert "published baselines not shown" in shown and "published baselines (" not in shown, shown


#: floor of ``geneval_world`` on the single-object prompts of the slice below: a model that does not draw scores 0
#: (the shipped model of round 14 drew 0 / 98), and the issue's target on the whole split is 0.6
DRAWS_SINGLE_OBJECTS = 0.5
T2I_SLICE = 24  # the first world prompts; the single-object categories among them are read from the result


@pytest.mark.skipif(MODEL != WORLD_MODEL_DIR, reason="MMADA_WORLD_MODEL points at another model than the packaged one")
def test_the_packaged_model_draws_single_objects(tmp_path):
    from mmada_bench.world.evaluate import evaluate_t2i

    result = evaluate_t2i(MODEL, tmp_path, limit=T2I_SLICE, preset="t2i-repo")
    single = {c: s for c, s in result["by_category"].items() if c.startswith("single")}
    n = sum(s["n"] for s in single.values())
    assert n > 0, result["by_category"]
    drawn = sum(s["value"] * s["n"] for s in single.values()) / n
    assert drawn >= DRAWS_SINGLE_OBJECTS, result["by_category"]
    assert result["clip_control"]["diff_ci"][0] > 0, result["clip_control"]  # drawn to the prompt, not any prompt
