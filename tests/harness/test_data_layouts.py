"""Dataset layouts users have: Hugging Face hub shards, save_to_disk folders, and split paths that are folders."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmada_bench.cards.discovery import get_task
from mmada_bench.data.loading import SMOKE_DIR, DatasetSchemaError, load_task_data
from mmada_ref.jsonl import read_jsonl

datasets = pytest.importorskip("datasets")


def _smoke_rows(task: str) -> list[dict]:
    return pq.read_table(SMOKE_DIR / task / "test.parquet").to_pylist()


def _ids(data) -> list[str]:
    return [item.item_id for item in data.items]


@pytest.fixture(scope="module")
def reference():
    return load_task_data(get_task("pope"), "smoke")


@pytest.mark.parametrize("pattern", ["data/test-{i:05d}-of-{n:05d}.parquet", "test-{i:05d}-of-{n:05d}.parquet"])
def test_hub_shards(tmp_path, reference, pattern):
    rows = _smoke_rows("pope")
    n = 3
    for i in range(n):
        path = tmp_path / "pope" / pattern.format(i=i, n=n)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows[i * len(rows) // n:(i + 1) * len(rows) // n]), path)
    data = load_task_data(get_task("pope"), tmp_path)
    assert _ids(data) == _ids(reference) and "3 shards" in data.source
    assert all(not item.error for item in data.items)


@pytest.mark.parametrize("as_dict", [False, True])
def test_save_to_disk(tmp_path, reference, as_dict):
    dataset = datasets.Dataset.from_list(_smoke_rows("pope"))
    if as_dict:
        datasets.DatasetDict({"test": dataset}).save_to_disk(str(tmp_path / "pope"))
    else:
        dataset.save_to_disk(str(tmp_path / "pope" / "test"))
    data = load_task_data(get_task("pope"), tmp_path)
    assert _ids(data) == _ids(reference) and "save_to_disk" in data.source
    assert isinstance(data.items[0].doc["image"]["bytes"], bytes)


def test_split_path_that_is_a_folder_is_a_clear_error(tmp_path):
    (tmp_path / "pope" / "test.parquet").mkdir(parents=True)
    with pytest.raises(DatasetSchemaError, match="is a folder"):
        load_task_data(get_task("pope"), tmp_path)


def test_gsm8k_fewshot_pool_from_shards(tmp_path):
    for split in ("test", "train"):
        rows = [r for r in read_jsonl(SMOKE_DIR / "gsm8k" / f"{split}.jsonl")]
        path = tmp_path / "gsm8k" / "data" / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), path)
    data = load_task_data(get_task("gsm8k"), tmp_path)
    smoke = load_task_data(get_task("gsm8k"), "smoke")
    assert _ids(data) == [f"test-{i}" for i in range(len(smoke.items))]
    assert len(data.fewshot_pool) == len(smoke.fewshot_pool) > 0


def test_hub_lookups_are_offline_even_when_the_hub_was_imported_online(monkeypatch, tmp_path):
    """huggingface_hub reads HF_HUB_OFFLINE once, at import; a dataset id missing from the cache must still come back
    as "not cached" at once, never as a Hub request with retries."""
    import datasets
    from huggingface_hub import constants

    from mmada_bench.data.hf import load_cached

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert load_cached("no-such-owner/no-such-dataset", None, "test") is None
    assert constants.HF_HUB_OFFLINE is True and datasets.config.HF_HUB_OFFLINE is True
