"""The text-to-image task path of the runner: plan prompts, generate missing images, score them, write results.

A card is a text-to-image card when its ``preset`` is an image preset (``t2i-paper`` ...). The runner hands
such cards to :func:`plan_t2i` and :func:`run_t2i` (everything else goes through the text path).

Layout under ``runs/<run_id>/``: ``items/<task>.jsonl`` (one generation record per item, fsync'ed: the
resume state), ``images/<task>/<index>_<id>.png`` + ``metadata.jsonl`` + ``contact_sheet.png``. A re-run
keeps every stored image and generates only the missing ones (an image file deleted by hand is made
again). Scores are recomputed from the PNGs on every run, so a run that lacked scorer weights is scored by
re-running it with the weights. Leaderboard ``value`` = mean over the images that were scored, ``n`` =
their count, ``n_errors`` = items without an image (bad rows, empty prompts, failed generations).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional

from mmada_bench.cards import TaskCard
from mmada_bench.environment import utc_now

SMOKE_IMAGE_PRESET = "t2i-ci"  # what the runner's smoke default preset ("ci") means for image tasks


def is_t2i_card(card: TaskCard) -> bool:
    """True when the card's own preset is an image (MaskGIT) preset."""
    from mmada_ref.sampling.presets import PRESETS

    preset = PRESETS.get(card.preset)
    return preset is not None and preset.kind == "image"


def image_preset(card: TaskCard, variant, override: Optional[str]):
    """The image preset for this run: ``--preset`` (``ci`` -> ``t2i-ci``), the variant's, or the card's."""
    from mmada_ref.sampling.presets import PRESETS, get_preset

    name = override or variant.preset or card.preset
    if name == "ci":
        name = SMOKE_IMAGE_PRESET
    preset = get_preset(name)
    if preset.kind != "image":
        images = ", ".join(sorted(n for n, p in PRESETS.items() if p.kind == "image"))
        raise ValueError(f"{card.name}: preset {name!r} is a text preset; text-to-image tasks need one of {images}")
    return preset


def plan_t2i(card: TaskCard, settings):
    """Load the prompt set and build every item's prompt (no model needed); empty prompts become errors."""
    from mmada_bench.prompts import build_prompt, prompt_hash
    from mmada_bench.runner import PlannedItem, TaskPlan
    from mmada_bench.t2i.prompt_sets import load_prompt_set

    variant_name = settings.variant or card.default_variant
    variant = card.variant(variant_name)
    preset = image_preset(card, variant, settings.preset)
    data = load_prompt_set(card, getattr(settings, "prompts", None), settings.data_dir)
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


def run_t2i(plan, model, settings, out: Path, run_dir: Path, run_id: str, started_at: str, outcome) -> list[dict]:
    """Generate the missing images of ``plan``, score all of them, write the item table and leaderboard rows.

    Task-level problems (a model that cannot draw, missing scorer weights) go to ``outcome.task_errors``;
    the images that were made are kept either way."""
    from mmada_bench.results import ItemStore, upsert_leaderboard, write_items
    from mmada_bench.t2i.generation import NotAnImageModel, check_image_model

    task = plan.card.name
    image_dir = run_dir / "images" / task
    errors: list[str] = []
    store = ItemStore(run_dir / "items" / f"{task}.jsonl")
    try:
        check_image_model(model)
        _generate_missing(plan, model, settings, store, image_dir, outcome)
    except NotAnImageModel as exc:
        errors.append(str(exc))
    finally:
        store.close()
    records = [store.records[p.item.item_id] for p in plan.items if p.item.item_id in store.records]
    _write_image_listings(records, image_dir, errors)
    metric_rows = _score(plan, records, image_dir, settings, errors) if records else []
    rows = []
    if records:
        rows = _leaderboard_rows(plan, records, metric_rows, model, settings, run_id, started_at)
        write_items(out, run_id, task, [_item_row(r, run_id, task) for r in records])
        if rows:
            upsert_leaderboard(out, rows)
    if errors:
        outcome.task_errors[task] = "\n".join(errors)
    return rows


# --- generation -----------------------------------------------------------------------------------

def _generate_missing(plan, model, settings, store, image_dir: Path, outcome) -> None:
    from mmada_bench.runner import drop_failed_generations, resume_progress

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
        for start in range(0, len(todo), settings.batch_size):
            batch = todo[start: start + settings.batch_size]
            for record in _generate_or_split(plan, model, settings, batch, image_dir):
                store.append(record)
                outcome.generated += 1
            bar.update(len(batch))
    finally:
        bar.close()


def _generate_or_split(plan, model, settings, batch: list, image_dir: Path) -> list[dict]:
    """Records of a batch; if the batch fails, each item is tried alone and its failure recorded."""
    from mmada_bench.t2i.generation import generate_batch

    seeds = [settings.seed + p.item.index for p in batch]
    wall = time.perf_counter()
    try:
        result = generate_batch(model, [p.prompt for p in batch], seeds, plan.preset)
    except Exception as exc:  # noqa: BLE001 - one bad prompt must not sink the batch
        if len(batch) == 1:
            return [_record(plan, batch[0], settings, error=f"generation failed: {type(exc).__name__}: {exc}")]
        return [r for p in batch for r in _generate_or_split(plan, model, settings, [p], image_dir)]
    share = (time.perf_counter() - wall) / len(batch)
    return [_store_image(plan, p, settings, image, seed, result, share, image_dir)
            for p, image, seed in zip(batch, result.images, seeds)]


def _store_image(plan, planned, settings, image, seed: int, result, share: float, image_dir: Path) -> dict:
    from mmada_bench.t2i.generation import image_filename, save_png

    file = image_filename(planned.item.index, planned.item.item_id)
    sha = save_png(image, image_dir / file, {"prompt": planned.prompt, "seed": seed, "item_id": planned.item.item_id,
                                             "preset": plan.preset.name, "task": plan.card.name})
    stats = {"image_file": file, "sha256": sha, "seed": seed, "width": image.width, "height": image.height,
             "preset": plan.preset.name, "batch_size": settings.batch_size}
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
    from mmada_bench.t2i.generation import write_contact_sheet, write_metadata

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
    from mmada_bench.registry import SET_METRICS
    from mmada_bench.scoring.scorer_weights import ScorerWeightsMissing

    entries = [{"item_id": r["item_id"], "prompt": r["prompt"], "image": image_dir / r["stats"]["image_file"]}
               for r in records if not r.get("error") and (r.get("stats") or {}).get("image_file")]
    by_id = {r["item_id"]: r for r in records}
    primary_metric = plan.primary[0]
    summaries = []
    for spec in plan.card.set_metrics:
        options = {**spec.options, **(getattr(settings, "scorers", None) or {}), "device": settings.device}
        try:
            rows = SET_METRICS.get(spec.name)(entries, options) if entries else []
        except ScorerWeightsMissing as exc:
            errors.append(f"{plan.card.name}: {spec.name} not computed: {exc} (the images are kept under {image_dir}; "
                          "re-run the same command with the weights to score them)")
            continue
        except Exception as exc:  # noqa: BLE001 - the images are stored; only this metric is missing
            errors.append(f"{plan.card.name}: {spec.name} failed: {type(exc).__name__}: {exc} (images kept under {image_dir})")
            continue
        for row in rows:
            key = f"{row['metric']}/{row['label']}"
            for item_id, value in row["per_item"].items():
                by_id[item_id]["scores"][key] = value
                if row["metric"] == primary_metric:
                    by_id[item_id]["score"] = value
            for item_id, message in row.get("item_errors", {}).items():
                by_id[item_id]["error"] = by_id[item_id].get("error") or message
            summaries.append(row)
    return summaries


def _leaderboard_rows(plan, records, summaries, model, settings, run_id, started_at) -> list[dict]:
    """One row per scored metric: mean over the scored images with a bootstrap interval."""
    from mmada_bench.runner import _common_row_fields
    from mmada_bench.stats import mean_with_ci
    from mmada_bench.t2i import generation

    common = _common_row_fields(plan, records, model, settings, run_id, started_at)
    generation = {**json.loads(common["generation_settings"]), "max_text_len": generation.MAX_TEXT_LEN,
                  "seeds": f"seed + item index (base {settings.seed}), one generator per image"}
    common["generation_settings"] = json.dumps(generation, sort_keys=True)
    rows = []
    for summary in summaries:
        values = [float(v) for v in summary["per_item"].values()]
        stats = mean_with_ci(values) if values else {"value": math.nan, "ci_low": None, "ci_high": None,
                                                     "ci_method": "none (no images scored)", "n": 0}
        rows.append({**common, **stats, "metric": summary["metric"], "filter": summary["label"],
                     "is_primary": summary["metric"] == plan.primary[0], "breakdown": None, "unit": summary["unit"],
                     "n_errors": len(records) - len(values)})
    return rows


def _item_row(record: dict, run_id: str, task: str) -> dict:
    return {**record, "run_id": run_id, "task": task, "extracted": json.dumps(record["extracted"]),
            "scores": json.dumps(record["scores"]), "stats": json.dumps(record.get("stats") or {})}


__all__ = ["is_t2i_card", "plan_t2i", "run_t2i", "image_preset"]
