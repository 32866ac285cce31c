"""Sharded evaluation: two CPU processes (torchrun, gloo) give the single-process results; resume per shard."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mmada_bench.run.distributed import shard_items
from mmada_bench.run.runner import run
from mmada_bench.run.types import RunSettings

REPO = Path(__file__).resolve().parents[2]
TASK = "scaleout_arith"
ITEM_COLUMNS = ["item_id", "index", "prompt_hash", "prompt", "gold", "raw_output", "output", "extracted_answer",
                "score", "extracted", "scores", "n_generated_tokens", "nfe", "error"]
BOARD_COLUMNS = ["run_id", "model_family", "task", "metric", "filter", "value", "ci_low", "ci_high", "n", "n_errors",
                 "prompt_hash", "split"]


@pytest.fixture(scope="module")
def tiny_task(tmp_path_factory):
    """A zero-shot arithmetic card (gsm8k filters/metric) with 9 local items: short prompts keep the smoke model fast."""
    root = tmp_path_factory.mktemp("scaleout")
    card = (REPO / "mmada_bench" / "tasks" / "gsm8k.yaml").read_text()
    card = card.replace("name: gsm8k", f"name: {TASK}").replace("local_dir: gsm8k", f"local_dir: {TASK}")
    card = re.sub(r"fewshot: \{n: 5[^}]*\}", "fewshot: {n: 0, sampler: first_n}", card)
    (root / "cards").mkdir()
    (root / "cards" / f"{TASK}.yaml").write_text(card)
    data = root / "data" / TASK
    data.mkdir(parents=True)
    rows = [{"question": f"What is {a} plus {a + 3}?", "answer": f"{a} + {a + 3} = {2 * a + 3}\n#### {2 * a + 3}"}
            for a in range(9)]
    for split in ("test", "train"):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_shard_items_follow_single_process_batches():
    class P:
        def __init__(self, i, error=None):
            self.i, self.error = i, error

    items = [P(0), P(1), P(2, "bad row"), P(3), P(4), P(5), P(6)]
    shards = [shard_items(items, 2, r, 2) for r in range(2)]
    assert [p.i for p in shards[0]] == [0, 1, 2, 5, 6] and [p.i for p in shards[1]] == [3, 4]
    assert [[p.i for p in shard_items(items, 1, r, 3)] for r in range(3)] == [[0, 2, 4], [1, 5], [3, 6]]
    assert shard_items(items, 4, 0, 1) == items


def _items(out: Path):
    (path,) = (out / "items").glob(f"*/{TASK}.parquet")
    return path.parent.name, pq.read_table(path).to_pandas()[ITEM_COLUMNS]


def _board(out: Path):
    frame = pq.read_table(out / "leaderboard.parquet").to_pandas()[BOARD_COLUMNS]
    return frame.sort_values(["metric", "filter"]).reset_index(drop=True)


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_processes_match_single_process_and_resume_per_shard(tiny_task, tmp_path, monkeypatch):
    monkeypatch.setenv("MMADA_TASKS_DIR", str(tiny_task / "cards"))
    data = str(tiny_task / "data")
    env = {**os.environ, "MMADA_TASKS_DIR": str(tiny_task / "cards"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}  # this checkout's code
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(
        ["torchrun", "--standalone", "--nproc_per_node", "2", str(REPO / "tests" / "harness" / "scale_out_worker.py"), TASK, data,
         str(tmp_path / "dist")], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rank 0 of 2" in proc.stdout and "rank 1 of 2" in proc.stdout

    # single-process references, same settings
    single = {"dummy": run(RunSettings(tasks=[TASK], model="dummy", data_dir=data, batch_size=2,
                                       output_dir=str(tmp_path / "single" / "dummy"), progress=False)),
              "smoke": run(RunSettings(tasks=[TASK], data_dir=data, limit=4,
                                       output_dir=str(tmp_path / "single" / "smoke"), progress=False))}
    for name, outcome in single.items():
        dist_out = tmp_path / "dist" / name
        run_id, dist_items = _items(dist_out)
        assert run_id == outcome.run_id
        shards = sorted(p.name for p in (dist_out / "runs" / run_id / "items").glob("*.jsonl"))
        assert shards == [f"{TASK}.rank0.jsonl", f"{TASK}.rank1.jsonl"]
        _, single_items = _items(tmp_path / "single" / name)
        assert dist_items.equals(single_items), name
        assert _board(dist_out).equals(_board(tmp_path / "single" / name)), name

    # 9 items in length-sorted batches of 2 (7, 8 are longest): rank 1 holds batches 1 and 3 (items 0-1, 4-5);
    # it kept one record
    summaries = re.findall(r"generated \d+ items, \d+ taken from earlier progress", proc.stdout)
    assert summaries[-1] == "generated 3 items, 6 taken from earlier progress", summaries
    dummy_store = next((tmp_path / "dist" / "dummy" / "runs").glob(f"*/items/{TASK}.rank1.jsonl"))
    assert len(dummy_store.read_text().splitlines()) == 4
