"""Evaluate a world checkpoint with the harness itself.

``evaluate(model, data_dir, output_dir)`` runs ``mmada_bench.run`` on the world's evaluation split and returns
each task's headline number; ``shuffled_reference_cider`` and ``shuffled_prompt_clip`` are the captioning and
text-to-image controls of the world figures.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from mmada_bench.run.runner import run
from mmada_bench.run.types import RunSettings

#: the tasks the world model is evaluated on (t2i is scored separately: world oracle + world CLIP)
EVAL_TASKS = ("pope", "mme", "flickr30k", "gsm8k", "math500")


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


def shuffled_reference_cider(items_path: str | Path, data_dir: str | Path, seed: int = 0) -> dict:
    """CIDEr of a Flickr30k-format run's predictions against their own and against shuffled references.

    The control pairs each prediction with the five references of another image (a fixed derangement): a
    model that reads its image scores well above it, one that writes a generic caption does not."""
    import pandas as pd

    from mmada_scoring.caption import score_captions

    items = pd.read_parquet(items_path)
    items = items[items["error"].isna()]
    refs = pd.read_parquet(Path(data_dir) / "flickr30k" / "test.parquet", columns=["img_id", "caption"])
    by_id = {str(r.img_id): list(r.caption) for r in refs.itertuples()}
    ids = [str(i) for i in items["item_id"]]
    shift = _derangement_shift(len(ids), seed)
    scores = {}
    for name, order in (("own", ids), ("shuffled", ids[shift:] + ids[:shift])):
        rows = [{"img_id": i, "caption": by_id[o], "prediction": p}
                for i, o, p in zip(ids, order, items["output"].fillna(""))]
        scores[name] = 100.0 * score_captions(rows)["aggregate"]["CIDEr"]
    # a control at 0 leaves the ratio undefined (None), not infinite: with both at 0 the model reads nothing
    scores["ratio"] = scores["own"] / scores["shuffled"] if scores["shuffled"] else None
    scores["n"] = len(ids)
    return scores


def _derangement_shift(n: int, seed: int) -> int:
    """A fixed non-zero rotation of ``n`` items (every item paired with another one)."""
    import numpy as np

    return 1 + int(np.random.default_rng(seed).integers(0, max(1, n - 1)))


def shuffled_prompt_clip(items_path: str | Path, clip_dir: str | Path, seed: int = 0) -> dict:
    """CLIP score of a t2i run's images against their own prompts and against shuffled prompts.

    ``items_path``: the run's ``t2i.parquet`` (its ``output`` column holds each image's path, relative to the run's
    folder ``runs/<run_id>``); ``clip_dir``: an open_clip folder (the world CLIP). The control pairs each image with
    another item's prompt (a fixed derangement): images that follow their prompts score well above it. Returns the
    two means, their paired difference with a 95 % bootstrap interval, and ``n``."""
    import numpy as np
    import pandas as pd

    from mmada_bench.metrics.intervals import bootstrap_interval
    from mmada_scoring.clip_score import ClipScorer

    items_path = Path(items_path)
    items = pd.read_parquet(items_path)
    items = items[items["error"].isna() & items["output"].notna()]
    if len(items) < 2:
        raise ValueError(f"{items_path}: {len(items)} scored image(s); the shuffled-prompt control needs at least 2")
    run_dir = items_path.parents[2] / "runs" / str(items["run_id"].iloc[0])
    images = [run_dir / o for o in items["output"]]
    prompts = list(items["prompt"])
    shift = _derangement_shift(len(prompts), seed)
    scorer = ClipScorer.from_dir(clip_dir)
    own = np.array(scorer.score(images, prompts))
    shuffled = np.array(scorer.score(images, prompts[shift:] + prompts[:shift]))
    diff = (own - shuffled).tolist()
    return {"own": float(own.mean()), "shuffled": float(shuffled.mean()), "diff": float(np.mean(diff)),
            "diff_ci": list(bootstrap_interval(diff)), "n": len(diff)}


def evaluate_t2i(model: str | Path, output_dir: str | Path, limit: Optional[int] = None, batch_size: int = 16,
                 **settings) -> dict:
    """Text-to-image on the bundled world prompts (``--data-dir world``), scored by the world oracle and the CLIP
    that ships beside ``model``: ``geneval_world`` overall and per prompt category (share, ``n``), the CLIP
    score, and the shuffled-prompt CLIP control (:func:`shuffled_prompt_clip`)."""
    from mmada_bench.metrics.image_metrics import model_clip_dir
    from mmada_bench.results.leaderboard import items_path
    from mmada_bench.run.text_to_image import SCORER_NOT_COMPUTED

    outcome = run(RunSettings(tasks=["t2i"], model=str(model), data_dir="world", output_dir=str(output_dir),
                              limit=limit, batch_size=batch_size, progress=False, **settings))
    # a scorer without local weights (ImageReward, say) leaves its metric out; anything else is a failure
    messages = [line for text in outcome.task_errors.values() for line in text.splitlines() if line.strip()]
    failures = [m for m in messages if f"{SCORER_NOT_COMPUTED}:" not in m]
    if failures:
        raise RuntimeError("; ".join(failures))
    result: dict = {"run_id": outcome.run_id, "geneval_world": {}, "by_category": {},
                    "not_computed": [m for m in messages if f"{SCORER_NOT_COMPUTED}:" in m]}
    for r in outcome.rows:
        summary = {"value": r["value"], "n": int(r["n"])}
        if r["metric"].startswith("geneval_world[category="):
            result["by_category"][r["metric"].split("=", 1)[1].rstrip("]")] = summary
        elif r["metric"] == "geneval_world":
            result["geneval_world"] = summary
        elif r["metric"] == "clip_score":
            result["clip_score"] = {**summary, "clip": r["filter"]}
    clip = model_clip_dir(model)
    if clip is not None:
        result["clip_control"] = shuffled_prompt_clip(items_path(output_dir, outcome.run_id, "t2i"), clip)
    return result


#: the held-out slice a packaged world model's scores are recorded on (and checked against in CI)
SLICE_TASKS = ("pope", "mme")
SLICE_LIMIT = 24
RECORDED_SLICE = "recorded_slice.json"


def run_slice(model: str | Path, output_dir: str | Path, tasks: Sequence[str] = SLICE_TASKS,
              limit: int = SLICE_LIMIT) -> dict:
    """Scores and per-item outputs of ``model`` on the first ``limit`` items of each task of the bundled world
    split (float32 CPU greedy: deterministic), as :func:`record_slice` stores them."""
    import pandas as pd

    from mmada_bench.data.loading import WORLD_DIR
    from mmada_bench.results.leaderboard import items_path

    scores = evaluate(model, WORLD_DIR, output_dir, tasks=tasks, limit=limit, batch_size=8)
    record = {"tasks": list(tasks), "limit": limit, "data": "bundled world split", "scores": {}, "outputs": {}}
    for task, score in scores.items():
        items = pd.read_parquet(items_path(output_dir, score["run_id"], task))
        record["scores"][task] = {k: score[k] for k in ("metric", "value", "n", "n_errors")}
        record["outputs"][task] = {str(i): o for i, o in zip(items["item_id"], items["output"])}
    return record


def record_slice(model: str | Path, work_dir: str | Path) -> dict:
    """Run :func:`run_slice` and write it to ``model/recorded_slice.json`` (the packaging step does this)."""
    import json

    record = run_slice(model, work_dir)
    (Path(model) / RECORDED_SLICE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record
