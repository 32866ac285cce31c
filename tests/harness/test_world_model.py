"""The packaged shapes-world model against its recorded held-out slice (a regression anywhere in the stack shows).

The model folder comes from ``MMADA_WORLD_MODEL`` (default: the packaged ``mmada_bench/assets/mmada-world``);
its ``recorded_slice.json`` was written by the build's packaging step (``world.evaluate.record_slice``)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mmada_bench.models.smoke import WORLD_MODEL_DIR
from mmada_bench.world.evaluate import RECORDED_SLICE, run_slice

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


def test_the_recorded_model_reads_its_images(recorded):
    # the recorded slice itself must be above chance: POPE F1 / MME accuracy of a model that ignores the image
    # sit near 50 (the shapes-world issue's first failure); this guards against recording such a model
    for task, score in recorded["scores"].items():
        assert score["n_errors"] == 0 and score["value"] >= 75.0, (task, score)
