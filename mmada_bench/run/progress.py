"""Resuming: which planned items a store still lacks, and a progress bar that starts at the stored count."""
from __future__ import annotations

import sys

from tqdm import tqdm

GENERATION_FAILED = "generation failed"  # prefix of the error of an item whose model call failed


def drop_failed_generations(store) -> None:
    """Forget stored items whose generation failed, so ``--retry-errors`` generates them again."""
    store.records = {k: r for k, r in store.records.items() if not is_failed_generation(r)}


def is_failed_generation(record: dict) -> bool:
    """True for a stored record whose model call failed (``--retry-errors`` regenerates it)."""
    return str(record.get("error") or "").startswith(GENERATION_FAILED)


def resume_progress(plan, store, settings, outcome, unit: str, label: str):
    """Items of ``plan`` not yet in ``store`` and a progress bar that starts at the stored count."""
    pending = [p for p in plan.items if p.item.item_id not in store.records]
    outcome.resumed += len(plan.items) - len(pending)
    bar = tqdm(total=len(plan.items), initial=len(plan.items) - len(pending), unit=unit, file=sys.stderr,
               desc=f"{plan.card.name} [{label}, {plan.data.split}]", disable=not settings.progress,
               dynamic_ncols=True)
    return pending, bar
