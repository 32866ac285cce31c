"""Run by tests/test_scale_out.py under ``torchrun --nproc_per_node 2``: three CLI runs in one launch
(dummy model, smoke model, then the dummy run again after rank 1's shard store lost records)."""
from __future__ import annotations

import sys
from pathlib import Path

from mmada_bench.cli import main
from mmada_bench.run import distributed


def cli_run(task: str, data_dir: str, out: Path, *extra: str) -> None:
    status = main(["run", "--tasks", task, "--data-dir", data_dir, "--output-dir", str(out), "--no-progress", *extra])
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    task, data_dir, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    dist = distributed.context("cpu")
    print(f"== rank {dist.rank} of {dist.world_size}", flush=True)
    print("== dummy", flush=True)
    cli_run(task, data_dir, out / "dummy", "--model", "dummy", "--batch-size", "2")
    print("== smoke", flush=True)
    cli_run(task, data_dir, out / "smoke", "--limit", "4")
    dist.barrier()
    if dist.rank == 1:  # simulate a rank killed mid-way: keep only its first stored item
        store = next((out / "dummy" / "runs").glob(f"*/items/{task}.rank1.jsonl"))
        store.write_text(store.read_text().splitlines(keepends=True)[0])
    dist.barrier()
    print("== resume", flush=True)
    cli_run(task, data_dir, out / "dummy", "--model", "dummy", "--batch-size", "2")
