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


#: headline floors of a model that reads its images: POPE F1 (a fraction) of one that ignores them is at most 0.67
#: (always "yes" on the balanced split), the shapes-world issue's first failure
READS_ITS_IMAGES = {"pope": 0.75}


def test_the_recorded_model_reads_its_images(recorded):
    # guards against recording a model that answers at chance
    assert set(READS_ITS_IMAGES) <= set(recorded["scores"]), sorted(recorded["scores"])
    for task, score in recorded["scores"].items():
        assert score["n_errors"] == 0, (task, score)
        if task in READS_ITS_IMAGES:
            assert score["value"] >= READS_ITS_IMAGES[task], (task, score)
