"""Input normalisation shared by the understanding scorers (POPE, MME, Flickr30k).

Public API
----------
``as_records(items, required, task) -> list[dict]``
    Accept a list of dicts or a pandas DataFrame and return plain dicts; raise
    ``MissingColumnError`` naming every absent column (and the task) otherwise.
``text_or_empty(value) -> str``
    A model prediction as text: ``None`` / NaN become ``""``, anything else ``str(value)``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any


class MissingColumnError(ValueError):
    """Raised when scorer input lacks a column the metric needs."""


def as_records(items: Any, required: Sequence[str], task: str) -> list[dict]:
    """Return ``items`` as a list of dicts, checking that every ``required`` column is present."""
    if hasattr(items, "to_dict") and hasattr(items, "columns"):
        records = items.to_dict(orient="records")
    elif isinstance(items, Iterable) and not isinstance(items, (str, bytes, dict)):
        records = [dict(item) for item in items]
    else:
        raise TypeError(f"{task} scorer expects a list of dicts or a pandas DataFrame, got {type(items).__name__}")
    if not records:
        raise ValueError(f"{task} scorer got no items to score")
    for position, record in enumerate(records):
        missing = [name for name in required if name not in record]
        if missing:
            raise MissingColumnError(
                f"{task} input is missing column(s) {missing} (item #{position}, has {sorted(record)}); "
                f"required columns: {list(required)}"
            )
    return records


def text_or_empty(value: Any) -> str:
    """A prediction as a string; a missing value (None/NaN) is the empty string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)
