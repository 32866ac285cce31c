"""GSM8K scoring, identical to lm-eval 0.4.13's ``gsm8k`` task (yaml version 3.0).

Public API
----------
``truncate_at_stops(text, stops=STOP_SEQUENCES, think_end_token=None) -> str``
    Cut a raw generation at its stop strings the way lm-eval applies ``until``.
``extract_strict(text) -> str``
    ``strict-match`` filter: first ``#### <number>``, else ``"[invalid]"``.
``extract_flexible(text) -> str``
    ``flexible-extract`` filter: last number-like token, else ``"[invalid]"``.
``exact_match(prediction, gold, ...) -> float``
    lm-eval's ``exact_match`` (``exact_match_hf_evaluate``) on one pair, with the
    gsm8k yaml kwargs as defaults; returns 1.0 or 0.0.
``score_item(prediction, answer) -> dict``
    Both filters on one generation: ``<filter>_extracted`` and ``<filter>`` (0.0/1.0).
``score_items(predictions, answers) -> (per_item, aggregate)``
    Score a whole set; ``aggregate`` maps each filter name to its mean.

``answer`` is always the full GSM8K reference solution (``doc["answer"]``, ending in
``#### <number>``); lm-eval compares against that text after ``regexes_to_ignore``
removed everything up to ``#### ``. A bare number works as well.

Reference: ``lm_eval/tasks/gsm8k/gsm8k.yaml``, ``lm_eval/filters/extraction.py``
(``RegexFilter``), ``lm_eval/filters/selection.py`` (``TakeFirstFilter``),
``lm_eval/api/metrics.py`` (``exact_match_hf_evaluate``),
``lm_eval/models/utils.py`` (``postprocess_generated_text``).
"""
from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence

INVALID = "[invalid]"
STRICT_PATTERN = r"#### (\-?[0-9\.\,]+)"
FLEXIBLE_PATTERN = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"
REGEXES_TO_IGNORE = (",", "\\$", "(?s).*#### ", "\\.$")
STOP_SEQUENCES = ("Question:", "</s>", "<|im_end|>")
FILTERS = ("strict-match", "flexible-extract")

_STRICT_RE = re.compile(STRICT_PATTERN)
_FLEXIBLE_RE = re.compile(FLEXIBLE_PATTERN)
_PUNCTUATION_TABLE = str.maketrans("", "", string.punctuation)


def truncate_at_stops(
    text: str,
    stops: str | Sequence[str] | None = STOP_SEQUENCES,
    think_end_token: str | None = None,
) -> str:
    """Return ``text`` cut before the earliest stop string (lm-eval ``until``).

    Empty stop strings are ignored. With ``think_end_token`` only the text after
    its last occurrence is kept (left-stripped) before stops are applied, as in
    lm-eval's ``postprocess_generated_text``.
    """
    if not isinstance(text, str):
        raise TypeError(f"generation must be a str, got {type(text).__name__}")
    if think_end_token:
        text = text.split(think_end_token)[-1].lstrip()
    if stops is None:
        return text
    if isinstance(stops, str):
        stops = [stops]
    for stop in stops:
        if not isinstance(stop, str):
            raise TypeError(f"stop strings must be str, got {type(stop).__name__}: {stop!r}")
        if stop:
            text = text.split(stop)[0]
    return text


def _regex_extract(text: str | None, pattern: re.Pattern, group_select: int) -> str:
    """lm-eval ``RegexFilter`` on one response (``take_first`` is implicit)."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise TypeError(f"prediction must be a str (or None), got {type(text).__name__}")
    matches = pattern.findall(text)
    if not matches:
        return INVALID
    match = matches[group_select]
    if isinstance(match, tuple):
        non_empty = [group for group in match if group]
        match = non_empty[0] if non_empty else INVALID
    return match.strip()


def extract_strict(text: str | None) -> str:
    """``strict-match``: number after the first ``#### ``; ``"[invalid]"`` if none."""
    return _regex_extract(text, _STRICT_RE, 0)


def extract_flexible(text: str | None) -> str:
    """``flexible-extract``: last match of the number regex (first non-empty group)."""
    return _regex_extract(text, _FLEXIBLE_RE, -1)


def _numpy_str(value: str) -> str:
    """What a numpy unicode array stores for ``value``: trailing NULs are dropped."""
    return value.rstrip("\x00")


def _normalize(
    value: str,
    regexes_to_ignore: Iterable[str] | None,
    ignore_case: bool,
    ignore_punctuation: bool,
    ignore_numbers: bool,
) -> str:
    """One side of ``exact_match_hf_evaluate``, including numpy's string storage rules."""
    value = _numpy_str(value)
    for pattern in regexes_to_ignore or ():
        value = _numpy_str(re.sub(pattern, "", value))
    if ignore_case:
        # np.char.lower keeps the array's item size: a lower-cased string that grows
        # (e.g. "İ" -> "i̇") is cut back to the original length.
        value = _numpy_str(value.lower()[: len(value)])
    if ignore_punctuation:
        value = _numpy_str(value.translate(_PUNCTUATION_TABLE))
    if ignore_numbers:
        value = _numpy_str(value.translate(str.maketrans("", "", string.digits)))
    return value


def exact_match(
    prediction: str,
    gold: str,
    *,
    regexes_to_ignore: Iterable[str] | None = REGEXES_TO_IGNORE,
    ignore_case: bool = True,
    ignore_punctuation: bool = False,
    ignore_numbers: bool = False,
) -> float:
    """1.0 if ``prediction`` equals ``gold`` after lm-eval's normalisation, else 0.0.

    Each pattern in ``regexes_to_ignore`` is removed (``re.sub``) from both sides in
    order, then case / punctuation / digits are dropped as requested.
    """
    for name, value in (("prediction", prediction), ("gold", gold)):
        if not isinstance(value, str):
            raise TypeError(f"exact_match: {name} must be a str, got {type(value).__name__}")
    options = (regexes_to_ignore, ignore_case, ignore_punctuation, ignore_numbers)
    return float(_normalize(prediction, *options) == _normalize(gold, *options))


def score_item(prediction: str | None, answer: str) -> dict:
    """Score one raw generation with both lm-eval filters.

    ``prediction`` is scored as given (apply ``truncate_at_stops`` first if the
    generation was not cut at the task's stop strings). ``None`` counts as empty.
    """
    if not isinstance(answer, str):
        raise TypeError(f"answer must be the GSM8K reference solution (str), got {type(answer).__name__}")
    result = {}
    for name, extract in (("strict-match", extract_strict), ("flexible-extract", extract_flexible)):
        extracted = extract(prediction)
        result[f"{name}_extracted"] = extracted
        result[name] = exact_match(extracted, answer)
    return result


def score_items(
    predictions: Sequence[str | None], answers: Sequence[str]
) -> tuple[list[dict], dict[str, float]]:
    """Score a set; returns per-item dicts and ``{filter: mean exact_match}``."""
    if len(predictions) != len(answers):
        raise ValueError(
            f"got {len(predictions)} predictions for {len(answers)} answers; they must pair up one to one"
        )
    if not answers:
        raise ValueError("nothing to score: predictions and answers are empty")
    per_item = [score_item(prediction, answer) for prediction, answer in zip(predictions, answers)]
    aggregate = {name: sum(item[name] for item in per_item) / len(per_item) for name in FILTERS}
    return per_item, aggregate
