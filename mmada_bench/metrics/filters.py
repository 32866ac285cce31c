"""Answer-extraction filters: ``filter(text, doc) -> str``, chained in a card's ``filters``."""
from __future__ import annotations

from typing import Optional

from mmada_bench.registry import FILTERS, register_filter
from mmada_scoring import gsm8k, mme, pope

POPE_PARSERS = ("original", "vlmevalkit", "vlmevalkit_mmada", "lmms_eval")
MME_PARSERS = ("vlmevalkit", "vlmevalkit_mmada", "lmms_eval")


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
    return gsm8k.extract_strict(text)


@register_filter("gsm8k_flexible")
def gsm8k_flexible(text: str, doc: dict) -> str:
    """lm-eval gsm8k ``flexible-extract``: the last number-like match."""
    return gsm8k.extract_flexible(text)


@register_filter("last_boxed")
def last_boxed(text: str, doc: dict) -> str:
    """Content of the last ``\\boxed{...}`` (empty string if none)."""
    from mmada_scoring.math500 import (
        last_boxed as _last_boxed,  # math_verify pulls in sympy (slow): on first use
    )

    return _last_boxed(text) or ""


@register_filter("after_think")
def after_think(text: str, doc: dict) -> str:
    """The text after the last ``</think>`` (the answer part of a reasoning trace)."""
    return text.split("</think>")[-1].lstrip()


def _yes_no_filter(scorer, benchmark: str, parser: str):
    def parse(text: str, doc: dict) -> str:
        return str(scorer.parse_answer(text, parser)["parsed"]).lower()

    parse.__doc__ = f"{benchmark} answer label under the {parser!r} parser convention (lower-case)."
    return parse


for _parser in POPE_PARSERS:
    register_filter(f"pope_{_parser}")(_yes_no_filter(pope, "POPE", _parser))
for _parser in MME_PARSERS:
    register_filter(f"mme_{_parser}")(_yes_no_filter(mme, "MME", _parser))


def answer_part(answer_filter: Optional[str], text: str, doc: dict) -> str:
    """The text every metric of a variant reads: ``text`` after its ``answer_filter`` (``text`` itself without one)."""
    return FILTERS.get(answer_filter)(text, doc) if answer_filter else text


def apply_chain(chain: list[str], text: str, doc: dict) -> str:
    """Run the filters named in ``chain`` one after the other."""
    for name in chain:
        text = FILTERS.get(name)(text, doc)
    return text
