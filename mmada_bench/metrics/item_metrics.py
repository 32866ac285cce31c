"""Per-item metrics: ``metric(prediction, gold, doc) -> float``; aggregated as a mean with a 95 % CI.

Binary scores get a Wilson score interval; other scores a percentile bootstrap
(:mod:`mmada_bench.metrics.intervals`).
"""
from __future__ import annotations

from mmada_bench.registry import register_metric
from mmada_scoring import gsm8k


@register_metric("exact_match_gsm8k")
def exact_match_gsm8k(prediction: str, gold: str, doc: dict) -> float:
    """lm-eval gsm8k ``exact_match`` (ignore case, ``,``/``$``/``#### ``/trailing ``.`` removed on both sides)."""
    return float(gsm8k.exact_match(prediction, gold))


@register_metric("math_verify")
def math_verify(prediction: str, gold: str, doc: dict) -> float:
    """math-verify equivalence of the model output with the gold answer parsed as ``$answer$``."""
    from mmada_scoring.math500 import (
        math_verify_correct,  # math_verify pulls in sympy (slow): on first use
    )

    return float(math_verify_correct(prediction, gold))


@register_metric("exact_match")
def exact_match(prediction: str, gold: str, doc: dict) -> float:
    """Plain string equality after stripping whitespace."""
    return float(prediction.strip() == str(gold).strip())


@register_metric("yes_no_accuracy")
def yes_no_accuracy(prediction: str, gold: str, doc: dict) -> float:
    """1.0 when the parsed label equals the gold yes/no answer (case and surrounding space ignored)."""
    return float(prediction.strip().lower() == str(gold).strip().lower().rstrip("."))
