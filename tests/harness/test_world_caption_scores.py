"""Per-item CIDEr of a Flickr30k-format run (the pairing unit of item 7's paired comparisons) and the
shuffled-reference control, on items of the bundled world split."""
from __future__ import annotations

import pandas as pd
import pytest

from mmada_bench.data.loading import WORLD_DIR
from mmada_bench.world.evaluate import per_item_cider, shuffled_reference_cider


@pytest.fixture()
def items_path(tmp_path):
    refs = pd.read_parquet(WORLD_DIR / "flickr30k" / "test.parquet", columns=["img_id", "caption"]).head(12)
    # half the items answered with one of their own references, half with an unrelated sentence
    outputs = [list(c)[0] if i % 2 == 0 else "seven apples on a wooden table" for i, c in enumerate(refs["caption"])]
    path = tmp_path / "flickr30k.parquet"
    pd.DataFrame({"item_id": refs["img_id"].astype(str), "output": outputs, "error": [None] * len(refs)}).to_parquet(path)
    return path


def test_per_item_cider_averages_to_the_run_cider_and_ranks_the_items(items_path):
    per_item = per_item_cider(items_path, WORLD_DIR)
    items = pd.read_parquet(items_path)
    assert list(per_item) == list(items["item_id"])
    control = shuffled_reference_cider(items_path, WORLD_DIR)
    assert sum(per_item.values()) / len(per_item) == pytest.approx(control["own"] / 100.0)
    good = [per_item[i] for k, i in enumerate(items["item_id"]) if k % 2 == 0]
    bad = [per_item[i] for k, i in enumerate(items["item_id"]) if k % 2 == 1]
    assert min(good) > max(bad)
