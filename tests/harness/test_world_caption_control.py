"""The shuffled-reference CIDEr control of Flickr30k-format runs (``world.evaluate.shuffled_reference_cider``)."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from mmada_bench.data.loading import WORLD_DIR
from mmada_bench.world.evaluate import shuffled_reference_cider

pytest.importorskip("pycocoevalcap")

DATA = Path(os.environ.get("MMADA_WORLD_DATA", WORLD_DIR))
N_ITEMS = 20  # the first images of the split's Flickr30k file


def _items(tmp_path, outputs) -> Path:
    """An items Parquet in the harness's schema (the columns the control reads) for the first ``N_ITEMS`` images."""
    refs = pd.read_parquet(DATA / "flickr30k" / "test.parquet", columns=["img_id", "caption"]).head(N_ITEMS)
    items = pd.DataFrame({"item_id": [str(i) for i in refs["img_id"]], "output": outputs(refs), "error": None})
    path = tmp_path / "flickr30k.parquet"
    items.to_parquet(path)
    return path


def test_captions_of_their_own_images_score_above_the_shuffled_control(tmp_path):
    path = _items(tmp_path, lambda refs: [list(c)[0] for c in refs["caption"]])
    result = shuffled_reference_cider(path, DATA)
    assert result["n"] == N_ITEMS
    assert result["own"] > result["shuffled"] >= 0 and result["ratio"] > 1, result


def test_a_model_that_writes_nothing_has_no_ratio(tmp_path):
    # both scores at 0: the ratio is undefined, never an infinite "improvement"
    result = shuffled_reference_cider(_items(tmp_path, lambda refs: [""] * len(refs)), DATA)
    assert result["own"] == result["shuffled"] == 0 and result["ratio"] is None, result
