"""Answer-extraction filters: ``filter(text, doc) -> str``, chained in a card's ``filters``.

Scoring functions live in :mod:`mmada_bench.scoring` and are imported when a filter first runs.
"""
from __future__ import annotations

from mmada_bench.registry import register_filter


@register_filter("identity")
def identity(text: str, doc: dict) -> str:
    """The text unchanged."""
    return text


@register_filter("strip")
def strip(text: str, doc: dict) -> str:
    """The text without surrounding whitespace."""
    return text.strip()


@register_filter("gsm8k_strict")
def gsm8k_strict(text: str, doc: dict) -> str:
    """lm-eval gsm8k ``strict-match``: the number after the first ``#### `` (else ``[invalid]``)."""
    from mmada_bench.scoring.gsm8k import extract_strict

    return extract_strict(text)


@register_filter("gsm8k_flexible")
def gsm8k_flexible(text: str, doc: dict) -> str:
    """lm-eval gsm8k ``flexible-extract``: the last number-like match."""
    from mmada_bench.scoring.gsm8k import extract_flexible

    return extract_flexible(text)


@register_filter("last_boxed")
def last_boxed(text: str, doc: dict) -> str:
    """Content of the last ``\\boxed{...}`` (empty string if none)."""
    from mmada_bench.scoring.math500 import last_boxed as _last_boxed

    return _last_boxed(text) or ""


@register_filter("after_think")
def after_think(text: str, doc: dict) -> str:
    """The text after the last ``</think>`` (the answer part of a reasoning trace)."""
    return text.split("</think>")[-1].lstrip()


def apply_chain(chain: list[str], text: str, doc: dict) -> str:
    """Run the filters named in ``chain`` one after the other."""
    from mmada_bench.registry import get_filter

    for name in chain:
        text = get_filter(name)(text, doc)
    return text
