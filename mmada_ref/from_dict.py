"""Build typed dataclasses from parsed YAML/JSON mappings (task cards, training stage configs).

One implementation for every config the project reads: unknown keys, missing required fields and wrong
types raise the caller's error class with the dotted field name, e.g.
``field 'prompt.fewshot.n': expected int, got str ('five')`` or ``unknown key 'optim.learning_rate'``.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any


def build_dataclass(cls, data: Any, where: str = "", error: type[Exception] = ValueError,
                    numeric_strings: bool = False, skip: tuple[str, ...] = ()):
    """Build dataclass ``cls`` from ``data`` (``None`` = all defaults), checking every field's type.

    Args:
        error: exception class raised with the message.
        numeric_strings: accept ``"1e-4"`` for a float field (PyYAML reads exponents without a dot as text).
        skip: field names that are never read from ``data`` (set after building, e.g. a card's path).
    """
    return _Builder(error, numeric_strings, skip).build(cls, {} if data is None else data, where)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


class _Builder:
    def __init__(self, error, numeric_strings: bool, skip: tuple[str, ...]):
        self.error, self.numeric_strings, self.skip = error, numeric_strings, skip

    def build(self, cls, data: Any, where: str):
        if not isinstance(data, dict):
            raise self.error(f"field {where or '(top level)'!r}: expected a mapping, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in self.skip}
        prefix = f"{where}." if where else ""
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise self.error(f"unknown key {prefix + str(unknown[0])!r} (known: {', '.join(fields)})")
        kwargs = {}
        for name, f in fields.items():
            if name in data:
                value = data[name]
                default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
                if dataclasses.is_dataclass(default) and isinstance(value, dict):  # a partial section keeps its factory's defaults
                    value = {**{d.name: getattr(default, d.name) for d in dataclasses.fields(default)}, **value}
                kwargs[name] = self.convert(value, hints[name], prefix + name)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise self.error(f"field {prefix + name!r} is required")
        return cls(**kwargs)

    def convert(self, value: Any, tp, where: str) -> Any:
        """Check ``value`` against ``tp`` (recursively) and return it, dataclasses built and tuples made."""
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = typing.get_args(tp)
            if value is None and type(None) in args:
                return None
            return self.convert(value, next(a for a in args if a is not type(None)), where)
        if origin is typing.Literal:
            if value not in typing.get_args(tp):
                raise self.error(f"field {where!r}: {value!r} is not one of {', '.join(map(repr, typing.get_args(tp)))}")
            return value
        if dataclasses.is_dataclass(tp):
            if isinstance(value, tp):  # a section default kept as it is
                return value
            return self.build(tp, {} if value is None else value, where)
        if origin in (list, tuple) or tp in (list, tuple):
            if not isinstance(value, (list, tuple)) or (tp is list or origin is list) and not isinstance(value, list):
                raise self.error(f"field {where!r}: expected a list, got {type(value).__name__} ({value!r})")
            args = [a for a in typing.get_args(tp) if a is not Ellipsis]
            items = [self.convert(v, args[min(i, len(args) - 1)], f"{where}[{i}]") if args else v
                     for i, v in enumerate(value)]
            return tuple(items) if (origin or tp) is tuple else items
        if origin is dict or tp is dict:
            if not isinstance(value, dict):
                raise self.error(f"field {where!r}: expected a mapping, got {type(value).__name__} ({value!r})")
            if origin is None:
                return value
            key_tp, val_tp = typing.get_args(tp)
            return {self.convert(k, key_tp, where): self.convert(v, val_tp, f"{where}.{k}") for k, v in value.items()}
        if tp is Any:
            return value
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if tp is float and self.numeric_strings and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if tp is bool and not isinstance(value, bool) or tp in (int, float) and isinstance(value, bool):
            raise self.error(f"field {where!r}: expected {_type_name(tp)}, got {type(value).__name__} ({value!r})")
        if not isinstance(value, tp):
            raise self.error(f"field {where!r}: expected {_type_name(tp)}, got {type(value).__name__} ({value!r})")
        return value
