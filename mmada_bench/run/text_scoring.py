"""Scoring the stored items of a text task: stop cut, filters and metrics per item, then the leaderboard rows.

The item store keeps what the model produced (``raw_output``, the stop-cut ``output``, a generation error); the
scores are recomputed from it whenever a task finishes. So ``run --predict-only`` stores exactly what a normal run
stores, and ``score RUN`` (or the same ``run`` command again) scores it later without regenerating anything.
"""
from __future__ import annotations

from typing import Optional

from mmada_bench.cards.schema import TaskCard
from mmada_bench.metrics import METRICS
from mmada_bench.metrics.filters import answer_part, apply_chain
from mmada_bench.results.leaderboard import upsert_leaderboard, write_items
from mmada_bench.run.records import (
    common_row_fields,
    item_metric_rows,
    item_table_rows,
    set_metric_rows,
)
from mmada_bench.run.types import RunContext, TaskPlan
from mmada_scoring.gsm8k import truncate_at_stops

EMPTY_GENERATION = "empty generation"  # prefix of the error of an item whose output is empty after the stop cut
SCORING_FAILED = "scoring failed"  # prefix of the error of an item a filter or metric raised on


def score_output(card: TaskCard, raw: str, stop: list[str], doc: dict, error: Optional[str],
                 primary: Optional[tuple[str, str]] = None, answer_filter: Optional[str] = None) -> dict:
    """Cut at stops, run every filter chain (after the variant's ``answer_filter`` when given) and metric;
    errors and empty outputs score 0."""
    output = truncate_at_stops(raw or "", stop)
    if error is None and not output.strip():
        error = (f"{EMPTY_GENERATION}: the model returned no text before a stop string (check the preset's "
                 "gen_length and the stops)")
    answer_text = answer_part(answer_filter, output, doc)
    extracted, scores = {}, {}
    for metric in card.metrics:
        key = f"{metric.name}/{metric.filter}"
        if error is not None:
            extracted[metric.filter], scores[key] = "", 0.0
            continue
        try:
            chain = card.filters.get(metric.filter, [])
            answer = extracted.setdefault(metric.filter, apply_chain(chain, answer_text, doc))
            scores[key] = float(METRICS.get(metric.name)(answer, str(doc.get(metric.gold, "")), doc))
        except Exception as exc:  # noqa: BLE001 - one item's scoring failure must not stop the run
            error = f"{SCORING_FAILED} ({metric.name}): {type(exc).__name__}: {exc}"
            scores[key] = 0.0
    primary_metric, primary_filter = primary or card.primary()
    key = f"{primary_metric}/{primary_filter}"
    if key not in scores:  # a set metric is the headline: the item's score is a per-item metric of its filter
        key = next((k for k in scores if k.endswith(f"/{primary_filter}")), next(iter(scores), key))
    return {"output": output, "extracted": extracted, "scores": scores, "error": error,
            "extracted_answer": extracted.get(primary_filter, ""), "score": scores.get(key, 0.0)}


def unscored(raw: str, stop: list[str], error: Optional[str]) -> dict:
    """The fields of a stored record before scoring: the stop-cut output and no scores."""
    return {"output": truncate_at_stops(raw or "", stop), "extracted": {}, "scores": {}, "error": error,
            "extracted_answer": "", "score": None}


def generation_error(record: dict) -> Optional[str]:
    """The error a stored record had before scoring (stores written by older versions also hold scoring errors)."""
    error = record.get("error")
    return None if str(error or "").startswith((EMPTY_GENERATION, SCORING_FAILED)) else error


def score_records(plan: TaskPlan, records: list[dict]) -> list[dict]:
    """Every record of ``plan`` (in plan order) scored from its stored raw output."""
    return [{**r, **score_output(plan.card, r.get("raw_output", ""), plan.stop, p.item.doc, generation_error(r),
                                 plan.primary, plan.variant.answer_filter)}
            for p, r in zip(plan.items, records)]


def finish_text_task(plan: TaskPlan, ctx: RunContext, records: list[dict]) -> list[dict]:
    """Write the item table and, unless ``--predict-only``, score the records and upsert the leaderboard rows."""
    task = plan.card.name
    if ctx.settings.predict_only:
        write_items(ctx.output_dir, ctx.run_id, task, item_table_rows(records, ctx.run_id, task))
        ctx.outcome.predicted[task] = {"variant": plan.variant_label, "split": plan.data.split, "n": len(records),
                                       "n_errors": sum(1 for r in records if r.get("error"))}
        return []
    records = score_records(plan, records)
    errors: list = []
    common = common_row_fields(plan, records, ctx)
    rows = item_metric_rows(plan, records, common) + set_metric_rows(plan, records, common, errors)
    write_items(ctx.output_dir, ctx.run_id, task, item_table_rows(records, ctx.run_id, task))
    if errors:
        ctx.outcome.task_errors[task] = "; ".join(errors)
    if rows:
        upsert_leaderboard(ctx.output_dir, rows)
    return rows
