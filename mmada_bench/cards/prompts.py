"""Turn a card + variant + dataset item into the exact prompt text (and chat messages).

Templates use ``{{field}}`` placeholders filled from the item; nothing else is interpreted, so
LaTeX braces in the data are safe. Layout (as lm-eval):
``prefix + shot_1 + D + ... + shot_n + D + template(item)`` with
``shot = template(exemplar) + target_delimiter + target(exemplar)`` and ``D = fewshot_delimiter``.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Optional

from mmada_bench.cards.schema import TaskCard, VariantSpec

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def render(template: str, doc: dict) -> str:
    """Fill ``{{field}}`` placeholders from ``doc``; a missing field raises KeyError naming it."""

    def fill(match: re.Match) -> str:
        key = match.group(1)
        if key not in doc:
            raise KeyError(f"item has no field {key!r} used by the prompt template")
        return str(doc[key])

    return _PLACEHOLDER.sub(fill, template)


def fewshot_plan(card: TaskCard, pool: list[dict], n_items: int) -> list[list[dict]]:
    """Exemplars for each of the first ``n_items`` items, in dataset order.

    ``random`` follows lm-eval: one ``random.Random(seed)`` and one ``sample(pool, n)`` per item in
    order, so item i gets the same shots whatever ``--limit`` is. ``first_n`` takes the first n of
    the pool; ``fixed`` the card's own examples.
    """
    spec = card.prompt.fewshot
    if spec.n == 0:
        return [[] for _ in range(n_items)]
    if spec.sampler == "fixed":
        return [list(spec.examples[: spec.n])] * n_items
    if len(pool) < spec.n:
        raise ValueError(f"task {card.name}: few-shot split has {len(pool)} rows, needs {spec.n}")
    if spec.sampler == "first_n":
        return [pool[: spec.n]] * n_items
    rng = random.Random(spec.seed)
    return [rng.sample(pool, spec.n) for _ in range(n_items)]


def build_prompt(card: TaskCard, variant: VariantSpec, doc: dict, shots: list[dict], chat: bool = False,
                 system_instruction: Optional[str] = None) -> tuple[str, Optional[list[dict]]]:
    """(prompt text, chat messages or None) for one item.

    ``chat`` (``--apply-chat-template``) sends the prompt as one user turn even when the variant is plain.
    ``system_instruction`` (``--system-instruction``) is, in a chat layout, a system turn before the user turn
    (ahead of the variant's own ``system_prompt``, joined by the few-shot delimiter); in a plain layout it is put
    before the prompt, followed by the few-shot delimiter (lm-eval's layout without a chat template)."""
    p = card.prompt
    parts = [render(p.template, s) + p.target_delimiter + render(p.target, s) for s in shots]
    question = render(variant.template or p.template, doc)
    for old, new in variant.replace.items():
        question = question.replace(old, new)
    parts.append(question)
    prompt = variant.prefix + p.fewshot_delimiter.join(parts)
    if not (variant.chat or chat):
        return (system_instruction + p.fewshot_delimiter + prompt if system_instruction else prompt), None
    system = p.fewshot_delimiter.join(filter(None, [system_instruction, variant.system_prompt]))
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return prompt, messages


def prompt_hash(prompt: str, messages: Optional[list[dict]]) -> str:
    """sha256 of the prompt text and chat messages (what the model is actually asked)."""
    return hashlib.sha256(json.dumps({"prompt": prompt, "messages": messages}, sort_keys=True).encode()).hexdigest()
