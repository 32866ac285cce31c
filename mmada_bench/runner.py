"""Run tasks on a model: plan prompts, generate what is not stored yet, score, write results.

``run(settings)`` is what ``python -m mmada_bench run`` calls; tests call it with a model object.
Re-running the same settings resumes: the run id is a hash of everything that can change the
outputs (model fingerprint, task versions + card hashes, variants, presets, stop strings, dataset
fingerprints, seed, limit, dtype, batch size), and items already in
``runs/<run_id>/items/<task>.jsonl`` are not generated again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from mmada_bench.cards import TaskCard, VariantSpec
from mmada_bench.data import Item, TaskData, load_task_data
from mmada_bench.environment import git_sha, package_versions, utc_now
from mmada_bench.models.base import GenerationRequest, GenerationResult
from mmada_bench.results import ItemStore, atomic_write_bytes, file_lock, upsert_leaderboard, write_items


SMOKE_PRESET = "ci"  # preset used with the packaged default (smoke) model unless --preset is given


class RunBusy(RuntimeError):
    """Another process holds the same run."""


@dataclass
class RunSettings:
    """Everything ``run`` needs besides the model object."""

    tasks: list[str]
    model: Optional[str] = None  # --model; None = packaged smoke model
    limit: Optional[int] = None
    data_dir: Optional[str] = None
    output_dir: str = "leaderboards"
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 1
    preset: Optional[str] = None  # overrides the cards' presets
    seed: int = 1234
    variant: Optional[str] = None  # overrides the cards' default variants
    run_id: Optional[str] = None
    retry_errors: bool = False  # regenerate items stored with a model error
    require_data: bool = False  # fail instead of falling back to the bundled smoke subsets
    image_dir: Optional[str] = None  # folder of image files for items that name them (e.g. COCO val2014)
    prompts: Optional[str] = None  # text-to-image prompt set: .txt/.jsonl/.parquet file or HF dataset id
    scorers: dict = field(default_factory=dict)  # t2i scorer options (mmada_bench.t2i.scoring.OPTION_FLAGS)
    progress: bool = True


@dataclass
class PlannedItem:
    item: Item
    prompt: str = ""
    messages: Optional[list] = None
    prompt_hash: str = ""
    error: Optional[str] = None
    image: Any = None  # image source (bytes / path / PIL) of image tasks, decoded when generating


@dataclass
class TaskPlan:
    card: TaskCard
    variant_name: str
    variant: VariantSpec
    preset: object  # mmada_ref.sampling.presets.Preset
    stop: list[str]
    data: TaskData
    items: list[PlannedItem]

    @property
    def primary(self) -> tuple[str, str]:
        """(metric, filter) of the headline number for this plan's variant."""
        return self.card.primary(self.variant_name)

    def describe(self) -> dict:
        return {"task": self.card.name, "version": self.card.version, "variant": self.variant_name,
                "card_hash": self.card.content_hash(), "preset": self.preset.to_dict(), "stop": self.stop,
                "split": self.data.split, "dataset_fingerprint": self.data.fingerprint,
                "n_items": len(self.items)}


@dataclass
class RunOutcome:
    """What a run produced: leaderboard rows, per-task errors and where things were written."""

    run_id: str
    model_name: str
    rows: list[dict] = field(default_factory=list)
    task_errors: dict = field(default_factory=dict)
    generated: int = 0
    resumed: int = 0
    output_dir: str = ""


# --- planning -----------------------------------------------------------------------------------

def plan_task(card: TaskCard, settings: RunSettings) -> TaskPlan:
    """Load the task's data and build every prompt (no model needed)."""
    from mmada_ref.sampling.presets import get_preset

    from mmada_bench.prompts import build_prompt, fewshot_plan, prompt_hash
    from mmada_bench.t2i.task import is_t2i_card, plan_t2i

    if is_t2i_card(card):  # text-to-image cards have their own path (mmada_bench/t2i/)
        return plan_t2i(card, settings)
    variant_name = settings.variant or card.default_variant
    variant = card.variant(variant_name)
    preset = get_preset(settings.preset or variant.preset or card.preset)
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
            prompt, messages = build_prompt(card, variant, item.doc, item_shots)
        except KeyError as exc:
            planned.append(PlannedItem(item, error=f"malformed row {item.index}: {exc.args[0]}; fix the row"))
            continue
        planned.append(_with_image(card, data, PlannedItem(item, prompt, messages, prompt_hash(prompt, messages))))
    return TaskPlan(card, variant_name, variant, preset, stop, data, planned)


def _with_image(card: TaskCard, data: TaskData, planned: PlannedItem) -> PlannedItem:
    """Attach the item's image source (image tasks); its digest joins the prompt hash. A missing image is an error."""
    from mmada_bench.images import ItemImageError, image_digest, image_source

    if not card.dataset.image_field:
        return planned
    try:
        planned.image = image_source(planned.item.doc, card.dataset.image_field, data.extra.get("image_dir"))
        planned.prompt_hash = hashlib.sha256((planned.prompt_hash + image_digest(planned.image)).encode()).hexdigest()
    except (ItemImageError, OSError) as exc:
        planned.image, planned.error = None, f"item {planned.item.item_id}: {exc}"
    return planned


def compute_run_id(model, plans: list[TaskPlan], settings: RunSettings) -> str:
    """``<model-name>-<12 hex>`` from everything that can change the outputs."""
    payload = {"model": model.fingerprint(), "model_name": model.name, "tasks": [p.describe() for p in plans],
               "seed": settings.seed, "limit": settings.limit, "dtype": settings.dtype,
               "batch_size": settings.batch_size}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', model.name)}-{digest}"


# --- generation + scoring -----------------------------------------------------------------------

def score_output(card: TaskCard, raw: str, stop: list[str], doc: dict, error: Optional[str],
                 primary: Optional[tuple[str, str]] = None) -> dict:
    """Cut at stops, run every filter chain and metric; errors and empty outputs score 0."""
    from mmada_bench.filters import apply_chain
    from mmada_bench.registry import get_metric
    from mmada_bench.scoring.gsm8k import truncate_at_stops

    output = truncate_at_stops(raw or "", stop)
    if error is None and not output.strip():
        error = "empty generation: the model returned no text before a stop string (check the preset's gen_length and the stops)"
    extracted, scores = {}, {}
    for metric in card.metrics:
        key = f"{metric.name}/{metric.filter}"
        if error is not None:
            extracted[metric.filter], scores[key] = "", 0.0
            continue
        try:
            chain = card.filters.get(metric.filter, [])
            answer = extracted.setdefault(metric.filter, apply_chain(chain, output, doc))
            scores[key] = float(get_metric(metric.name)(answer, str(doc.get(metric.gold, "")), doc))
        except Exception as exc:  # noqa: BLE001 - one item's scoring failure must not stop the run
            error = f"scoring failed ({metric.name}): {type(exc).__name__}: {exc}"
            scores[key] = 0.0
    primary_metric, primary_filter = primary or card.primary()
    key = f"{primary_metric}/{primary_filter}"
    if key not in scores:  # a set metric is the headline: the item's score is a per-item metric of its filter
        key = next((k for k in scores if k.endswith(f"/{primary_filter}")), next(iter(scores), key))
    return {"output": output, "extracted": extracted, "scores": scores, "error": error,
            "extracted_answer": extracted.get(primary_filter, ""), "score": scores.get(key, 0.0)}


def _generate_batch(model, requests: list[GenerationRequest], preset) -> list[GenerationResult]:
    """Generate a batch; if the call raises, retry item by item and turn exceptions into error results."""
    try:
        results = model.generate(requests, preset)
        if len(results) != len(requests):
            raise RuntimeError(f"model returned {len(results)} results for {len(requests)} requests")
        return results
    except Exception:  # noqa: BLE001
        if len(requests) == 1:
            return [_single(model, requests[0], preset)]
    return [_single(model, request, preset) for request in requests]


def _single(model, request: GenerationRequest, preset) -> GenerationResult:
    try:
        return model.generate([request], preset)[0]
    except Exception as exc:  # noqa: BLE001
        return GenerationResult(text="", error=f"generation failed: {type(exc).__name__}: {exc}")


def _record(plan: TaskPlan, planned: PlannedItem, result: Optional[GenerationResult], share_s: float) -> dict:
    error = planned.error or (result.error if result else None)
    raw = result.text if result else ""
    scored = score_output(plan.card, raw, plan.stop, planned.item.doc, error, plan.primary)
    gold_field = plan.card.metrics[0].gold if plan.card.metrics else None
    return {
        "item_id": planned.item.item_id, "index": planned.item.index, "split": plan.data.split,
        "prompt_hash": planned.prompt_hash, "prompt": planned.prompt,
        "gold": str(planned.item.doc.get(gold_field, "")) if gold_field else "", "raw_output": raw, **scored,
        "latency_s": result.latency_s if result else 0.0, "wall_share_s": share_s,
        "n_generated_tokens": result.n_generated_tokens if result else 0, "nfe": result.nfe if result else 0,
        "stats": result.stats if result else {}, "completed_at": utc_now(),
    }


def _run_task(plan: TaskPlan, model, settings: RunSettings, run_dir: Path, outcome: RunOutcome,
              store_path: Optional[Path] = None) -> list[dict]:
    store = ItemStore(store_path or run_dir / "items" / f"{plan.card.name}.jsonl")
    if settings.retry_errors:
        drop_failed_generations(store)
    pending, bar = resume_progress(plan, store, settings, outcome, unit="item", label=plan.variant_name)
    try:
        for p in [p for p in pending if p.error]:  # malformed rows: recorded without a model call
            store.append(_record(plan, p, None, 0.0))
            bar.update(1)
        todo = [p for p in pending if not p.error]
        for start in range(0, len(todo), settings.batch_size):
            batch, images = [], []
            for p in todo[start: start + settings.batch_size]:
                try:
                    images.append(_open_image(p))
                    batch.append(p)
                except ValueError as exc:  # corrupt image: an error record, no model call
                    store.append(_record(plan, dataclasses.replace(p, error=f"item {p.item.item_id}: {exc}"), None, 0.0))
                    bar.update(1)
            if not batch:
                continue
            requests = [GenerationRequest(p.item.item_id, p.prompt, p.messages, image, plan.stop,
                                          settings.seed + p.item.index) for p, image in zip(batch, images)]
            t0 = time.perf_counter()
            results = _generate_batch(model, requests, plan.preset)
            share = (time.perf_counter() - t0) / len(batch)
            for p, result in zip(batch, results):
                store.append(_record(plan, p, result, share))
                outcome.generated += 1
            bar.update(len(batch))
    finally:
        bar.close()
        store.close()
    return [store.records[p.item.item_id] for p in plan.items]


def _open_image(planned: PlannedItem):
    """The decoded image of an image task's item (None for text tasks); ValueError if corrupt."""
    if planned.image is None:
        return None
    from mmada_bench.images import open_image

    return open_image(planned.image)


# --- aggregation --------------------------------------------------------------------------------

def _leaderboard_rows(plan: TaskPlan, records: list[dict], model, settings: RunSettings, run_id: str,
                      started_at: str, errors: Optional[list] = None) -> list[dict]:
    """Leaderboard rows: one per per-item metric (mean + CI) and the rows of each set metric.

    A set metric that raises (e.g. caption metrics without Java) adds its message to ``errors``;
    the other rows are still returned."""
    from mmada_bench.stats import mean_with_ci

    common = _common_row_fields(plan, records, model, settings, run_id, started_at)
    primary = plan.primary
    rows = []
    for metric in plan.card.metrics:
        values = [float(r["scores"].get(f"{metric.name}/{metric.filter}", 0.0)) for r in records]
        rows.append({**common, **mean_with_ci(values), "metric": metric.name, "filter": metric.filter,
                     "is_primary": (metric.name, metric.filter) == primary, "breakdown": None, "unit": "fraction"})
    rows.extend(_set_metric_rows(plan, records, common, primary, errors if errors is not None else []))
    return rows


def _common_row_fields(plan: TaskPlan, records: list[dict], model, settings: RunSettings, run_id: str,
                       started_at: str) -> dict:
    """The leaderboard columns shared by every metric row of a task (provenance, settings, speed)."""
    n_errors = sum(1 for r in records if r.get("error"))
    wall = sum(r.get("wall_share_s", 0.0) for r in records)
    generated = [r for r in records if r.get("nfe") or r.get("n_generated_tokens") or r.get("raw_output")]

    def mean(key):
        return sum(r.get(key) or 0 for r in generated) / len(generated) if generated else None

    settings_json = json.dumps({**plan.preset.to_dict(), "stop": plan.stop, "batch_size": settings.batch_size,
                                "dtype": settings.dtype}, sort_keys=True)
    prompt_hash = hashlib.sha256("".join(r["prompt_hash"] for r in records).encode()).hexdigest()
    return {
        "run_id": run_id, "model_name": model.name, "model_family": model.family,
        "model_fingerprint": model.fingerprint(), "model_is_smoke": bool(getattr(model, "is_smoke", False)),
        "task": plan.card.name, "task_version": plan.card.version, "variant": plan.variant_name,
        "protocol": json.dumps(_asdict(plan.card.protocol), sort_keys=True), "n_errors": n_errors,
        "split": plan.data.split, "dataset_source": plan.data.source, "dataset_fingerprint": plan.data.fingerprint,
        "preset": plan.preset.name, "generation_settings": settings_json, "prompt_hash": prompt_hash,
        "card_hash": plan.card.content_hash(), "seed": settings.seed, "limit": settings.limit,
        "batch_size": settings.batch_size, "dtype": settings.dtype, "device": settings.device,
        "git_sha": git_sha(), "package_versions": json.dumps(package_versions(), sort_keys=True),
        "harness_version": _harness_version(), "started_at": started_at, "finished_at": utc_now(),
        "wall_s": wall, "items_per_s": (len(generated) / wall) if wall > 0 else None,
        "mean_latency_s": mean("latency_s"), "mean_nfe": mean("nfe"),
        "mean_generated_tokens": mean("n_generated_tokens"),
    }


def _set_metric_rows(plan: TaskPlan, records: list[dict], common: dict, primary: tuple[str, str],
                     errors: list) -> list[dict]:
    """Call each of the card's set metrics once with every item; failures go to ``errors``."""
    from mmada_bench.registry import SET_METRICS

    if not plan.card.set_metrics:
        return []
    entries = [{"item_id": p.item.item_id, "doc": p.item.doc, "output": r.get("output", ""), "error": r.get("error")}
               for p, r in zip(plan.items, records)]
    rows = []
    for spec in plan.card.set_metrics:
        try:
            values = SET_METRICS.get(spec.name)(entries, dict(spec.options))
        except Exception as exc:  # noqa: BLE001 - the items are stored; only this metric is missing
            errors.append(f"{plan.card.name}: set metric {spec.name}/{spec.filter} failed: {type(exc).__name__}: {exc} "
                          f"(the generated items are kept; fix the cause and re-run the same command to score them)")
            continue
        for v in values:
            rows.append({**common, "metric": v["metric"], "filter": spec.filter, "value": v["value"],
                         "ci_low": None, "ci_high": None, "ci_method": "none (set metric)",
                         "n": v.get("n") if v.get("n") is not None else len(records),
                         "breakdown": v.get("breakdown"), "unit": v.get("unit", "fraction"),
                         "is_primary": (v["metric"], spec.filter) == primary})
    return rows


def _asdict(obj) -> dict:
    import dataclasses

    return dataclasses.asdict(obj)


def _harness_version() -> str:
    from mmada_bench import __version__

    return __version__


def drop_failed_generations(store) -> None:
    """Forget stored items whose generation failed, so ``--retry-errors`` generates them again."""
    store.records = {k: r for k, r in store.records.items()
                     if not str(r.get("error") or "").startswith("generation failed")}


def resume_progress(plan, store, settings, outcome, unit: str, label: str):
    """Items of ``plan`` not yet in ``store`` and a progress bar that starts at the stored count."""
    from tqdm import tqdm

    pending = [p for p in plan.items if p.item.item_id not in store.records]
    outcome.resumed += len(plan.items) - len(pending)
    bar = tqdm(total=len(plan.items), initial=len(plan.items) - len(pending), unit=unit, file=sys.stderr,
               desc=f"{plan.card.name} [{label}, {plan.data.split}]", disable=not settings.progress,
               dynamic_ncols=True)
    return pending, bar


# --- entry point --------------------------------------------------------------------------------

def run(settings: RunSettings, model=None) -> RunOutcome:
    """Run every task of ``settings``; a task whose card or data fails is reported and skipped."""
    from mmada_bench import distributed
    from mmada_bench.registry import get_task

    dist = distributed.context(settings.device)  # world size 1 unless launched by torchrun / accelerate
    if model is None and settings.model is None and settings.preset is None:
        # the packaged smoke model gets cheap sampler settings; its results are labelled smoke anyway
        settings = dataclasses.replace(settings, preset=SMOKE_PRESET)
    plans, task_errors = [], {}
    for name in settings.tasks:
        try:
            plans.append(plan_task(get_task(name), settings))
        except (KeyError, ValueError, FileNotFoundError) as exc:
            task_errors[name] = exc.args[0] if exc.args else str(exc)
    if model is None and plans:
        from mmada_bench.models.loader import resolve_model

        model = resolve_model(settings.model, device=dist.device_for(settings.device), dtype=settings.dtype)
    if not plans:
        return RunOutcome(settings.run_id or "", getattr(model, "name", ""), task_errors=task_errors,
                          output_dir=settings.output_dir)
    run_id = settings.run_id or compute_run_id(model, plans, settings)
    distributed.agree_run_id(dist, run_id)
    out = Path(settings.output_dir)
    run_dir = out / "runs" / run_id
    outcome = RunOutcome(run_id, model.name, task_errors=task_errors, output_dir=str(out))
    lock = file_lock(run_dir / dist.lock_name, blocking=False)
    try:
        lock.__enter__()
    except BlockingIOError:
        raise RunBusy(f"run {run_id} is in progress in another process; wait for it or pass a different --run-id") from None
    try:
        started_at = _write_manifest(run_dir, run_id, model, plans, settings) if dist.is_main else ""
        from mmada_bench.t2i.task import is_t2i_card, run_t2i
        for plan in plans:
            if is_t2i_card(plan.card):  # text-to-image: generated and scored by rank 0 (mmada_bench/t2i/task.py)
                if dist.is_main:
                    outcome.rows.extend(run_t2i(plan, model, settings, out, run_dir, run_id, started_at, outcome))
                continue
            shard = distributed.my_plan(plan, dist, settings.batch_size, run_dir, settings.retry_errors)
            records = _run_task(shard, model, settings, run_dir, outcome, dist.store_path(run_dir, plan.card.name))
            records = distributed.collect(plan, dist, run_dir, records)
            if records is None:  # not rank 0: rank 0 writes the task's results
                continue
            items = [{**r, "run_id": run_id, "task": plan.card.name,
                      "extracted": json.dumps(r["extracted"], ensure_ascii=False),
                      "scores": json.dumps(r["scores"]), "stats": json.dumps(r.get("stats") or {})}
                     for r in records]
            write_items(out, run_id, plan.card.name, items)
            set_errors: list = []
            rows = _leaderboard_rows(plan, records, model, settings, run_id, started_at, set_errors)
            if set_errors:
                outcome.task_errors[plan.card.name] = "; ".join(set_errors)
            if rows:
                upsert_leaderboard(out, rows)
            outcome.rows.extend(rows)
        distributed.sum_counts(dist, outcome)
    finally:
        lock.__exit__(None, None, None)
    return outcome


def _write_manifest(run_dir: Path, run_id: str, model, plans: list[TaskPlan], settings: RunSettings) -> str:
    """Write runs/<run_id>/manifest.json (keeping the first start time); returns started_at."""
    path = run_dir / "manifest.json"
    started_at = utc_now()
    if path.exists():
        try:
            started_at = json.loads(path.read_text()).get("started_at", started_at)
        except json.JSONDecodeError:
            pass
    manifest = {"run_id": run_id, "started_at": started_at, "updated_at": utc_now(),
                "model": {"name": model.name, "family": model.family, "fingerprint": model.fingerprint(),
                          "is_smoke": bool(getattr(model, "is_smoke", False)), "spec": settings.model},
                "settings": {k: v for k, v in vars(settings).items() if k not in ("progress",)},
                "tasks": [p.describe() for p in plans], "git_sha": git_sha(), "packages": package_versions()}
    atomic_write_bytes(path, json.dumps(manifest, indent=2, default=str).encode())
    return started_at
