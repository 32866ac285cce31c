"""Per-call accounting shared by every sampler (counted as spec/performance_anchors.md's glossary says)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch


@dataclass
class SamplerStats:
    """NFE (model calls; a CFG call of batch 2B counts once), tokens committed per step, step wall times."""

    nfe: int = 0
    tokens_per_step: list = field(default_factory=list)  # tokens committed per step, summed over the batch
    step_times: list = field(default_factory=list)  # seconds per model call (synchronised on CUDA)
    positions_per_call: list = field(default_factory=list)  # query positions x batch rows run per call
    peak_memory_bytes: int = 0
    batch_size: int = 0
    rows_per_call: list = field(default_factory=list)  # rows running at each call (text sampler: finished rows leave)
    row_nfe: list = field(default_factory=list)  # calls each row of the batch took part in (text sampler)
    nonfinite_rows: list = field(default_factory=list)  # rows whose logits were ever NaN / inf (text sampler)

    @property
    def total_time(self) -> float:
        return float(sum(self.step_times))

    @property
    def mean_tokens_per_step(self) -> float:
        """Tokens committed per call and running row."""
        if self.rows_per_call:
            return sum(self.tokens_per_step) / max(1, sum(self.rows_per_call))
        steps = len(self.tokens_per_step)
        return sum(self.tokens_per_step) / max(1, steps) / max(1, self.batch_size)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(total_time=self.total_time, mean_tokens_per_step=self.mean_tokens_per_step)
        return out

    @contextmanager
    def timed_call(self, device: torch.device, positions: int):
        """Time one model call (CUDA-synchronised) and count it."""
        cuda = device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        yield
        if cuda:
            torch.cuda.synchronize(device)
            self.peak_memory_bytes = max(self.peak_memory_bytes, torch.cuda.max_memory_allocated(device))
        self.step_times.append(time.perf_counter() - start)
        self.nfe += 1
        self.positions_per_call.append(positions)
