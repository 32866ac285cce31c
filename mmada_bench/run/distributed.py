"""Sharded evaluation across processes (``torchrun`` / ``accelerate launch``).

A plain ``python -m mmada_bench run`` is one process and nothing here changes it. When the launcher
sets ``WORLD_SIZE > 1`` (and ``RANK`` / ``LOCAL_RANK``), :func:`context` joins the process group
through accelerate's ``PartialState`` (``cpu=True`` for ``--device cpu``: gloo; otherwise NCCL on
``cuda:<LOCAL_RANK>``) and the run is split:

* the items of a task are cut into the batches a single process would make (``--batch-size``
  prompts in the length order of :mod:`mmada_bench.run.batching`) and batch ``b`` goes to rank
  ``b % world``, so every batch, and with the per-item seeds every output, equals the single-process
  one; ``--batch-size auto`` takes the smallest choice of the ranks;
* each rank stores its items in ``runs/<run_id>/items/<task>.rank<r>.jsonl`` (resumable per shard);
  items found in any other store of the run (another rank, an earlier run with another world size)
  are not generated again;
* after a barrier rank 0 reads every store of the task, orders the records as the single-process
  run would, and writes the Parquet files and the leaderboard rows; other ranks write nothing.
"""
from __future__ import annotations

import atexit
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from mmada_bench.results.store import read_store
from mmada_bench.run.batching import length_order
from mmada_bench.run.progress import is_failed_generation


@dataclass
class DistContext:
    """Rank / world size of this process and the collectives the runner needs."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    state: Any = None  # accelerate.PartialState when distributed

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.enabled:
            self.state.wait_for_everyone()

    def all_gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order (``[obj]`` in a single process)."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist  # only with a process group (torch already loaded)

        out: list = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def device_for(self, device: str) -> str:
        """``cuda`` -> ``cuda:<LOCAL_RANK>`` when distributed; other devices unchanged."""
        if self.enabled and device == "cuda":
            return f"cuda:{self.local_rank}"
        return device

    @property
    def lock_name(self) -> str:
        """Name of the run folder's lock file for this rank."""
        return f".lock.rank{self.rank}" if self.enabled else ".lock"

    def store_path(self, run_dir: Path, task: str) -> Path:
        """This rank's per-item jsonl for ``task``."""
        suffix = f".rank{self.rank}" if self.enabled else ""
        return Path(run_dir) / "items" / f"{task}{suffix}.jsonl"


_CONTEXT: Optional[DistContext] = None


def context(device: str = "cpu") -> DistContext:
    """The process's :class:`DistContext`, from ``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK`` (built once)."""
    global _CONTEXT
    if _CONTEXT is not None:
        return _CONTEXT
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        _CONTEXT = DistContext()
        return _CONTEXT
    from accelerate import (
        PartialState,  # heavy; only under torchrun / accelerate launch
    )

    # plain PartialState() stays at world size 1 on a CPU-only machine; cpu=True joins the gloo group
    state = PartialState(cpu=str(device).startswith("cpu"))
    if state.num_processes != world:
        raise RuntimeError(f"WORLD_SIZE={world} but the process group has {state.num_processes} processes; "
                           f"launch with torchrun --nproc_per_node N or accelerate launch --multi_gpu --num_processes N")
    _CONTEXT = DistContext(rank=state.process_index, world_size=world, local_rank=state.local_process_index,
                           state=state)
    atexit.register(_close_process_group)
    return _CONTEXT


def _close_process_group() -> None:
    """Destroy the process group before the interpreter exits (a gloo group left alive can abort the process
    at exit with "terminate called without an active exception", after every result is written)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """Whether this process is rank 0 (always, without torchrun / accelerate)."""
    return context().is_main


def shard_items(items: list, batch_size: int, rank: int, world_size: int, lengths: Optional[dict] = None) -> list:
    """The items of ``rank``: items without a planning error are cut into batches of ``batch_size`` (as one
    process would batch them: by ``lengths[item_id]`` longest first, else in plan order) and batch ``b`` goes to
    rank ``b % world_size``; items with a planning error (no model call) go round-robin by position. The shard
    keeps plan order."""
    if world_size <= 1:
        return list(items)
    askable = [p for p in items if not p.error]
    if lengths is not None:
        askable = length_order(askable, [lengths[p.item.item_id] for p in askable])
    owner = {id(p): (j // batch_size) % world_size for j, p in enumerate(askable)}
    owner.update({id(p): k % world_size for k, p in enumerate(p for p in items if p.error)})
    return [p for p in items if owner[id(p)] == rank]


def task_stores(run_dir: Path, task: str) -> list[Path]:
    """Every per-item store of ``task`` in the run: ``<task>.jsonl`` and ``<task>.rank<r>.jsonl``."""
    folder = Path(run_dir) / "items"
    return sorted([p for p in folder.glob(f"{task}.rank*.jsonl") if p.name[len(task) + 5:-6].isdigit()]
                  + [p for p in [folder / f"{task}.jsonl"] if p.exists()])


def stored_elsewhere(run_dir: Path, task: str, own: Path, retry_errors: bool = False) -> set[str]:
    """Item ids finished in the task's other stores (not this rank's own file)."""
    done: set[str] = set()
    for path in task_stores(run_dir, task):
        if path != own:
            done |= {k for k, r in read_store(path).items() if not (retry_errors and is_failed_generation(r))}
    return done


def my_plan(plan, dist: DistContext, batch_size: int, run_dir: Path, retry_errors: bool = False,
            lengths: Optional[dict] = None):
    """``plan`` narrowed to this rank's shard, minus items another store of the run already holds."""
    own = dist.store_path(run_dir, plan.card.name)
    items = shard_items(plan.items, batch_size, dist.rank, dist.world_size, lengths)
    done = stored_elsewhere(run_dir, plan.card.name, own, retry_errors)
    if done:
        items = [p for p in items if p.item.item_id not in done]
    return dataclasses.replace(plan, items=items)


def stored_by_id(plan, run_dir: Path) -> tuple[dict[str, dict], list[str]]:
    """Every stored record of the task (all stores of the run) by item id, and the plan's item ids not stored."""
    by_id: dict[str, dict] = {}
    for path in task_stores(run_dir, plan.card.name):
        by_id.update(read_store(path))
    return by_id, [p.item.item_id for p in plan.items if p.item.item_id not in by_id]


def merged_records(plan, run_dir: Path) -> list[dict]:
    """The task's records in the plan's item order, read from every store of the run (rank 0 after the barrier).

    Raises RuntimeError naming the missing items if the stores lack some (a rank failed)."""
    by_id, missing = stored_by_id(plan, run_dir)
    if missing:
        raise RuntimeError(f"{plan.card.name}: {len(missing)} item(s) missing from the shard stores "
                           f"(first: {missing[:3]}); a rank failed: re-run the same command to finish them")
    return [by_id[p.item.item_id] for p in plan.items]


def collect(plan, dist: DistContext, run_dir: Path, records: list[dict]) -> Optional[list[dict]]:
    """After this rank's shard is done: barrier, then on rank 0 every record of the task in plan
    order; ``None`` on other ranks (they write nothing). A single process with no other store
    returns ``records`` unchanged."""
    dist.barrier()
    if not dist.is_main:
        return None
    if not dist.enabled and len(records) == len(plan.items):
        return records
    return merged_records(plan, run_dir)


def agree_run_id(dist: DistContext, run_id: str) -> None:
    """Every rank must compute the same run id (same model, data and settings on every node)."""
    ids = dist.all_gather(run_id)
    if len(set(ids)) > 1:
        raise RuntimeError(f"ranks disagree on the run id ({', '.join(ids)}): every node needs the same checkpoint, "
                           f"data, task cards and settings")


def sum_counts(dist: DistContext, outcome) -> None:
    """Add the other ranks' generated / resumed item counts into ``outcome`` (all ranks call this)."""
    counts = dist.all_gather((outcome.generated, outcome.resumed))
    outcome.generated, outcome.resumed = sum(c[0] for c in counts), sum(c[1] for c in counts)
