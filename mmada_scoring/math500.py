"""MATH500 scoring with math-verify (the primary checker of the harness).

Public API
----------
``math_verify_check(prediction, answer, *, parsing_timeout=5, timeout_seconds=5) -> MathVerifyResult``
    ``verify(parse("$" + answer + "$"), parse(prediction))`` (gold first), never raises:
    any failure becomes ``correct=False`` with the reason in ``error``.
``math_verify_correct(prediction, answer) -> bool``
    Only the verdict of ``math_verify_check``.
``score_items(predictions, answers) -> (per_item, aggregate)``
    Per-item ``{"math_verify": 0/1, "extracted", "error"}`` records and
    ``{"math_verify": accuracy, "n_items", "n_errors"}``.
``last_boxed(text) -> str | None``
    Content of the last ``\\boxed{...}`` (or ``\\fbox{...}`` / ``\\boxed x$``); None if
    absent or unbalanced. Same result as lm-eval minerva's
    ``remove_boxed(last_boxed_only_string(text))`` wherever that pair returns without
    an assertion error and the text has no ``\\boxed`` followed by a space.

``answer`` is the MATH-500 ``answer`` column (LaTeX without ``$``); ``prediction`` is the
raw model output, from which math-verify extracts the final answer itself (last
``\\boxed{}``, LaTeX, or plain expression). Reference: math-verify 0.9.0
``math_verify.parse`` / ``math_verify.verify`` with default extraction configs.

math-verify enforces its timeouts with ``signal.alarm``, which only works in the main
thread; called from another thread, the timeouts are switched off (and a stuck sympy
call can block that thread).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from math_verify import parse, verify
from math_verify.errors import TimeoutException

_MATH_VERIFY_LOGGER = "math_verify"


@dataclass(frozen=True)
class MathVerifyResult:
    """Verdict for one item; ``error`` names why it could not be checked (else None)."""

    correct: bool
    extracted: str | None = None
    error: str | None = None


class _WarningCollector(logging.Handler):
    """Collects math-verify warnings (it logs comparison timeouts instead of raising)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _collect_math_verify_warnings() -> Iterator[_WarningCollector]:
    collector = _WarningCollector()
    logger = logging.getLogger(_MATH_VERIFY_LOGGER)
    logger.addHandler(collector)
    try:
        yield collector
    finally:
        logger.removeHandler(collector)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def math_verify_check(
    prediction: str | None,
    answer: str,
    *,
    parsing_timeout: int | None = 5,
    timeout_seconds: int | None = 5,
) -> MathVerifyResult:
    """Check one prediction against the MATH-500 ``answer`` with math-verify.

    Equivalent to ``verify(parse("$" + answer + "$"), parse(prediction))`` with
    math-verify's defaults; parse errors, timeouts and comparison failures give
    ``correct=False`` and a reason instead of an exception. ``None`` counts as an
    empty prediction.
    """
    if not isinstance(answer, str) or not answer.strip():
        return MathVerifyResult(False, error=f"answer must be a non-empty str, got {answer!r}")
    if prediction is None:
        prediction = ""
    if not isinstance(prediction, str):
        return MathVerifyResult(False, error=f"prediction must be a str, got {type(prediction).__name__}")
    if threading.current_thread() is not threading.main_thread():
        parsing_timeout = timeout_seconds = None

    try:
        gold = parse("$" + answer + "$", parsing_timeout=parsing_timeout, raise_on_error=True)
    except (Exception, TimeoutException) as exc:
        return MathVerifyResult(False, error=f"gold answer {answer!r} could not be parsed ({_describe(exc)})")
    if not gold:
        return MathVerifyResult(False, error=f"gold answer {answer!r} could not be parsed (nothing extracted)")
    try:
        target = parse(prediction, parsing_timeout=parsing_timeout, raise_on_error=True)
    except (Exception, TimeoutException) as exc:
        return MathVerifyResult(False, error=f"prediction could not be parsed ({_describe(exc)})")
    if not target:
        return MathVerifyResult(False, error="no answer found in prediction")

    extracted = str(target[-1])
    try:
        # raise_on_error stays False: math-verify then scores each gold/target pair
        # on its own (a failing pair is False, another pair can still match).
        with _collect_math_verify_warnings() as warnings:
            correct = bool(verify(gold, target, timeout_seconds=timeout_seconds))
    except (Exception, TimeoutException) as exc:
        return MathVerifyResult(False, extracted, error=f"verification failed ({_describe(exc)})")
    timeouts = [message for message in warnings.messages if "timeout" in message.lower()]
    error = "; ".join(timeouts) if timeouts and not correct else None
    return MathVerifyResult(correct, extracted, error)


def math_verify_correct(prediction: str | None, answer: str) -> bool:
    """True if math-verify judges ``prediction`` equal to the gold ``answer``."""
    return math_verify_check(prediction, answer).correct


def score_items(
    predictions: Sequence[str | None], answers: Sequence[str]
) -> tuple[list[dict], dict[str, float | int]]:
    """Score a set with math-verify; returns per-item records and the accuracy."""
    if len(predictions) != len(answers):
        raise ValueError(
            f"got {len(predictions)} predictions for {len(answers)} answers; they must pair up one to one"
        )
    if not answers:
        raise ValueError("nothing to score: predictions and answers are empty")
    per_item = []
    for prediction, answer in zip(predictions, answers):
        result = math_verify_check(prediction, answer)
        per_item.append({"math_verify": int(result.correct), "extracted": result.extracted, "error": result.error})
    aggregate = {
        "math_verify": sum(item["math_verify"] for item in per_item) / len(per_item),
        "n_items": len(per_item),
        "n_errors": sum(item["error"] is not None for item in per_item),
    }
    return per_item, aggregate


def _matching_brace(text: str, open_index: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_index``; None if unbalanced."""
    depth = 0
    for index in range(open_index, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def last_boxed(text: str | None) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text`` (None if none or unbalanced).

    Falls back to the last ``\\fbox{...}`` when there is no ``\\boxed``;
    ``\\boxed x$`` (space form) yields the text up to the next ``$``.
    """
    if not isinstance(text, str):
        return None
    command = "\\boxed" if "\\boxed" in text else "\\fbox"
    start = text.rfind(command)
    if start < 0:
        return None
    after = start + len(command)
    body = text[after:]
    stripped = body.lstrip(" ")
    if stripped.startswith("{"):
        open_index = after + len(body) - len(stripped)
        close_index = _matching_brace(text, open_index)
        return None if close_index is None else text[open_index + 1 : close_index]
    if len(stripped) != len(body):
        return stripped.split("$")[0]
    return None
