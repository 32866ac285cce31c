"""Yes/no answer extraction shared by POPE and MME (VLMEvalKit conventions).

Public API
----------
``process_punctuation(text) -> str``
    VLMEvalKit ``vlmeval/smp/misc.py::process_punctuation`` behaviour (VQA-style cleanup).
``yorn_extraction(text) -> "Yes" | "No" | "Unknown"``
    VLMEvalKit ``YOrN_Extraction``: word-level yes/no after lower-casing and
    ``process_punctuation``; both or neither -> ``"Unknown"``.
``mmada_post_process(text, dataset="POPE") -> str``
    MMaDA's VLMEvalKit wrapper post-processing (``vlm/mmada/mmada.py``) for yes/no datasets:
    substring tests map the raw generation to ``"Yes"`` / ``"No"``; otherwise it is returned
    unchanged. For ``dataset="MME"`` a response longer than 10 characters and 3 words is first
    cut to its first 3 words.
"""
from __future__ import annotations

import re

# Characters VLMEvalKit removes (when they touch a space, or when the text has a
# digit,digit group) or turns into a space (otherwise).
_PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
                ">", "<", "@", "`", ",", "?", "!")
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")
# VLMEvalKit's pattern is written '(?!<=\d)(\.)(?!\d)': the first group is a (always true)
# look-ahead, so every period not followed by a digit goes.
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
# VLMEvalKit passes re.UNICODE (== 32) as the positional ``count`` of ``sub``, so at most
# 32 periods are removed; kept for parity.
_MAX_PERIODS_REMOVED = int(re.UNICODE)


def process_punctuation(text: str) -> str:
    """Strip or space out punctuation exactly as VLMEvalKit's ``process_punctuation``."""
    has_digit_comma = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        touches_space = (mark + " ") in text or (" " + mark) in text
        out = out.replace(mark, "" if touches_space or has_digit_comma else " ")
    return _PERIOD.sub("", out, count=_MAX_PERIODS_REMOVED)


def yorn_extraction(text: str) -> str:
    """``"Yes"`` if only the word yes occurs, ``"No"`` if only no, else ``"Unknown"``."""
    words = process_punctuation(text.lower()).split()
    has_yes, has_no = "yes" in words, "no" in words
    if has_yes and not has_no:
        return "Yes"
    if has_no and not has_yes:
        return "No"
    return "Unknown"


def mmada_post_process(text: str, dataset: str = "POPE") -> str:
    """Map a raw MMaDA generation to Yes/No the way MMaDA's VLMEvalKit wrapper does (``post_process_response``
    of ``evaluation/VLMEvalKit/vlmeval/vlm/mmada/mmada.py``, for a Y/N dataset).

    Substring tests on the lower-cased text ("not", "know", "cannot" contain "no"): only "yes" -> Yes; only
    "no" -> No; otherwise by the stripped text's prefix yes / no. Only when none of these applies and the
    dataset name contains "MME", a response longer than 10 characters with more than 3 words is cut to its
    first 3 words; anything else is returned unchanged (the wrapper strips the result afterwards).
    """
    lowered = text.lower()
    has_yes, has_no = "yes" in lowered, "no" in lowered
    if has_yes and not has_no:
        return "Yes"
    if has_no and not has_yes:
        return "No"
    stripped = lowered.strip()
    if stripped.startswith("yes"):
        return "Yes"
    if stripped.startswith("no"):
        return "No"
    if "MME" in dataset and len(text) > 10 and len(text.split()) > 3:
        return " ".join(text.split()[:3])
    return text
