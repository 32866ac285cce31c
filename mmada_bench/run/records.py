"""What a finished task leaves behind: leaderboard rows, per-item table rows and the run manifest."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from mmada_bench import __version__
from mmada_bench.metrics import SET_METRICS
from mmada_bench.metrics.filters import answer_part
from mmada_bench.metrics.intervals import mean_with_ci
from mmada_bench.models.smoke import model_label
from mmada_bench.results.environment import (
    device_info,
    git_sha,
    java_version,
    package_versions,
    utc_now,
)
from mmada_bench.results.store import atomic_write_bytes
from mmada_bench.run.types import RunContext, TaskPlan


def common_row_fields(plan: TaskPlan, records: list[dict], ctx: RunContext, extra_settings: dict | None = None) -> dict:
    """The leaderboard columns shared by every metric row of a task (provenance, settings, speed)."""
    settings, model = ctx.settings, ctx.model
    n_errors = sum(1 for r in records if r.get("error"))
    wall = sum(r.get("wall_share_s", 0.0) for r in records)
    generated = [r for r in records if r.get("nfe") or r.get("n_generated_tokens") or r.get("raw_output")]

    def mean(key):
        return sum(r.get(key) or 0 for r in generated) / len(generated) if generated else None

    batch_size = ctx.batch_sizes.get(plan.card.name, settings.batch_size)
    settings_json = json.dumps({**plan.preset.to_dict(), "stop": plan.stop, "batch_size": batch_size,
                                "dtype": settings.dtype, **(extra_settings or {})}, sort_keys=True)
    prompt_hash = hashlib.sha256("".join(r["prompt_hash"] for r in records).encode()).hexdigest()
    return {
        "run_id": ctx.run_id, "model_name": model.name, "model_family": model.family,
        "model_fingerprint": model.fingerprint(), "model_is_smoke": bool(getattr(model, "is_smoke", False)),
        "model_label": model_label(model), "task": plan.card.name, "task_version": plan.card.version,
        "variant": plan.variant_label,
        "protocol": json.dumps(dataclasses.asdict(plan.card.protocol), sort_keys=True), "n_errors": n_errors,
        "split": plan.data.split, "dataset_source": plan.data.source, "dataset_fingerprint": plan.data.fingerprint,
        "preset": plan.preset.name, "generation_settings": settings_json, "prompt_hash": prompt_hash,
        "card_hash": plan.card.content_hash(), "seed": settings.seed, "limit": settings.limit,
        "batch_size": batch_size if isinstance(batch_size, int) else None, "dtype": settings.dtype,
        "device": settings.device,
        "git_sha": git_sha(), "package_versions": json.dumps(package_versions(), sort_keys=True),
        "harness_version": __version__, "started_at": ctx.started_at, "finished_at": utc_now(),
        "wall_s": wall, "items_per_s": (len(generated) / wall) if wall > 0 else None,
        "mean_latency_s": mean("latency_s"), "mean_nfe": mean("nfe"),
        "mean_generated_tokens": mean("n_generated_tokens"),
    }


def item_metric_rows(plan: TaskPlan, records: list[dict], common: dict) -> list[dict]:
    """One row per per-item metric of the card: the mean with its confidence interval."""
    rows = []
    for metric in plan.card.metrics:
        values = [float(r["scores"].get(f"{metric.name}/{metric.filter}", 0.0)) for r in records]
        rows.append({**common, **mean_with_ci(values), "metric": metric.name, "filter": metric.filter,
                     "is_primary": (metric.name, metric.filter) == plan.primary, "breakdown": None, "unit": "fraction"})
    return rows


def set_metric_rows(plan: TaskPlan, records: list[dict], common: dict, errors: list) -> list[dict]:
    """Call each of the card's set metrics once with every item (its text after the variant's ``answer_filter``,
    as the per-item metrics read it); a failing metric adds its message to ``errors``. Per-item values a set metric
    returns are written into ``records`` (before the item table is written)."""
    if not plan.card.set_metrics:
        return []
    entries = [{"item_id": p.item.item_id, "doc": p.item.doc, "error": r.get("error"),
                "output": answer_part(plan.variant.answer_filter, r.get("output", ""), p.item.doc)}
               for p, r in zip(plan.items, records)]
    record_of = {p.item.item_id: r for p, r in zip(plan.items, records)}
    rows = []
    for spec in plan.card.set_metrics:
        try:
            values = SET_METRICS.get(spec.name)(entries, dict(spec.options))
        except Exception as exc:  # noqa: BLE001 - the items are stored; only this metric is missing
            errors.append(f"{plan.card.name}: set metric {spec.name}/{spec.filter} failed: {type(exc).__name__}: {exc} "
                          f"(the generated items are kept; fix the cause and re-run the same command, or "
                          f"`python -m mmada_bench score {common['run_id']}`, to score them)")
            continue
        for v in values:
            store_per_item(record_of, v, spec.filter, plan.primary)
            rows.append({**common, "metric": v["metric"], "filter": spec.filter, "value": v["value"],
                         "ci_low": None, "ci_high": None, "ci_method": "none (set metric)",
                         "n": v.get("n") if v.get("n") is not None else len(records),
                         "breakdown": v.get("breakdown"), "unit": v.get("unit", "fraction"),
                         "is_primary": (v["metric"], spec.filter) == plan.primary})
    _partial_stands_in(rows, plan.primary)
    return rows


def store_per_item(record_of: dict, value: dict, filter_name: str, primary: tuple[str, str]) -> None:
    """A set metric's per-item values (``value["per_item"]``: item id -> value, when the metric is a mean over items)
    go into the items' ``scores`` (and ``score`` for the ``primary`` (metric, filter)), so that the regression gate
    pairs them. A breakdown row (a subset of the items) is not stored."""
    if value.get("breakdown"):
        return
    key = f"{value['metric']}/{filter_name}"
    for item_id, item_value in (value.get("per_item") or {}).items():
        record = record_of[item_id]  # the metric was given these items
        record["scores"] = {**record.get("scores", {}), key: float(item_value)}
        if (value["metric"], filter_name) == primary:
            record["score"] = float(item_value)


def _partial_stands_in(rows: list[dict], primary: tuple[str, str]) -> None:
    """A subset of a benchmark's categories (MME on the shapes world: 4 of 14) gives ``<primary>_partial`` but no
    ``<primary>``: the partial row is then the headline (its name says it is partial)."""
    if any(r["is_primary"] for r in rows):
        return
    for r in rows:
        if (r["metric"], r["filter"]) == (f"{primary[0]}_partial", primary[1]) and r.get("breakdown") is None:
            r["is_primary"] = True


def item_table_rows(records: list[dict], run_id: str, task: str) -> list[dict]:
    """Stored item records as rows of the per-item Parquet table (nested fields as JSON)."""
    return [{**r, "run_id": run_id, "task": task, "extracted": json.dumps(r.get("extracted") or {}, ensure_ascii=False),
             "scores": json.dumps(r.get("scores") or {}), "stats": json.dumps(r.get("stats") or {})}
            for r in records]


class RunIdentityError(ValueError):
    """An existing run id was asked to hold outputs of another model or other settings."""


def run_identity(ctx: RunContext, plans: list[TaskPlan]) -> dict:
    """What must be equal for outputs to share a run id: the model and every task's plan."""
    settings = ctx.settings
    return {"model_fingerprint": ctx.model.fingerprint(), "model_name": ctx.model.name,
            "tasks": {p.card.name: p.describe() for p in plans},
            "seed": settings.seed, "limit": settings.limit, "dtype": settings.dtype}


def write_manifest(ctx: RunContext, plans: list[TaskPlan]) -> str:
    """Write runs/<run_id>/manifest.json (keeping the first start time); returns started_at.

    An existing manifest whose identity (model, task plans, seed, limit, dtype) differs for a task of this run is
    refused with :class:`RunIdentityError` naming the difference: one run id never mixes outputs."""
    path = Path(ctx.run_dir) / "manifest.json"
    started_at = utc_now()
    identity = run_identity(ctx, plans)
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            stored = {}
        started_at = stored.get("started_at", started_at)
        _check_identity(ctx.run_id, stored.get("identity"), identity)
        identity["tasks"] = {**(stored.get("identity") or {}).get("tasks", {}), **identity["tasks"]}
    model, settings = ctx.model, ctx.settings
    manifest = {"run_id": ctx.run_id, "started_at": started_at, "updated_at": utc_now(),
                "predict_only": bool(settings.predict_only),
                "model": {"name": model.name, "family": model.family, "fingerprint": model.fingerprint(),
                          "is_smoke": bool(getattr(model, "is_smoke", False)), "label": model_label(model),
                          "spec": settings.model, "gemm": getattr(model, "gemm", "default")},
                "settings": {k: v for k, v in vars(settings).items() if k not in ("progress",)},
                "defaults": dataclasses.asdict(ctx.defaults) if ctx.defaults is not None else None,
                "tasks": [p.describe() for p in plans], "identity": identity, "git_sha": git_sha(),
                "packages": package_versions(), "java": java_version(), "device": device_info()}
    atomic_write_bytes(path, json.dumps(manifest, indent=2, default=str).encode())
    return started_at


def update_manifest(run_dir, key: str, value: dict) -> None:
    """Merge ``value`` into the manifest's ``key`` mapping (e.g. ``batch_sizes``, ``timing``); no manifest, no-op."""
    path = Path(run_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return
    manifest[key] = {**(manifest.get(key) or {}), **value}
    atomic_write_bytes(path, json.dumps(manifest, indent=2, default=str).encode())


def _check_identity(run_id: str, stored, current: dict) -> None:
    if not stored:
        return
    diffs = [key for key in ("model_fingerprint", "model_name", "seed", "limit", "dtype") if stored.get(key) != current[key]]
    for task, plan in current["tasks"].items():
        before = (stored.get("tasks") or {}).get(task)
        if before is not None:
            diffs += [f"{task}.{key}" for key in sorted(set(before) | set(plan)) if before.get(key) != plan.get(key)]
    if diffs:
        raise RunIdentityError(f"run {run_id} already holds results made with other settings ({', '.join(diffs[:6])} "
                               f"differ); pass another --run-id or drop --run-id to get the settings' own id")
