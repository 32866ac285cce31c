"""A finished run as a Weights & Biases run (``run --wandb-args``): headline metrics, the manifest, samples.

wandb is an optional extra (``pip install "mmada-bench[wandb]"``), imported only when ``--wandb-args`` is given.
The keys of ``--wandb-args`` go to ``wandb.init`` (``project``, ``name``, ``mode``, ``entity``, ``group``,
``job_type``, ``dir``, ``notes``, ``tags`` as ``a+b``, ...); values stay strings except ``true`` / ``false``.
``mode=offline`` writes the run under ``dir`` (or ``$WANDB_DIR``) for a later ``wandb sync``.

Logged once, after the run: per task its primary metric as ``<task>/<metric>/<filter>`` with ``.../ci_low``,
``.../ci_high`` and ``.../n`` (summary scalars); the run manifest as the run's config; per task a
``<task>/samples`` table of its first items (prompt, output, gold, extracted answer, score, error).
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import pyarrow.parquet as pq

from mmada_bench.errors import UsageError
from mmada_bench.results.leaderboard import items_path

WANDB_MISSING = '--wandb-args needs the wandb package: pip install "mmada-bench[wandb]"'
SAMPLE_COLUMNS = ["item_id", "prompt", "output", "gold", "extracted_answer", "score", "error"]
#: wandb.init arguments --wandb-args cannot set (the harness sets the config; settings objects are not strings)
RESERVED = {"config", "config_exclude_keys", "config_include_keys", "settings"}


def _wandb():
    try:
        import wandb  # optional extra, imported only with --wandb-args
    except ImportError:
        raise UsageError(WANDB_MISSING) from None
    return wandb


def check_init_args(init_args: dict) -> None:
    """A :class:`UsageError` when wandb is not installed or a key is not a ``wandb.init`` argument."""
    known = set(inspect.signature(_wandb().init).parameters) - RESERVED
    unknown = sorted(set(init_args) - known)
    if unknown:
        raise UsageError(f"--wandb-args: {', '.join(unknown)} is not an argument of wandb.init "
                         f"(known: {', '.join(sorted(known))})")


def init_kwargs(init_args: dict, run_id: str) -> dict:
    """``wandb.init`` keyword arguments: defaults (project mmada-bench, the run id as name), then the user's."""
    values = {}
    for key, value in init_args.items():
        if str(value).lower() in ("true", "false"):
            value = str(value).lower() == "true"
        elif key == "tags":
            value = [t for t in str(value).split("+") if t]
        values[key] = value
    return {"project": "mmada-bench", "name": run_id, "job_type": "eval", **values}


def headline_metrics(rows: list[dict]) -> dict:
    """``<task>/<metric>/<filter>`` -> value, plus its interval and n, for each task's primary whole-set row."""
    metrics = {}
    for r in rows:
        if not r.get("is_primary") or r.get("breakdown"):
            continue
        key = f"{r['task']}/{r['metric']}/{r['filter']}"
        metrics[key] = r["value"]
        for extra in ("ci_low", "ci_high", "n"):
            if r.get(extra) is not None:
                metrics[f"{key}/{extra}"] = r[extra]
    return metrics


def sample_rows(output_dir: Path, run_id: str, task: str, limit: int) -> list[list]:
    """The first ``limit`` items of ``items/<run_id>/<task>.parquet`` as table rows (``[]`` if it is absent)."""
    path = items_path(output_dir, run_id, task)
    if limit <= 0 or not path.exists():
        return []
    table = pq.read_table(path, columns=SAMPLE_COLUMNS).slice(0, limit).to_pylist()
    return [[r[c] if r[c] is not None else ("" if c != "score" else None) for c in SAMPLE_COLUMNS] for r in table]


def log_to_wandb(outcome, init_args: dict, max_samples: int = 100) -> str:
    """Log a finished run (a :class:`~mmada_bench.run.types.RunOutcome`) to a new wandb run; returns one line
    saying where it went."""
    wandb = _wandb()
    out = Path(outcome.output_dir)
    manifest_path = out / "runs" / outcome.run_id / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"run_id": outcome.run_id}
    tasks = list(dict.fromkeys([r["task"] for r in outcome.rows] + list(outcome.predicted)))
    run = wandb.init(**init_kwargs(init_args, outcome.run_id), config=manifest)
    try:
        metrics = headline_metrics(outcome.rows)
        n_samples = 0
        for task in tasks:
            rows = sample_rows(out, outcome.run_id, task, max_samples)
            if rows:
                metrics[f"{task}/samples"] = wandb.Table(columns=SAMPLE_COLUMNS, data=rows)
                n_samples += len(rows)
        run.log(metrics)
        where = run.url or run.dir
    finally:
        run.finish()
        wandb.teardown()  # waits until the service has written everything (an offline run's .wandb file too)
    scalars = sum(1 for value in metrics.values() if not isinstance(value, wandb.Table))
    return f"wandb: {scalars} scalars, {n_samples} samples of {len(tasks)} task(s) logged to run {run.id} ({where})"
