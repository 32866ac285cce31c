"""The text-to-image path of the runner (``text_to_image`` cards): generate missing images, score them, write results.

Layout under ``runs/<run_id>/``: ``items/<task>.jsonl`` (one generation record per item, fsync'ed: the
resume state), ``images/<task>/<index>_<id>.png`` + ``metadata.jsonl`` + ``contact_sheet.png``. A re-run
keeps every stored image and generates only the missing ones (an image file deleted by hand is made
again). Scores are recomputed from the PNGs on every run, so a run that lacked scorer weights (or ran with
``--predict-only``) is scored by re-running it with the weights, or by ``python -m mmada_bench score RUN``.
Leaderboard ``value`` = mean over the images that were scored, ``n`` = their count, ``n_errors`` = items without
a score (bad rows, empty prompts, failed generations, prompts a metric cannot read). The CLIP is the one of the
``--clip-*`` flags, else the model folder's ``clip/``, else the card's
(:func:`mmada_bench.metrics.image_metrics.with_model_clip`).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional

from mmada_bench.metrics import SET_METRICS
from mmada_bench.metrics.image_metrics import with_model_clip
from mmada_bench.metrics.intervals import mean_with_ci
from mmada_bench.models.loader import model_folder
from mmada_bench.results.environment import utc_now
from mmada_bench.results.leaderboard import upsert_leaderboard, write_items
from mmada_bench.results.store import ItemStore
from mmada_bench.run import image_outputs
from mmada_bench.run.batch_size import task_batch_size
from mmada_bench.run.image_outputs import (
    NotAnImageModel,
    check_image_model,
    generate_batch,
    image_filename,
    save_png,
    write_contact_sheet,
    write_metadata,
)
from mmada_bench.run.progress import (
    GENERATION_FAILED,
    drop_failed_generations,
    resume_progress,
)
from mmada_bench.run.records import common_row_fields, item_table_rows, store_per_item
from mmada_bench.run.types import RunContext, TaskPlan
from mmada_scoring.scorer_weights import ScorerWeightsMissing

#: how a task error says that a scorer's weights are missing (its metric is left out; the images are kept)
SCORER_NOT_COMPUTED = "not computed"


def run_t2i(plan: TaskPlan, ctx: RunContext) -> list[dict]:
    """Generate the missing images of ``plan``, score all of them (:func:`finish_t2i`), write the item table and
    leaderboard rows.

    Runs on rank 0 only. Task-level problems (a model that cannot draw, missing scorer weights) go to
    ``outcome.task_errors``; the images that were made are kept either way."""
    if not ctx.dist.is_main:
        return []
    model, settings, outcome, run_dir = ctx.model, ctx.settings, ctx.outcome, ctx.run_dir
    task = plan.card.name
    image_dir = run_dir / "images" / task
    errors: list[str] = []
    store = ItemStore(run_dir / "items" / f"{task}.jsonl")
    try:
        check_image_model(model)
        batch_size = task_batch_size(ctx, plan, image_outputs.MAX_TEXT_LEN + 1, len(plan.items), agree=False)
        _generate_missing(plan, model, settings, store, image_dir, outcome, batch_size)
    except NotAnImageModel as exc:
        errors.append(str(exc))
    finally:
        store.close()
    records = [store.records[p.item.item_id] for p in plan.items if p.item.item_id in store.records]
    _write_image_listings(records, image_dir, errors)
    return finish_t2i(plan, ctx, records, errors)


def finish_t2i(plan: TaskPlan, ctx: RunContext, records: list[dict], errors: Optional[list[str]] = None) -> list[dict]:
    """Score the stored images (not with ``--predict-only``), write the item table and the leaderboard rows;
    ``errors`` (with this step's own) go to ``outcome.task_errors``. ``score RUN`` calls this alone."""
    task, rows, errors = plan.card.name, [], errors if errors is not None else []
    if records and ctx.settings.predict_only:
        ctx.outcome.predicted[task] = {"variant": plan.variant_label, "split": plan.data.split, "n": len(records),
                                       "n_errors": sum(1 for r in records if r.get("error"))}
    elif records:
        metric_rows = _score(plan, records, ctx.run_dir / "images" / task, ctx.settings, errors)
        rows = _leaderboard_rows(plan, records, metric_rows, ctx)
    if records:
        write_items(ctx.output_dir, ctx.run_id, task, item_table_rows(records, ctx.run_id, task))
    if rows:
        upsert_leaderboard(ctx.output_dir, rows)
    if errors:
        ctx.outcome.task_errors[task] = "\n".join(errors)
    return rows


# --- generation -----------------------------------------------------------------------------------

def _generate_missing(plan, model, settings, store, image_dir: Path, outcome, batch_size: int) -> None:
    if settings.retry_errors:
        drop_failed_generations(store)
    for item_id, record in list(store.records.items()):  # an image deleted by hand is generated again
        file = (record.get("stats") or {}).get("image_file")
        if file and not (image_dir / file).is_file():
            del store.records[item_id]
    pending, bar = resume_progress(plan, store, settings, outcome, unit="image", label=plan.preset.name)
    try:
        for p in [p for p in pending if p.error]:  # bad rows / empty prompts: a record, no model call
            store.append(_record(plan, p, settings, error=p.error))
            bar.update(1)
        todo = [p for p in pending if not p.error]
        for start in range(0, len(todo), batch_size):
            batch = todo[start: start + batch_size]
            wall = time.perf_counter()
            records = _generate_or_split(plan, model, settings, batch, image_dir, batch_size)
            outcome.timing.add_generation(time.perf_counter() - wall, 0.0, len(batch))
            for record in records:
                store.append(record)
                outcome.generated += 1
            bar.update(len(batch))
    finally:
        bar.close()


def _generate_or_split(plan, model, settings, batch: list, image_dir: Path, batch_size: int) -> list[dict]:
    """Records of a batch; if the batch fails, each item is tried alone and its failure recorded."""
    seeds = [settings.seed + p.item.index for p in batch]
    wall = time.perf_counter()
    try:
        result = generate_batch(model, [p.prompt for p in batch], seeds, plan.preset)
    except Exception as exc:  # noqa: BLE001 - one bad prompt must not sink the batch
        if len(batch) == 1:
            return [_record(plan, batch[0], settings, error=f"{GENERATION_FAILED}: {type(exc).__name__}: {exc}")]
        return [r for p in batch for r in _generate_or_split(plan, model, settings, [p], image_dir, batch_size)]
    share = (time.perf_counter() - wall) / len(batch)
    return [_store_image(plan, p, settings, image, seed, result, share, image_dir, batch_size)
            for p, image, seed in zip(batch, result.images, seeds)]


def _store_image(plan, planned, settings, image, seed: int, result, share: float, image_dir: Path,
                 batch_size: int) -> dict:
    file = image_filename(planned.item.index, planned.item.item_id)
    sha = save_png(image, image_dir / file, {"prompt": planned.prompt, "seed": seed, "item_id": planned.item.item_id,
                                             "preset": plan.preset.name, "task": plan.card.name})
    stats = {"image_file": file, "sha256": sha, "seed": seed, "width": image.width, "height": image.height,
             "preset": plan.preset.name, "batch_size": batch_size}
    return _record(plan, planned, settings, file=file, latency=result.latency_s, share=share, nfe=result.nfe,
                   tokens=result.image_tokens, stats=stats)


def _record(plan, planned, settings, error: Optional[str] = None, file: str = "", latency: float = 0.0,
            share: float = 0.0, nfe: int = 0, tokens: int = 0, stats: Optional[dict] = None) -> dict:
    path = f"images/{plan.card.name}/{file}" if file else ""
    return {"item_id": planned.item.item_id, "index": planned.item.index, "split": plan.data.split,
            "prompt_hash": planned.prompt_hash, "prompt": planned.prompt or str(planned.item.doc.get("prompt", "")),
            "gold": "", "raw_output": path, "output": path, "extracted": {}, "scores": {}, "error": error,
            "extracted_answer": "", "score": None, "latency_s": latency, "wall_share_s": share,
            "n_generated_tokens": tokens, "nfe": nfe, "stats": stats or {"seed": settings.seed + planned.item.index},
            "completed_at": utc_now()}


def _write_image_listings(records: list[dict], image_dir: Path, errors: list) -> None:
    if not any((r.get("stats") or {}).get("image_file") for r in records):
        return
    write_metadata(records, image_dir / "metadata.jsonl")
    try:
        write_contact_sheet(records, image_dir, image_dir / "contact_sheet.png")
    except (OSError, ValueError) as exc:  # a broken image file must not cost the scores
        errors.append(f"contact sheet not written: {type(exc).__name__}: {exc}")


# --- scoring --------------------------------------------------------------------------------------

def _score(plan, records: list[dict], image_dir: Path, settings, errors: list) -> list[dict]:
    """Run each set metric of the card over the stored images; per-image scores go into the records."""
    docs = {p.item.item_id: p.item.doc for p in plan.items}
    entries = [{"item_id": r["item_id"], "prompt": r["prompt"], "image": image_dir / r["stats"]["image_file"],
                "doc": docs.get(r["item_id"]) or {}}
               for r in records if not r.get("error") and (r.get("stats") or {}).get("image_file")]
    by_id = {r["item_id"]: r for r in records}
    primary_metric = plan.primary[0]
    summaries = []
    scorers = with_model_clip(getattr(settings, "scorers", None) or {}, model_folder(settings.model))
    for spec in plan.card.set_metrics:
        options = {**spec.options, **scorers, "device": settings.device}
        try:
            rows = SET_METRICS.get(spec.name)(entries, options) if entries else []
        except ScorerWeightsMissing as exc:
            errors.append(f"{plan.card.name}: {spec.name} {SCORER_NOT_COMPUTED}: {exc} (the images are kept under "
                          f"{image_dir}; re-run the same command with the weights to score them)")
            continue
        except Exception as exc:  # noqa: BLE001 - the images are stored; only this metric is missing
            errors.append(f"{plan.card.name}: {spec.name} failed: {type(exc).__name__}: {exc} (images kept under {image_dir})")
            continue
        for row in rows:  # the primary is the card's metric under whichever scorer label it ran with
            store_per_item(by_id, row, row["label"], (primary_metric, row["label"]))
            for item_id, message in row.get("item_errors", {}).items():
                by_id[item_id]["error"] = by_id[item_id].get("error") or message
            summaries.append(row)
    return summaries


def _leaderboard_rows(plan: TaskPlan, records: list[dict], summaries: list[dict], ctx: RunContext) -> list[dict]:
    """One row per scored metric: mean over the scored images with a bootstrap interval."""
    common = common_row_fields(plan, records, ctx, extra_settings={
        "max_text_len": image_outputs.MAX_TEXT_LEN,
        "seeds": f"seed + item index (base {ctx.settings.seed}), one generator per image"})
    rows = []
    for summary in summaries:
        values = [float(v) for v in summary["per_item"].values()]
        stats = mean_with_ci(values) if values else {"value": math.nan, "ci_low": None, "ci_high": None,
                                                     "ci_method": "none (no images scored)", "n": 0}
        rows.append({**common, **stats, "metric": summary["metric"], "filter": summary["label"],
                     "is_primary": summary["metric"] == plan.primary[0], "breakdown": summary.get("breakdown"),
                     "unit": summary["unit"],
                     "n_errors": summary.get("n_errors", len(records) - len(values))})
    return rows
