"""Task cards: the YAML schema (dataclasses) and its validation.

A card is one YAML file per task (``mmada_bench/tasks/<name>.yaml``, or a folder in ``$MMADA_TASKS_DIR``).
Loading checks every field against the dataclasses below: unknown fields, missing required fields, wrong
types, and references that do not resolve (filters, metrics, presets, variants) all raise
:class:`CardError` naming the file and the field, e.g.
``tasks/gsm8k.yaml: field 'prompt.fewshot.n': expected int, got str ('five')``.
See docs/harness.md for a field-by-field description.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from mmada_bench.data.formats import LOCAL_FORMATS
from mmada_bench.metrics import FILTERS, METRICS, SET_METRICS
from mmada_ref.from_dict import build_dataclass
from mmada_ref.sampling.presets import PRESETS

#: what a task asks the model for -> the kind of sampler preset it runs with. The runner dispatches on it:
#: text outputs go through the text path (``run/text_path.py``), images through ``run/text_to_image.py``.
OUTPUT_TYPES = {
    "generate_until": "text",  # free text cut at stop strings (GSM8K, MATH500)
    "yes_no": "text",  # a short answer parsed to yes/no (POPE, MME)
    "caption": "text",  # a caption scored against references (Flickr30k)
    "text_to_image": "image",  # an image per prompt, scored by image metrics (CLIP score, ImageReward)
}


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
    chat_eot: Optional[str] = None  # end-of-turn text of the chat template; "<eot_id>" = the official eval strings
    preset: Optional[str] = None  # overrides the card's preset
    stop: Optional[list[str]] = None  # overrides the card's stop strings
    template: Optional[str] = None  # overrides prompt.template (e.g. another framework's instruction)
    replace: dict[str, str] = field(default_factory=dict)  # literal replacements in the rendered item prompt
    primary_metric: Optional[str] = None  # overrides the card's primary metric ("metric/filter")
    answer_filter: Optional[str] = None  # a registered filter run before every chain (e.g. after_think)


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

    benchmark: str  # benchmark name in mmada_bench/assets/baselines.parquet
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
    output_type: str  # a key of OUTPUT_TYPES
    preset: str  # sampler preset (mmada_ref.sampling.presets.PRESETS); variants may override it
    metrics: list[MetricSpec] = field(default_factory=list)  # per-item metrics (mean + CI)
    description: str = ""
    module: Optional[str] = None  # optional module imported first (registers task-specific filters/metrics)
    variants: dict[str, VariantSpec] = field(default_factory=lambda: {"default": VariantSpec()})
    default_variant: str = "default"
    family_variants: dict[str, str] = field(default_factory=dict)  # model family -> its default variant
    stop: list[str] = field(default_factory=list)
    filters: dict[str, list[str]] = field(default_factory=dict)  # name -> chain of registered filters
    set_metrics: list[SetMetricSpec] = field(default_factory=list)  # metrics over the whole item set
    primary_metric: Optional[str] = None  # "metric/filter"; default: the first metric
    regression: RegressionSpec = field(default_factory=RegressionSpec)
    allow_chat_override: bool = True  # false: --apply-chat-template / --system-instruction are refused (fixed protocol)
    path: Optional[str] = None  # set on load

    @property
    def output_kind(self) -> str:
        """``text`` or ``image``: the kind of sampler preset (and runner path) this card's outputs need."""
        return OUTPUT_TYPES[self.output_type]

    @property
    def metric_names(self) -> list[str]:
        """Names of the card's per-item and set metrics, in card order (``list-tasks``, task aliases)."""
        names = [m.name for m in self.metrics] + [s.name for s in self.set_metrics]
        return list(dict.fromkeys(names))

    def default_variant_for(self, family: Optional[str]) -> str:
        """The default variant for a model family (the protocol its authors ran), else ``default_variant``."""
        return self.family_variants.get(family or "", self.default_variant)

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
        data.pop("allow_chat_override", None)  # a permission for flags; what the flags change is in the run id
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _check_references(card: TaskCard) -> None:
    """Cross-field checks: filters, metrics, presets and variants named in the card must exist."""
    for key, chain in card.filters.items():
        for i, name in enumerate(chain):
            if name not in FILTERS.names():
                raise CardError(f"field 'filters.{key}[{i}]': unknown filter {name!r} (known: {', '.join(FILTERS.names())})")
    for key, variant in card.variants.items():
        if variant.answer_filter is not None and variant.answer_filter not in FILTERS.names():
            raise CardError(f"field 'variants.{key}.answer_filter': unknown filter {variant.answer_filter!r} "
                            f"(known: {', '.join(FILTERS.names())})")
    for i, metric in enumerate(card.metrics):
        if metric.name not in METRICS.names():
            raise CardError(f"field 'metrics[{i}].name': unknown metric {metric.name!r} (known: {', '.join(METRICS.names())})")
        if metric.filter != "none" and metric.filter not in card.filters:
            raise CardError(f"field 'metrics[{i}].filter': {metric.filter!r} is not a key of 'filters' ({', '.join(card.filters) or 'none'})")
    if not card.metrics and not card.set_metrics:
        raise CardError("field 'metrics': at least one metric (or one entry of 'set_metrics') is required")
    _check_set_metrics(card)
    if card.output_type not in OUTPUT_TYPES:
        raise CardError(f"field 'output_type': {card.output_type!r} is not one of {', '.join(OUTPUT_TYPES)}")
    if card.default_variant not in card.variants:
        raise CardError(f"field 'default_variant': {card.default_variant!r} is not a key of 'variants' ({', '.join(card.variants)})")
    for family, name in card.family_variants.items():
        if name not in card.variants:
            raise CardError(f"field 'family_variants.{family}': {name!r} is not a key of 'variants' ({', '.join(card.variants)})")
    presets = [("preset", card.preset)] + [(f"variants.{k}.preset", v.preset) for k, v in card.variants.items() if v.preset]
    for where, name in presets:
        _check_preset(where, name, card.output_kind)
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
    for i, spec in enumerate(card.set_metrics):
        if spec.name not in SET_METRICS.names():
            raise CardError(f"field 'set_metrics[{i}].name': unknown set metric {spec.name!r} "
                            f"(known: {', '.join(SET_METRICS.names()) or 'none'})")
    if card.dataset.group_size is not None and not card.dataset.group_by:
        raise CardError("field 'dataset.group_by' is required with 'dataset.group_size'")
    if card.dataset.local_formats:
        for i, name in enumerate(card.dataset.local_formats):
            if name not in LOCAL_FORMATS:
                raise CardError(f"field 'dataset.local_formats[{i}]': unknown format {name!r} (known: {', '.join(LOCAL_FORMATS)})")


def _produces(card: TaskCard, metric: str, filt: str) -> bool:
    """Whether the card yields a leaderboard row ``metric/filt`` (per-item or set metric)."""
    if any(m.name == metric and m.filter == filt for m in card.metrics):
        return True
    for spec in card.set_metrics:
        outputs = getattr(SET_METRICS.get(spec.name), "outputs", None)
        if spec.filter == filt and (outputs is None or metric in outputs):
            return True
    return False


def _check_preset(where: str, name: str, kind: str) -> None:
    if name not in PRESETS:
        raise CardError(f"field {where!r}: unknown sampler preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    if PRESETS[name].kind != kind:
        fitting = ", ".join(sorted(n for n, p in PRESETS.items() if p.kind == kind))
        raise CardError(f"field {where!r}: preset {name!r} is a {PRESETS[name].kind} preset; this card's outputs "
                        f"need a {kind} preset ({fitting})")


def load_card(path: str | Path) -> TaskCard:
    """Read, validate and return the card at ``path``; raises :class:`CardError` naming file and field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CardError(f"{path}: not valid YAML ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("version"), (int, float)):
        data["version"] = str(data["version"])  # `version: 3.0` is fine too
    try:
        card = build_dataclass(TaskCard, data, error=CardError, skip=("path",))
        if card.name != path.stem:
            raise CardError(f"field 'name': {card.name!r} must equal the file name {path.stem!r}")
        if card.module:
            try:
                importlib.import_module(card.module)
            except ImportError as exc:
                raise CardError(f"field 'module': cannot import {card.module!r} ({exc}); fix the module name "
                                "or install the package that provides it") from None
        _check_references(card)
    except CardError as exc:
        raise CardError(f"{path}: {exc}") from None
    card.path = str(path)
    return card
