"""A deterministic stand-in model for plumbing tests (family ``dummy``).

``--model dummy`` or with options ``--model dummy:delay=0.05,fail=ID1+ID2,empty=ID3``:

* ``delay``  seconds to sleep per item (to watch progress bars or to kill a run mid-way);
* ``fail``   item ids whose generation raises (``+``-separated);
* ``empty``  item ids that get an empty generation.

The answer text depends only on the prompt: ``"... The answer is N.\\n#### N"`` with N from the
prompt's hash, followed by a stop string so truncation is exercised.
"""
from __future__ import annotations

import hashlib
import json
import time

from mmada_bench.models.base import GenerationRequest, GenerationResult
from mmada_bench.registry import register_model


class DummyModel:
    """Deterministic fake model; counts its calls in ``calls`` / ``generated_ids``."""

    family = "dummy"

    def __init__(self, name: str = "dummy", delay: float = 0.0, fail=(), empty=(), is_smoke: bool = False):
        self.name = name
        self.delay = float(delay)
        self.fail = set(fail)
        self.empty = set(empty)
        self.is_smoke = is_smoke
        self.calls = 0
        self.generated_ids: list[str] = []

    def fingerprint(self) -> str:
        """The dummy's behaviour depends only on its (empty) config."""
        return hashlib.sha256(json.dumps({"family": "dummy", "version": 1}).encode()).hexdigest()

    def generate(self, requests: list[GenerationRequest], preset=None) -> list[GenerationResult]:
        """Answer each request; raises if any requested item is listed in ``fail``."""
        self.calls += 1
        failing = [r.item_id for r in requests if r.item_id in self.fail]
        if failing:
            raise RuntimeError(f"dummy failure requested for item(s) {', '.join(failing)}")
        results = []
        for request in requests:
            start = time.perf_counter()
            if self.delay:
                time.sleep(self.delay)
            self.generated_ids.append(request.item_id)
            text = "" if request.item_id in self.empty else self._answer(request.prompt)
            results.append(GenerationResult(text=text, n_generated_tokens=len(text.split()), nfe=1,
                                            latency_s=time.perf_counter() - start))
        return results

    @staticmethod
    def _answer(prompt: str) -> str:
        number = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) % 50
        return f" Let me think step by step. The answer is {number}.\n#### {number}\n\nQuestion: more"


def _ids(value: str) -> list[str]:
    return [v for v in value.split("+") if v]


@register_model("dummy")
def load_dummy(spec: str = "dummy", *, device: str = "cpu", dtype: str = "float32", **options) -> DummyModel:
    """Build a DummyModel from ``dummy[:key=value,...]`` (keys: delay, fail, empty)."""
    kwargs: dict = {}
    _, _, opts = spec.partition(":")
    for part in filter(None, opts.split(",")):
        key, sep, value = part.partition("=")
        if not sep or key not in ("delay", "fail", "empty"):
            raise ValueError(f"bad dummy model option {part!r}; use dummy:delay=0.1,fail=ID1+ID2,empty=ID3")
        kwargs[key] = float(value) if key == "delay" else _ids(value)
    kwargs.update(options)
    return DummyModel(**kwargs)
