"""Planning a run: a card + settings -> the items with their exact prompts (no model needed), and the run id.

The sampler preset of a task is chosen in one place (:func:`resolve_preset`), the prompt flags
(``--apply-chat-template``, ``--system-instruction``) in :func:`prompt_overrides`; a text-to-image card gets its
prompt set instead of a dataset (:mod:`mmada_bench.data.prompt_sets`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Optional

from mmada_bench.cards.prompts import build_prompt, fewshot_plan, prompt_hash
from mmada_bench.cards.schema import TaskCard, VariantSpec
from mmada_bench.data.images import ItemImageError, image_digest, image_source
from mmada_bench.data.loading import TaskData, load_task_data
from mmada_bench.data.prompt_sets import load_prompt_set
from mmada_bench.errors import UsageError
from mmada_bench.models.defaults import NO_DEFAULTS, CheckpointDefaults
from mmada_bench.models.smoke import preset_name
from mmada_bench.run.types import PlannedItem, RunSettings, TaskPlan
from mmada_ref.from_dict import build_dataclass
from mmada_ref.sampling.presets import PRESETS, Preset, get_preset


def resolve_preset(card: TaskCard, variant: VariantSpec, settings: RunSettings,
                   defaults: CheckpointDefaults = NO_DEFAULTS) -> Preset:
    """The task's sampler preset: ``--preset``, the checkpoint's default, the variant's or the card's; its kind must fit."""
    name = preset_name(settings.preset, variant.preset or card.preset, card.output_kind, card.name, defaults)
    preset = get_preset(name)
    if settings.gen_kwargs:
        preset = with_overrides(preset, settings.gen_kwargs)
    if preset.kind != card.output_kind:
        fitting = ", ".join(sorted(n for n, p in PRESETS.items() if p.kind == card.output_kind))
        raise ValueError(f"{card.name}: preset {name!r} is a {preset.kind} preset; this task's outputs "
                         f"({card.output_type}) need one of {fitting}")
    return preset


def with_overrides(preset: Preset, overrides: dict) -> Preset:
    """``preset`` with some sampler settings replaced (``--gen-kwargs``), values converted to the fields' types;
    the result is named ``<preset>+<key>=<value>,...`` so every output says what ran."""
    fields = {f.name: f for f in dataclasses.fields(preset.settings)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"--gen-kwargs: unknown setting(s) {', '.join(unknown)} of the {preset.kind} preset "
                         f"{preset.name!r}; known: {', '.join(fields)}")
    values = {key: _typed(key, value, getattr(preset.settings, key)) for key, value in overrides.items()}
    try:  # checks types and the allowed values (cache, remasking)
        settings = build_dataclass(type(preset.settings), {**dataclasses.asdict(preset.settings), **values})
    except ValueError as exc:
        raise ValueError(f"--gen-kwargs: {exc}") from None
    label = ",".join(f"{k}={v}" for k, v in sorted(values.items()))
    return dataclasses.replace(preset, name=f"{preset.name}+{label}", settings=settings)


def _typed(key: str, value, default):
    """A ``--gen-kwargs`` value as the type of the setting it replaces (``none`` clears an optional one, and is a
    value of its own for a text setting such as ``cache=none``)."""
    if not isinstance(value, str):
        return value
    if value.lower() in ("none", "null") and not isinstance(default, str):
        return None
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "1")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float) or default is None and key in ("threshold", "factor"):
            return float(value)
    except ValueError:
        raise ValueError(f"--gen-kwargs {key}={value}: expected a {type(default).__name__}") from None
    return value


def prompt_overrides(card: TaskCard, variant: VariantSpec, settings: RunSettings) -> dict:
    """What ``--apply-chat-template`` / ``--system-instruction`` change for this task (``{}``: nothing); a
    :class:`UsageError` naming the card where it forbids them (``allow_chat_override: false``) or has no chat."""
    flags = [flag for flag, given in (("--apply-chat-template", settings.apply_chat_template),
                                      ("--system-instruction", bool(settings.system_instruction))) if given]
    if not flags:
        return {}
    if card.output_kind != "text":
        why = "its prompts go to the image generator, which has no chat template"
    elif not card.allow_chat_override:
        why = f"its card fixes the prompt of its protocol (allow_chat_override: false in {card.path or card.name})"
    else:
        why = ""
    if why:
        raise UsageError(f"task {card.name}: {' and '.join(flags)} refused: {why}; run this task without the flag")
    overrides: dict = {}
    if settings.apply_chat_template and not variant.chat:  # a chat variant already has the chat layout
        overrides["apply_chat_template"] = True
    if settings.system_instruction:
        overrides["system_instruction"] = settings.system_instruction
    return overrides


def plan_task(card: TaskCard, settings: RunSettings, defaults: CheckpointDefaults = NO_DEFAULTS,
              family: Optional[str] = None) -> TaskPlan:
    """Load the task's items and build every prompt; malformed rows become planned errors.

    Without ``--variant`` / ``--num-fewshot`` / ``--preset`` the checkpoint's ``defaults`` apply, then the card's
    (the variant: the card's default for the model ``family``, ``family_variants``)."""
    shots = settings.num_fewshot if settings.num_fewshot is not None else defaults.num_fewshot.get(card.name)
    if shots is not None and shots != card.prompt.fewshot.n:
        card = dataclasses.replace(card, prompt=dataclasses.replace(
            card.prompt, fewshot=dataclasses.replace(card.prompt.fewshot, n=int(shots))))
    variant_name = settings.variant or defaults.task_variants.get(card.name) or card.default_variant_for(family)
    variant = card.variant(variant_name)
    preset = resolve_preset(card, variant, settings, defaults)
    overrides = prompt_overrides(card, variant, settings)
    if card.output_kind == "image":
        return _plan_prompt_set(card, variant_name, variant, preset, settings)
    stop = list(variant.stop if variant.stop is not None else card.stop)
    data = load_task_data(card, settings.data_dir, require_data=settings.require_data, image_dir=settings.image_dir)
    items = data.items[: settings.limit] if settings.limit is not None else data.items
    shots = fewshot_plan(card, data.fewshot_pool, len(items))
    planned = []
    for item, item_shots in zip(items, shots):
        if item.error:
            planned.append(PlannedItem(item, error=item.error))
            continue
        try:
            prompt, messages = build_prompt(card, variant, item.doc, item_shots, chat="apply_chat_template" in overrides,
                                            system_instruction=overrides.get("system_instruction"))
        except KeyError as exc:
            planned.append(PlannedItem(item, error=f"malformed row {item.index}: {exc.args[0]}; fix the row"))
            continue
        planned.append(_with_image(card, data, PlannedItem(item, prompt, messages, prompt_hash(prompt, messages))))
    return TaskPlan(card, variant_name, variant, preset, stop, data, planned, overrides)


def _plan_prompt_set(card: TaskCard, variant_name: str, variant: VariantSpec, preset: Preset,
                     settings: RunSettings) -> TaskPlan:
    """Text-to-image: the prompt set's items; empty prompts become planned errors."""
    data = load_prompt_set(card, settings.prompts, settings.data_dir)
    items = data.items[: settings.limit] if settings.limit is not None else data.items
    planned = []
    for item in items:
        if item.error:
            planned.append(PlannedItem(item, error=item.error))
            continue
        if not str(item.doc.get("prompt", "")).strip():
            planned.append(PlannedItem(item, error=f"empty prompt (item {item.item_id}, row {item.index} of "
                                                   f"{data.source}): write a prompt or remove the row"))
            continue
        prompt, _ = build_prompt(card, variant, item.doc, [])
        planned.append(PlannedItem(item, prompt, None, prompt_hash(prompt, None)))
    return TaskPlan(card, variant_name, variant, preset, [], data, planned)


def _with_image(card: TaskCard, data: TaskData, planned: PlannedItem) -> PlannedItem:
    """Attach the item's image source (image tasks); its digest joins the prompt hash. A missing image is an error."""
    if not card.dataset.image_field:
        return planned
    try:
        planned.image = image_source(planned.item.doc, card.dataset.image_field, data.extra.get("image_dir"))
        planned.prompt_hash = hashlib.sha256((planned.prompt_hash + image_digest(planned.image)).encode()).hexdigest()
    except (ItemImageError, OSError) as exc:
        planned.image, planned.error = None, f"item {planned.item.item_id}: {exc}"
    return planned


def batch_independent(plans: list[TaskPlan], settings: RunSettings) -> bool:
    """True where an item's output does not depend on its batch: float32 on the CPU, every text task decoding
    greedily (temperature 0, low-confidence remasking) and every image task padding its text to the fixed width
    (one generator per row). Elsewhere padding and batch shapes reorder floating-point sums, and sampled text
    shares one seed per batch (docs/samplers.md, "Whole runs")."""
    if settings.dtype != "float32" or not str(settings.device).startswith("cpu"):
        return False
    return all(_row_independent(p.preset.settings) for p in plans)


def _row_independent(s) -> bool:
    if s.kind == "image":
        return not s.pad_to_longest
    return s.temperature == 0 and s.remasking == "low_confidence"


def compute_run_id(model, plans: list[TaskPlan], settings: RunSettings) -> str:
    """``<model-name>-<12 hex>`` from everything that can change the outputs (the requested batch size, ``auto``
    included, only where outputs may depend on it)."""
    payload = {"model": model.fingerprint(), "model_name": model.name, "tasks": [p.describe() for p in plans],
               "seed": settings.seed, "limit": settings.limit, "dtype": settings.dtype}
    if getattr(model, "gemm", "default") != "default":  # another GEMM changes the last bits of the logits
        payload["gemm"] = model.gemm
    if not batch_independent(plans, settings):
        payload["batch_size"] = settings.batch_size
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', model.name)}-{digest}"
