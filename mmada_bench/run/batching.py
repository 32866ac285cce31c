"""Batches of a task's items by prompt length: longest first, so the rows of a batch need little padding.

The order is a total one (length, then plan position), so a single process and every rank of a
sharded run cut the same batches. Results stay keyed by item id; only the generation order changes.
"""
from __future__ import annotations

from typing import Sequence


def prompt_length(model, request) -> int:
    """Token length of ``request``'s prompt as the model builds it (``model.prompt_length``), else its characters."""
    measure = getattr(model, "prompt_length", None)
    if measure is not None:
        try:
            return int(measure(request))
        except Exception:  # noqa: BLE001 - a prompt the model cannot build fails (and is recorded) when generated
            pass
    if request.messages:
        return sum(len(str(m.get("content", ""))) for m in request.messages)
    return len(request.prompt or "")


def length_order(items: Sequence, lengths: Sequence[int]) -> list:
    """``items`` sorted by length, longest first; equal lengths keep their order."""
    if len(items) != len(lengths):
        raise ValueError(f"{len(items)} items but {len(lengths)} lengths")
    order = sorted(range(len(items)), key=lambda i: (-lengths[i], i))
    return [items[i] for i in order]


def length_batches(items: Sequence, lengths: Sequence[int], batch_size: int) -> list[list]:
    """Consecutive batches of at most ``batch_size`` items of :func:`length_order`."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, not {batch_size}")
    ordered = length_order(items, lengths)
    return [ordered[k:k + batch_size] for k in range(0, len(ordered), batch_size)]
