"""The interface every model family implements for the harness.

A family (MMaDA, dummy, ...) is a class with ``name``, ``family``, ``fingerprint()`` and
``generate(requests, preset)``, registered under its family name with
``@register_model("family")`` as a factory ``load(spec, *, device, dtype, **options) -> EvalModel``.

Contract of ``generate``:

* returns exactly one :class:`GenerationResult` per request, in order;
* the text is the continuation only (no prompt), stop strings need not be applied (the harness
  cuts at ``request.stop`` again before scoring);
* a failure of one item should be returned as ``GenerationResult(text="", error="...")``; if
  ``generate`` raises instead, the harness retries the batch item by item and records the
  exception of each failing item.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, runtime_checkable


@dataclass
class GenerationRequest:
    """One prompt to complete.

    Args:
        item_id: stable id of the dataset item (for logs and per-item failure injection).
        prompt: the full plain-text prompt (few-shot context included).
        messages: chat messages ``[{"role": ..., "content": ...}]`` when the task variant asks for
            the model's chat template; ``None`` for plain completion of ``prompt``.
        image: an optional PIL image (understanding tasks).
        stop: stop strings; generation may end at the first one.
        seed: per-item seed, so results do not depend on batch composition.
        chat_eot: the end-of-turn text the chat template closes a turn with (``None``: the template's
            ``<|eot_id|>`` token; ``"<eot_id>"``: the literal text of MMaDA's evaluation prompts).
    """

    item_id: str
    prompt: str
    messages: Optional[list[dict]] = None
    image: Any = None
    stop: list[str] = field(default_factory=list)
    seed: Optional[int] = None
    chat_eot: Optional[str] = None


@dataclass
class GenerationResult:
    """The model's answer to one :class:`GenerationRequest`.

    ``nfe`` = number of forward evaluations spent on this item (batched calls count once per item);
    ``stats`` holds family-specific extras (e.g. cache hits) and is stored as JSON.
    """

    text: str
    n_generated_tokens: int = 0
    nfe: int = 0
    latency_s: float = 0.0
    error: Optional[str] = None
    stats: dict = field(default_factory=dict)


@runtime_checkable
class EvalModel(Protocol):
    """What the harness needs from a model."""

    name: str  # human-readable model name (shown in every output)
    family: str  # registry family ("mmada", "dummy", ...)
    is_smoke: bool  # True for the packaged tiny default model / dummy fallback

    def fingerprint(self) -> str:
        """Hash of the model's config and weights (hex string); equal models give equal fingerprints."""

    def generate(self, requests: list[GenerationRequest], preset) -> list[GenerationResult]:
        """Complete every request with the sampler settings of ``preset`` (a sampler Preset)."""
