"""Where the wall time of one ``run`` invocation goes: start-up, model calls and the harness around them.

``import_s``: process start -> ``run()`` (interpreter, imports, argument parsing; set by the command
line, ``None`` for a library call or when the process start time is unknown). ``load_s``: ``run()``
-> first task (planning, model loading, manifest). ``tasks_s``: first task -> end. Inside it,
``generate_s`` is the time spent in ``model.generate`` (tokenisation, sampler, decoding) and
``forward_s`` the time inside the model's forward passes as the sampler timed them;
``harness_s = tasks_s - generate_s`` is everything else (prompt lengths, batch size choice, stop
cuts, filters, metrics, stores, Parquet, leaderboard).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


def process_age_s() -> Optional[float]:
    """Seconds since this process started (Linux ``/proc``, 10 ms resolution); ``None`` elsewhere."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat(5): start time after boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - started)


@dataclass
class RunTiming:
    """Clock of one invocation; ``mark_tasks_start`` ends the start-up, ``as_dict`` closes the books."""

    import_s: Optional[float] = None  # the CLI passes process_age_s() (a library caller's process is older)
    entered: float = field(default_factory=time.perf_counter)
    tasks_started: Optional[float] = None
    generate_s: float = 0.0
    forward_s: float = 0.0
    generated_items: int = 0

    def mark_tasks_start(self) -> None:
        self.tasks_started = time.perf_counter()

    def add_generation(self, seconds: float, forward_s: float, items: int) -> None:
        """One ``model.generate`` call: its wall time, the forward time inside it, its items."""
        self.generate_s += seconds
        self.forward_s += forward_s
        self.generated_items += items

    def as_dict(self) -> dict:
        now = time.perf_counter()
        started = self.tasks_started if self.tasks_started is not None else now
        load, tasks = started - self.entered, now - started
        startup = load + (self.import_s or 0.0)
        return {"import_s": self.import_s, "load_s": load, "startup_s": startup, "tasks_s": tasks,
                "generate_s": self.generate_s, "forward_s": self.forward_s,
                "harness_s": max(0.0, tasks - self.generate_s),
                "generate_share": self.generate_s / tasks if tasks > 0 else None,
                "forward_share": self.forward_s / tasks if tasks > 0 else None,
                "generated_items": self.generated_items}
