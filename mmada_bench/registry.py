"""Name -> object registries for tasks, filters, metrics and model families.

Each registry is filled by decorators in the module that defines the object; modules are imported
lazily, only when a name is first looked up, through a small ``name -> module`` table
(:data:`LAZY_MODULES`). Tasks are not Python objects: they are YAML cards found on disk
(:func:`task_cards`).

    @register_filter("gsm8k_strict")
    def strict(text, doc): ...

    get_filter("gsm8k_strict")   # imports mmada_bench.filters on first use
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable, Iterable


class Registry:
    """A named table of objects, filled by a decorator and looked up with a helpful error."""

    def __init__(self, kind: str, lazy_modules: Iterable[str] = (), named_modules: dict | None = None):
        self.kind = kind
        self._items: dict[str, Any] = {}
        self._lazy_modules = list(lazy_modules)  # imported on the first miss, all of them
        self._named_modules = dict(named_modules or {})  # name -> module that registers it
        self._loaded = False

    def register(self, name: str) -> Callable:
        """Decorator: ``@REG.register("name")`` stores the decorated object under ``name``."""

        def deco(obj):
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def _load_all(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._lazy_modules:
                importlib.import_module(module)

    def get(self, name: str) -> Any:
        """Return the object registered as ``name``; unknown names list the known ones."""
        if name not in self._items and name in self._named_modules:
            importlib.import_module(self._named_modules[name])
        if name not in self._items:
            self._load_all()
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or '(none)'}")
        return self._items[name]

    def names(self) -> list[str]:
        """All registered names (lazy modules included; named modules listed without importing)."""
        self._load_all()
        return sorted(set(self._items) | set(self._named_modules))

    def __contains__(self, name: str) -> bool:
        return name in self.names()


FILTERS = Registry("filter", lazy_modules=["mmada_bench.filters"])
METRICS = Registry("metric", lazy_modules=["mmada_bench.metrics"])
# Metrics over a whole task's items (F1 over splits, MME acc+, corpus CIDEr): fn(entries, options) -> rows.
SET_METRICS = Registry("set metric", lazy_modules=["mmada_bench.understanding"])
# Model families. The MMaDA adapter imports torch/transformers, so it is imported only when asked for.
MODELS = Registry("model", lazy_modules=["mmada_bench.models.dummy"],
                  named_modules={"mmada": "mmada_bench.models.mmada", "llada": "mmada_bench.models.mmada",
                                 "hf-causal": "mmada_bench.models.hf_causal"})

register_filter = FILTERS.register
register_metric = METRICS.register
register_set_metric = SET_METRICS.register
register_model = MODELS.register


def get_filter(name: str):
    return FILTERS.get(name)


def get_metric(name: str):
    return METRICS.get(name)


def get_model_family(name: str):
    return MODELS.get(name)


# --- tasks: YAML cards on disk ------------------------------------------------------------------

def task_dirs() -> list[Path]:
    """Folders searched for task cards, first match wins: ``$MMADA_TASKS_DIR`` (os.pathsep-separated),
    the repository's top-level ``tasks/``, and the cards packaged in ``mmada_bench/tasks/``."""
    import os

    dirs = [Path(p) for p in os.environ.get("MMADA_TASKS_DIR", "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parent
    dirs += [here.parent / "tasks", here / "tasks"]
    return [d for d in dirs if d.is_dir()]


def task_cards() -> dict[str, Path]:
    """``task name -> card path`` for every ``*.yaml`` card found in :func:`task_dirs`."""
    found: dict[str, Path] = {}
    for folder in task_dirs():
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def get_task(name: str):
    """Load and validate the card of task ``name`` (see :mod:`mmada_bench.cards`)."""
    from mmada_bench.cards import load_card

    cards = task_cards()
    if name not in cards:
        known = ", ".join(sorted(cards)) or "(none)"
        raise KeyError(f"unknown task {name!r}; known tasks: {known} "
                       f"(add a card tasks/{name}.yaml or check the spelling)")
    return load_card(cards[name])
