"""Name -> object registries for filters, per-item metrics, set metrics and model families.

Each registry is filled by a decorator in the module that defines the object. Filters and metrics
are registered when :mod:`mmada_bench.metrics` is imported (it imports every metric module); model
adapters that need torch/transformers are imported only when their family is first asked for
(``named_modules``), so listing tasks or reading results never loads them.

    @register_filter("gsm8k_strict")
    def strict(text, doc): ...
    FILTERS.get("gsm8k_strict")
"""
from __future__ import annotations

import importlib
from typing import Any, Callable


class Registry:
    """A named table of objects, filled by a decorator and looked up with a helpful error."""

    def __init__(self, kind: str, named_modules: dict | None = None):
        self.kind = kind
        self._items: dict[str, Any] = {}
        self._named_modules = dict(named_modules or {})  # name -> module that registers it (heavy, imported on use)

    def register(self, name: str) -> Callable:
        """Decorator: ``@REG.register("name")`` stores the decorated object under ``name``."""

        def deco(obj):
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> Any:
        """Return the object registered as ``name``; unknown names list the known ones."""
        if name not in self._items and name in self._named_modules:
            importlib.import_module(self._named_modules[name])  # heavy adapter (torch/transformers): on first use
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or '(none)'}")
        return self._items[name]

    def names(self) -> list[str]:
        """All registered names (named modules listed without importing them)."""
        return sorted(set(self._items) | set(self._named_modules))

    def __contains__(self, name: str) -> bool:
        return name in self._items or name in self._named_modules


FILTERS = Registry("filter")
METRICS = Registry("metric")
# Metrics over a whole task's items (F1 over splits, MME acc+, corpus CIDEr): fn(entries, options) -> rows.
SET_METRICS = Registry("set metric")
MODELS = Registry("model", named_modules={
    "dummy": "mmada_bench.models.dummy", "mmada": "mmada_bench.models.mmada", "llada": "mmada_bench.models.mmada",
    "hf-causal": "mmada_bench.models.hf_causal"})

register_filter = FILTERS.register
register_metric = METRICS.register
register_set_metric = SET_METRICS.register
register_model = MODELS.register
