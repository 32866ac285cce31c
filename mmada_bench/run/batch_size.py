"""``--batch-size N|auto``: parsing, and the largest batch that fits the device's memory (chosen per task).

``auto`` on CUDA probes: start at the memory estimate (at most :data:`CUDA_CAP`), run the largest call
of such a batch (``model.rows_fit``) and halve until it fits. On a CPU it divides the available RAM
(``/proc/meminfo`` MemAvailable, less a reserve) by the model's per-row estimate (``model.row_bytes``),
at most :data:`CPU_CAP`. Either way the batch is sized for the task's longest prompt and never exceeds
the task's item count; a model without an estimate gets batch size 1.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

from mmada_bench.run.records import update_manifest

AUTO = "auto"
CPU_CAP = 32
CUDA_CAP = 256
#: share of the free memory kept back from the estimate (fragmentation, buffers the estimate leaves out)
RESERVE = 0.2

BatchSize = Union[int, str]


def parse_batch_size(text) -> BatchSize:
    """``"auto"`` or a positive integer; anything else raises ValueError with the one-line usage message."""
    value = str(text).strip().lower()
    if value == AUTO:
        return AUTO
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"--batch-size {text}: expected a positive integer or auto")
    return number


@dataclass
class Choice:
    """A task's batch size and how it was found (recorded in the manifest, printed by ``run``)."""

    batch_size: int
    requested: BatchSize
    how: str

    def to_dict(self) -> dict:
        return {"batch_size": self.batch_size, "requested": self.requested, "how": self.how}


def rows_in(free_bytes: int, row_bytes: int, cap: int, reserve: float = RESERVE) -> int:
    """How many rows of ``row_bytes`` fit in ``free_bytes`` less ``reserve`` of it, between 1 and ``cap``."""
    if row_bytes <= 0:
        return cap
    return max(1, min(cap, int(free_bytes * (1 - reserve)) // row_bytes))


def halve_until_fits(start: int, fits: Callable[[int], bool]) -> int:
    """The first of ``start, start/2, ..., 1`` for which ``fits`` is true (1 if none is)."""
    rows = max(1, start)
    while rows > 1 and not fits(rows):
        rows //= 2
    return rows


def available_ram() -> Optional[int]:
    """Bytes of RAM available to new allocations (MemAvailable), or None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def choose(model, preset, longest_prompt: int, n_items: int, requested: BatchSize, device: str) -> Choice:
    """The batch size of one task: ``requested`` itself, or the ``auto`` choice for its longest prompt."""
    if requested != AUTO:
        return Choice(int(requested), requested, "given")
    limit = max(1, n_items)
    estimate = getattr(model, "row_bytes", None)
    if estimate is None:
        return Choice(1, AUTO, f"no memory estimate for model family {getattr(model, 'family', '?')}: 1")
    row = int(estimate(longest_prompt, preset))
    if str(device).startswith("cuda"):
        import torch  # CUDA only: the device's free memory

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        start = min(rows_in(free, row, CUDA_CAP), limit)
        rows = halve_until_fits(start, lambda b: model.rows_fit(b, longest_prompt, preset))
        return Choice(rows, AUTO, f"cuda probe from {start} (estimate {row / 2**20:.0f} MiB/row, "
                                  f"{free / 2**30:.1f} GiB free, prompt {longest_prompt} tokens)")
    free = available_ram()
    if free is None:
        return Choice(1, AUTO, "available RAM unknown: 1")
    rows = min(rows_in(free, row, CPU_CAP), limit)
    return Choice(rows, AUTO, f"cpu estimate {row / 2**20:.1f} MiB/row, {free / 2**30:.1f} GiB available, "
                              f"cap {CPU_CAP}, prompt {longest_prompt} tokens")


def task_batch_size(ctx, plan, longest_prompt: int, n_items: int, agree: bool = True) -> int:
    """Choose ``plan``'s batch size, make every rank use the smallest choice (``agree``), record it in the context
    and the manifest, and print an ``auto`` choice."""
    model, settings = ctx.model, ctx.settings
    device = str(getattr(model, "device", settings.device))
    choice = choose(model, plan.preset, longest_prompt, n_items, settings.batch_size, device)
    if agree and ctx.dist.enabled:
        smallest = min(ctx.dist.all_gather(choice.batch_size))
        if smallest != choice.batch_size:
            choice = Choice(smallest, choice.requested, f"{choice.how}; smallest over the ranks")
    ctx.batch_sizes[plan.card.name] = choice.batch_size
    if choice.requested == AUTO:
        print(f"batch size auto: {plan.card.name} {choice.batch_size} ({choice.how})", file=sys.stderr)
    if ctx.dist.is_main:
        update_manifest(ctx.run_dir, "batch_sizes", {plan.card.name: choice.to_dict()})
    return choice.batch_size
