"""Run tasks on a model: plan every task, load the model, then hand each task to the path of its output type.

``run(settings)`` is what ``python -m mmada_bench run`` calls; tests call it with a model object.
Re-running the same settings resumes: the run id is a hash of everything that can change the
outputs (model fingerprint, task versions + card hashes, variants, presets, stop strings, dataset
fingerprints, seed, limit, dtype), and items already in
``runs/<run_id>/items/<task>.jsonl`` are not generated again. The batch size joins the run id only where
outputs may depend on it (:func:`mmada_bench.run.planning.batch_independent`). The manifest ends with the
chosen batch sizes and the invocation's ``timing`` (:mod:`mmada_bench.run.timing`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from mmada_bench.cards.discovery import get_task, resolve_task_names
from mmada_bench.errors import UsageError
from mmada_bench.models.defaults import read_defaults
from mmada_bench.models.loader import family_of, model_folder, resolve_model
from mmada_bench.models.smoke import model_label
from mmada_bench.results.store import file_lock
from mmada_bench.run import distributed
from mmada_bench.run.planning import compute_run_id, plan_task
from mmada_bench.run.records import update_manifest, write_manifest
from mmada_bench.run.text_path import run_text_task
from mmada_bench.run.text_to_image import run_t2i
from mmada_bench.run.timing import RunTiming
from mmada_bench.run.types import RunBusy, RunContext, RunOutcome, RunSettings

#: preset kind of a card's output type (cards.schema.OUTPUT_TYPES) -> the path that runs it
TASK_PATHS = {"text": run_text_task, "image": run_t2i}


def run(settings: RunSettings, model=None, timing: Optional[RunTiming] = None) -> RunOutcome:
    """Run every task of ``settings``; a task whose card or data fails is reported and skipped."""
    timing = timing or RunTiming()  # start-up counts from here (plus the command line's import time)
    dist = distributed.context(settings.device)  # world size 1 unless launched by torchrun / accelerate
    family = model.family if model is not None else family_of(settings.model)
    defaults = read_defaults(getattr(model, "folder", None) if model is not None else model_folder(settings.model))
    plans, task_errors = [], {}
    for name in resolve_task_names(settings.tasks, settings.include_paths):
        try:
            plans.append(plan_task(get_task(name, settings.include_paths), settings, defaults, family=family))
        except UsageError:  # a flag the task's card refuses: the whole command is wrong, nothing runs
            raise
        except (KeyError, ValueError, FileNotFoundError) as exc:
            task_errors[name] = exc.args[0] if exc.args else str(exc)
    if model is None and plans:
        model = resolve_model(settings.model, device=dist.device_for(settings.device), dtype=settings.dtype)
    if not plans:
        return RunOutcome(settings.run_id or "", getattr(model, "name", ""), task_errors=task_errors,
                          output_dir=settings.output_dir)
    run_id = settings.run_id or compute_run_id(model, plans, settings)
    distributed.agree_run_id(dist, run_id)
    out = Path(settings.output_dir)
    outcome = RunOutcome(run_id, model.name, task_errors=task_errors, output_dir=str(out),
                         model_label=model_label(model), timing=timing)
    ctx = RunContext(settings, model, run_id, out, out / "runs" / run_id, "", dist, outcome, defaults)
    lock = file_lock(ctx.run_dir / dist.lock_name, blocking=False)
    try:
        lock.__enter__()
    except BlockingIOError:
        raise RunBusy(f"run {run_id} is in progress in another process; wait for it or pass a different --run-id") from None
    try:
        ctx.started_at = write_manifest(ctx, plans) if dist.is_main else ""
        timing.mark_tasks_start()
        for plan in plans:
            outcome.rows.extend(TASK_PATHS[plan.card.output_kind](plan, ctx))
        distributed.sum_counts(dist, outcome)
        if dist.is_main:
            update_manifest(ctx.run_dir, "timing", timing.as_dict())
    finally:
        lock.__exit__(None, None, None)
    return outcome
