"""Evaluate a world checkpoint with the harness itself, and record / check its scores.

``evaluate(model, data_dir, output_dir)`` runs ``mmada_bench.run`` on the world's evaluation split and returns
each task's headline number; ``record_scores`` writes them beside the checkpoint (``recorded_scores.json``)
so CI can re-run the same slice and compare (:func:`check_scores`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from mmada_bench.run.runner import run
from mmada_bench.run.types import RunSettings

#: the tasks the world model is evaluated on (t2i is scored separately: world oracle + world CLIP)
EVAL_TASKS = ("pope", "mme", "flickr30k", "gsm8k", "math500")
RECORDED_SCORES = "recorded_scores.json"
#: relative tolerance of a re-measured score (greedy decoding in float32 is deterministic on CPU)
REL_TOLERANCE = 1e-6


def evaluate(model: str | Path, data_dir: str | Path, output_dir: str | Path, tasks: Sequence[str] = EVAL_TASKS,
             limit: Optional[int] = None, batch_size: int = 8, **settings) -> dict:
    """``{task: {"metric", "value", "n", "n_errors", "run_id"}}`` of the primary metric of each task."""
    outcome = run(RunSettings(tasks=list(tasks), model=str(model), data_dir=str(data_dir), require_data=True,
                              output_dir=str(output_dir), limit=limit, batch_size=batch_size, progress=False,
                              **settings))
    if outcome.task_errors:
        raise RuntimeError("; ".join(f"{t}: {m}" for t, m in outcome.task_errors.items()))
    scores = {}
    for r in outcome.rows:
        if r.get("is_primary") and not r.get("breakdown"):
            scores[r["task"]] = {"metric": f"{r['metric']}/{r['filter']}", "value": r["value"], "n": int(r["n"]),
                                 "n_errors": int(r["n_errors"]), "run_id": outcome.run_id}
    return scores


def record_scores(model: str | Path, scores: dict, limit: Optional[int]) -> Path:
    """Write ``recorded_scores.json`` into the checkpoint folder."""
    path = Path(model) / RECORDED_SCORES
    body = {"limit": limit, "tasks": {t: {k: v for k, v in s.items() if k != "run_id"} for t, s in scores.items()}}
    path.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    return path


def check_scores(recorded: dict, measured: dict) -> list[str]:
    """Differences between recorded and re-measured scores ([] = the same numbers on the same items)."""
    problems = []
    for task, want in recorded["tasks"].items():
        got = measured.get(task)
        if got is None:
            problems.append(f"{task}: not measured")
        elif (got["metric"], got["n"], got["n_errors"]) != (want["metric"], want["n"], want["n_errors"]):
            problems.append(f"{task}: measured {got['metric']} on n={got['n']} ({got['n_errors']} errors), recorded "
                            f"{want['metric']} on n={want['n']} ({want['n_errors']} errors)")
        elif got["value"] is None or abs(got["value"] - want["value"]) > REL_TOLERANCE * max(1.0, abs(want["value"])):
            problems.append(f"{task}: {want['metric']} = {got['value']} now, recorded {want['value']}")
    return problems
