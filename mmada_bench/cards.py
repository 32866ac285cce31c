"""Task cards: the YAML schema (dataclasses) and its validation.

A card is one YAML file per task (``tasks/<name>.yaml``). Loading checks every field against the
dataclasses below: unknown fields, missing required fields, wrong types, and references that do
not resolve (filters, metrics, presets, variants) all raise :class:`CardError` naming the file and
the field, e.g. ``tasks/gsm8k.yaml: field 'prompt.fewshot.n': expected int, got str ('five')``.
See docs/harness.md for a field-by-field description.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


class CardError(ValueError):
    """A task card is invalid; the message names the file and the field."""


@dataclass
class DatasetSpec:
    """Where the items come from."""

    hf_id: Optional[str] = None  # Hugging Face dataset id, loaded from the local cache (offline)
    hf_config: Optional[str] = None
    split: str = "test"  # evaluation split
    fewshot_split: Optional[str] = None  # split the few-shot exemplars are drawn from
    local_dir: Optional[str] = None  # folder under --data-dir (default: the task name)
    id_field: Optional[str] = None  # field holding a stable item id (default: "<split>-<index>")
    required_fields: list[str] = field(default_factory=list)  # canonical schema: must be present
    image_field: Optional[str] = None  # item field holding the image (bytes, {bytes, path}, path, PIL)
    image_dir: str = "images"  # folder of image files named by relative paths (under the task's data folder)
    local_formats: list[str] = field(default_factory=list)  # other on-disk formats (mmada_bench/formats.py)
    group_by: list[str] = field(default_factory=list)  # fields that group items (e.g. MME's question pairs)
    group_size: Optional[int] = None  # items per group; other group sizes become error records


@dataclass
class FewShotSpec:
    """How few-shot exemplars are chosen."""

    n: int = 0
    sampler: str = "random"  # random (lm-eval style: one seeded Random, a draw per item in order) | first_n | fixed
    seed: int = 1234  # lm-eval's default fewshot seed
    examples: list[dict] = field(default_factory=list)  # the exemplars of sampler "fixed"


@dataclass
class PromptSpec:
    """Prompt template (``{{field}}`` placeholders) and few-shot layout."""

    template: str
    target: str = ""  # template of an exemplar's answer
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    fewshot: FewShotSpec = field(default_factory=FewShotSpec)


@dataclass
class VariantSpec:
    """A named way to present the task to a model (e.g. lm-eval plain text vs MMaDA chat)."""

    description: str = ""
    prefix: str = ""  # text put before the whole few-shot prompt
    chat: bool = False  # send the prompt as one user message through the model's chat template
    system_prompt: Optional[str] = None  # chat system message (chat variants only)
    preset: Optional[str] = None  # overrides the card's preset
    stop: Optional[list[str]] = None  # overrides the card's stop strings
    template: Optional[str] = None  # overrides prompt.template (e.g. another framework's instruction)
    replace: dict[str, str] = field(default_factory=dict)  # literal replacements in the rendered item prompt
    primary_metric: Optional[str] = None  # overrides the card's primary metric ("metric/filter")


@dataclass
class MetricSpec:
    """One metric, applied to the output of one filter chain against a gold field."""

    name: str  # registered metric
    filter: str = "none"  # key of ``filters`` ("none": the stop-truncated output itself)
    gold: str = "answer"  # item field holding the reference


@dataclass
class SetMetricSpec:
    """A metric computed once over all items of a task (F1 over splits, MME acc+, corpus CIDEr)."""

    name: str  # registered set metric (mmada_bench.registry.SET_METRICS)
    filter: str  # label of the leaderboard rows' ``filter`` column (e.g. the parser convention)
    options: dict = field(default_factory=dict)  # passed to the set metric (e.g. {variant: lmms_eval})


@dataclass
class ProtocolSpec:
    """What the numbers mean, for comparison with published baselines."""

    benchmark: str  # benchmark name in leaderboards/baselines.parquet
    shots: int = 0
    split: str = "test"
    metric: str = ""
    description: str = ""
    baseline_aliases: dict[str, str] = field(default_factory=dict)  # other baseline benchmark -> how it differs


@dataclass
class RegressionSpec:
    """How far a re-run may drift from a stored result before it counts as a regression."""

    tolerance: float = 0.0  # absolute, on the primary metric's fraction scale


@dataclass
class TaskCard:
    """A validated task card."""

    name: str
    version: str
    dataset: DatasetSpec
    prompt: PromptSpec
    protocol: ProtocolSpec
    metrics: list[MetricSpec] = field(default_factory=list)  # per-item metrics (mean + CI)
    description: str = ""
    module: Optional[str] = None  # optional module imported first (registers task-specific filters/metrics)
    variants: dict[str, VariantSpec] = field(default_factory=lambda: {"default": VariantSpec()})
    default_variant: str = "default"
    preset: str = "ci"
    stop: list[str] = field(default_factory=list)
    filters: dict[str, list[str]] = field(default_factory=dict)  # name -> chain of registered filters
    set_metrics: list[SetMetricSpec] = field(default_factory=list)  # metrics over the whole item set
    primary_metric: Optional[str] = None  # "metric/filter"; default: the first metric
    regression: RegressionSpec = field(default_factory=RegressionSpec)
    path: Optional[str] = None  # set on load

    def variant(self, name: Optional[str]) -> VariantSpec:
        """The variant ``name`` (the default variant for None)."""
        name = name or self.default_variant
        if name not in self.variants:
            raise KeyError(f"task {self.name!r} has no variant {name!r}; known: {', '.join(self.variants)}")
        return self.variants[name]

    def primary(self, variant: Optional[str] = None) -> tuple[str, str]:
        """(metric, filter) of the headline number (of ``variant`` when it overrides it)."""
        chosen = self.variants[variant].primary_metric if variant in self.variants else None
        chosen = chosen or self.primary_metric
        if chosen:
            metric, _, filt = chosen.partition("/")
            return metric, filt or "none"
        return self.metrics[0].name, self.metrics[0].filter

    def content_hash(self) -> str:
        """Hash of everything in the card that can change prompts or scores."""
        data = dataclasses.asdict(self)
        data.pop("path", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# --- generic dataclass validation --------------------------------------------------------------

def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _convert(value: Any, tp, where: str) -> Any:
    """Check ``value`` against type ``tp`` (recursively); return it, built into dataclasses."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], where)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise CardError(f"field {where!r}: expected a list, got {type(value).__name__} ({value!r})")
        (item_tp,) = typing.get_args(tp)
        return [_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise CardError(f"field {where!r}: expected a mapping, got {type(value).__name__} ({value!r})")
        key_tp, val_tp = typing.get_args(tp)
        return {_convert(k, key_tp, f"{where}"): _convert(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is dict and isinstance(value, dict):
        return value
    if tp is bool and not isinstance(value, bool) or tp in (int, float) and isinstance(value, bool):
        raise CardError(f"field {where!r}: expected {_type_name(tp)}, got {type(value).__name__} ({value!r})")
    if not isinstance(value, tp):
        raise CardError(f"field {where!r}: expected {_type_name(tp)}, got {type(value).__name__} ({value!r})")
    return value


def _build(cls, data: Any, where: str):
    """Build dataclass ``cls`` from a mapping, rejecting unknown and missing fields."""
    if not isinstance(data, dict):
        raise CardError(f"field {where or '(top level)'!r}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "path"}
    prefix = f"{where}." if where else ""
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise CardError(f"unknown field {prefix + str(unknown[0])!r} (known: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], prefix + name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise CardError(f"field {prefix + name!r} is required")
    return cls(**kwargs)


def _check_references(card: TaskCard) -> None:
    """Cross-field checks: filters, metrics, presets and variants named in the card must exist."""
    from mmada_bench.registry import FILTERS, METRICS

    for key, chain in card.filters.items():
        for i, name in enumerate(chain):
            if name not in FILTERS.names():
                raise CardError(f"field 'filters.{key}[{i}]': unknown filter {name!r} (known: {', '.join(FILTERS.names())})")
    for i, metric in enumerate(card.metrics):
        if metric.name not in METRICS.names():
            raise CardError(f"field 'metrics[{i}].name': unknown metric {metric.name!r} (known: {', '.join(METRICS.names())})")
        if metric.filter != "none" and metric.filter not in card.filters:
            raise CardError(f"field 'metrics[{i}].filter': {metric.filter!r} is not a key of 'filters' ({', '.join(card.filters) or 'none'})")
    if not card.metrics and not card.set_metrics:
        raise CardError("field 'metrics': at least one metric (or one entry of 'set_metrics') is required")
    _check_set_metrics(card)
    if card.default_variant not in card.variants:
        raise CardError(f"field 'default_variant': {card.default_variant!r} is not a key of 'variants' ({', '.join(card.variants)})")
    presets = [("preset", card.preset)] + [(f"variants.{k}.preset", v.preset) for k, v in card.variants.items() if v.preset]
    for where, name in presets:
        _check_preset(where, name)
    primaries = [("primary_metric", None, card.primary_metric)] + [
        (f"variants.{k}.primary_metric", k, v.primary_metric) for k, v in card.variants.items() if v.primary_metric]
    for where, variant, value in primaries:
        if value and not _produces(card, *card.primary(variant)):
            raise CardError(f"field {where!r}: {value!r} matches no entry of 'metrics' or 'set_metrics' (use 'metric/filter')")
    if not card.primary_metric and not card.metrics:
        raise CardError("field 'primary_metric' is required when the card has only set metrics")
    if card.prompt.fewshot.sampler not in ("random", "first_n", "fixed"):
        raise CardError(f"field 'prompt.fewshot.sampler': {card.prompt.fewshot.sampler!r} is not one of random, first_n, fixed")
    if card.prompt.fewshot.sampler == "fixed" and len(card.prompt.fewshot.examples) < card.prompt.fewshot.n:
        raise CardError(f"field 'prompt.fewshot.examples': sampler 'fixed' needs at least n={card.prompt.fewshot.n} examples")
    if card.prompt.fewshot.sampler != "fixed" and card.prompt.fewshot.n and not card.dataset.fewshot_split:
        raise CardError("field 'dataset.fewshot_split' is required when prompt.fewshot.n > 0 draws from the data")


def _check_set_metrics(card: TaskCard) -> None:
    from mmada_bench.registry import SET_METRICS

    for i, spec in enumerate(card.set_metrics):
        if spec.name not in SET_METRICS.names():
            raise CardError(f"field 'set_metrics[{i}].name': unknown set metric {spec.name!r} "
                            f"(known: {', '.join(SET_METRICS.names()) or 'none'})")
    if card.dataset.group_size is not None and not card.dataset.group_by:
        raise CardError("field 'dataset.group_by' is required with 'dataset.group_size'")
    if card.dataset.local_formats:
        from mmada_bench.formats import LOCAL_FORMATS

        for i, name in enumerate(card.dataset.local_formats):
            if name not in LOCAL_FORMATS:
                raise CardError(f"field 'dataset.local_formats[{i}]': unknown format {name!r} (known: {', '.join(LOCAL_FORMATS)})")


def _produces(card: TaskCard, metric: str, filt: str) -> bool:
    """Whether the card yields a leaderboard row ``metric/filt`` (per-item or set metric)."""
    from mmada_bench.registry import SET_METRICS

    if any(m.name == metric and m.filter == filt for m in card.metrics):
        return True
    for spec in card.set_metrics:
        outputs = getattr(SET_METRICS.get(spec.name), "outputs", None)
        if spec.filter == filt and (outputs is None or metric in outputs):
            return True
    return False


def _check_preset(where: str, name: str) -> None:
    from mmada_ref.sampling.presets import PRESETS

    if name not in PRESETS:
        raise CardError(f"field {where!r}: unknown sampler preset {name!r} (known: {', '.join(sorted(PRESETS))})")


def load_card(path: str | Path) -> TaskCard:
    """Read, validate and return the card at ``path``; raises :class:`CardError` naming file and field."""
    import importlib

    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CardError(f"{path}: not valid YAML ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("version"), (int, float)):
        data["version"] = str(data["version"])  # `version: 3.0` is fine too
    try:
        card = _build(TaskCard, data, "")
        if card.name != path.stem:
            raise CardError(f"field 'name': {card.name!r} must equal the file name {path.stem!r}")
        if card.module:
            importlib.import_module(card.module)
        _check_references(card)
    except CardError as exc:
        raise CardError(f"{path}: {exc}") from None
    card.path = str(path)
    return card
