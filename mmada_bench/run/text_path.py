"""The text path of the runner (``generate_until``, ``yes_no``, ``caption`` cards): generate the items a store
lacks in batches of similar prompt length (longest first) and store them cut at stops (records keyed by item
id, returned in plan order); scoring and the results are :mod:`mmada_bench.run.text_scoring`'s."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Optional

from mmada_bench.data.images import open_image
from mmada_bench.models.base import GenerationRequest, GenerationResult
from mmada_bench.results.environment import utc_now
from mmada_bench.results.store import ItemStore
from mmada_bench.run import distributed
from mmada_bench.run.batch_size import task_batch_size
from mmada_bench.run.batching import length_batches, prompt_length
from mmada_bench.run.progress import (
    GENERATION_FAILED,
    drop_failed_generations,
    resume_progress,
)
from mmada_bench.run.text_scoring import finish_text_task, unscored
from mmada_bench.run.types import PlannedItem, RunContext, TaskPlan


def run_text_task(plan: TaskPlan, ctx: RunContext) -> list[dict]:
    """Generate this rank's missing items of ``plan``; rank 0 then scores every item and writes the results."""
    dist, settings = ctx.dist, ctx.settings
    lengths = prompt_lengths(plan, ctx)
    batch_size = task_batch_size(ctx, plan, max(lengths.values(), default=0), len(lengths))
    shard = distributed.my_plan(plan, dist, batch_size, ctx.run_dir, settings.retry_errors, lengths)
    records = generate_items(shard, ctx, dist.store_path(ctx.run_dir, plan.card.name), batch_size, lengths)
    records = distributed.collect(plan, dist, ctx.run_dir, records)
    if records is None:  # not rank 0: rank 0 writes the task's results
        return []
    return finish_text_task(plan, ctx, records)


def prompt_lengths(plan: TaskPlan, ctx: RunContext) -> dict[str, int]:
    """Token length of every askable item's prompt (``batching.prompt_length``), by item id."""
    return {p.item.item_id: prompt_length(ctx.model, _request(plan, p, p.image, ctx.settings.seed))
            for p in plan.items if not p.error}


def generate_items(plan: TaskPlan, ctx: RunContext, store_path: Path, batch_size: int,
                   lengths: Optional[dict] = None) -> list[dict]:
    """Generate and store every item of ``plan`` not in its store yet, in length-sorted batches of ``batch_size``
    (``lengths``: prompt lengths by item id, measured when not given); returns the records in plan order."""
    settings, outcome = ctx.settings, ctx.outcome
    store = ItemStore(store_path)
    if settings.retry_errors:
        drop_failed_generations(store)
    pending, bar = resume_progress(plan, store, settings, outcome, unit="item", label=plan.variant_label)
    try:
        for p in [p for p in pending if p.error]:  # malformed rows: recorded without a model call
            store.append(_record(plan, p, None, 0.0))
            bar.update(1)
        todo = [p for p in pending if not p.error]
        lengths = lengths if lengths is not None else prompt_lengths(dataclasses.replace(plan, items=todo), ctx)
        for batch in length_batches(todo, [lengths[p.item.item_id] for p in todo], batch_size):
            _generate_and_store(plan, ctx, store, bar, batch)
    finally:
        bar.close()
        store.close()
    return [store.records[p.item.item_id] for p in plan.items]


def _generate_and_store(plan: TaskPlan, ctx: RunContext, store: ItemStore, bar, planned: list[PlannedItem]) -> None:
    """One batch: open the images (a corrupt one is an error record), generate, store every record."""
    batch, requests = [], []
    for p in planned:
        try:
            requests.append(_request(plan, p, open_image(p.image) if p.image is not None else None, ctx.settings.seed))
            batch.append(p)
        except ValueError as exc:  # corrupt image: an error record, no model call
            store.append(_record(plan, dataclasses.replace(p, error=f"item {p.item.item_id}: {exc}"), None, 0.0))
            bar.update(1)
    if not batch:
        return
    t0 = time.perf_counter()
    results = _generate_batch(ctx.model, requests, plan.preset)
    elapsed = time.perf_counter() - t0
    ctx.outcome.timing.add_generation(elapsed, sum(float((r.stats or {}).get("forward_s", 0.0)) for r in results),
                                      len(batch))
    for p, result in zip(batch, results):
        store.append(_record(plan, p, result, elapsed / len(batch)))
        ctx.outcome.generated += 1
    bar.update(len(batch))


def _request(plan: TaskPlan, p: PlannedItem, image, seed: int) -> GenerationRequest:
    return GenerationRequest(p.item.item_id, p.prompt, p.messages, image, plan.stop, seed + p.item.index,
                             plan.variant.chat_eot)


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
        return GenerationResult(text="", error=f"{GENERATION_FAILED}: {type(exc).__name__}: {exc}")


def _record(plan: TaskPlan, planned: PlannedItem, result: Optional[GenerationResult], share_s: float) -> dict:
    error = planned.error or (result.error if result else None)
    raw = result.text if result else ""
    gold_field = plan.card.metrics[0].gold if plan.card.metrics else None
    return {
        "item_id": planned.item.item_id, "index": planned.item.index, "split": plan.data.split,
        "prompt_hash": planned.prompt_hash, "prompt": planned.prompt,
        "gold": str(planned.item.doc.get(gold_field, "")) if gold_field else "", "raw_output": raw, **unscored(raw, plan.stop, error),
        "latency_s": result.latency_s if result else 0.0, "wall_share_s": share_s,
        "n_generated_tokens": result.n_generated_tokens if result else 0, "nfe": result.nfe if result else 0,
        "stats": result.stats if result else {}, "completed_at": utc_now(),
    }
