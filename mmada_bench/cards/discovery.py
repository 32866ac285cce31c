"""Where task cards live and how a task name becomes a validated card.

Cards are YAML files: the packaged ones in ``mmada_bench/tasks/`` and any folder named in
``$MMADA_TASKS_DIR`` (os.pathsep-separated, searched first, so a user card overrides a packaged one).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from mmada_bench.cards.schema import TaskCard, load_card

PACKAGED_TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"


def task_dirs(extra: Sequence[str] = ()) -> list[Path]:
    """Folders searched for task cards, first match wins: ``extra`` (``--include-path``), ``$MMADA_TASKS_DIR``, then
    the packaged cards."""
    dirs = [Path(p) for p in extra]
    dirs += [Path(p) for p in os.environ.get("MMADA_TASKS_DIR", "").split(os.pathsep) if p]
    dirs.append(PACKAGED_TASKS_DIR)
    return [d for d in dirs if d.is_dir()]


def task_cards(extra: Sequence[str] = ()) -> dict[str, Path]:
    """``task name -> card path`` for every ``*.yaml`` card found in :func:`task_dirs`."""
    found: dict[str, Path] = {}
    for folder in task_dirs(extra):
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def resolve_task_names(names: list[str], extra: Sequence[str] = ()) -> list[str]:
    """Task names for ``--tasks``: a card name, or a metric name that exactly one card computes (``clip_score`` ->
    ``t2i``); each task once, in the order first named. Unknown names are kept (planning reports them)."""
    cards = task_cards(extra)
    by_metric: dict[str, set[str]] = {}
    for task, path in cards.items():
        try:
            for metric in load_card(path).metric_names:
                by_metric.setdefault(metric, set()).add(task)
        except ValueError:  # a broken card is reported when it is asked for by name
            continue
    resolved = []
    for name in names:
        if name not in cards and len(by_metric.get(name, ())) == 1:
            name = next(iter(by_metric[name]))
        if name not in resolved:
            resolved.append(name)
    return resolved


def get_task(name: str, extra: Sequence[str] = ()) -> TaskCard:
    """Load and validate the card of task ``name``; an unknown name lists the known ones."""
    cards = task_cards(extra)
    if name not in cards:
        known = ", ".join(sorted(cards)) or "(none)"
        raise KeyError(f"unknown task {name!r}; known tasks: {known} "
                       f"(add a card {name}.yaml to a folder in $MMADA_TASKS_DIR or check the spelling)")
    return load_card(cards[name])
