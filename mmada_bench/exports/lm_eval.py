"""A run as lm-eval 0.4.13 writes one: ``results_<date_id>.json`` and ``samples_<task>_<date_id>.jsonl``.

Layout as in ``lm_eval/evaluator.py`` (``simple_evaluate``), ``evaluator_utils.py`` (results entries
``{"name", "alias", "sample_len", "<metric>,<filter>", "<metric>_stderr,<filter>"}``, stderr ``"N/A"`` for
set metrics and n < 2) and ``loggers/evaluation_tracker.py`` (files under ``<out>/<model_name_sanitized>/``,
``date_id = isoformat().replace(":", "-")``, sample ``arguments`` as ``{"gen_args_0": {"arg_0": prompt,
"arg_1": gen_kwargs}}``, ``resps``/``filtered_resps`` as strings, ``task_hashes``). One sample per item and
filter. Only whole-set rows are exported (per-split / per-category breakdowns are not lm-eval results).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
from pathlib import Path

from mmada_bench.exports.run_data import RunData

#: metrics where neither direction is better (lm-eval writes None)
NO_DIRECTION = {"yes_ratio"}


def hash_string(text: str) -> str:
    """lm-eval's ``hash_string``: sha256 hex of the UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sanitize_model_name(name: str) -> str:
    """lm-eval's ``sanitize_model_name``."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def _as_str(value):
    """lm-eval's ``sanitize_list``: nested lists/tuples with every leaf as a string."""
    if isinstance(value, (list, tuple)):
        return type(value)(_as_str(v) for v in value)
    return str(value)


def _json(text, default):
    return json.loads(text) if isinstance(text, str) and text else default


def _number(value):
    """Finite floats as they are; NaN / None become lm-eval's "N/A"."""
    return "N/A" if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def date_id(run: RunData) -> str:
    """lm-eval's file timestamp (``2026-12-02T12-51-08.000000``) of the run's last finished task, in UTC."""
    finished = max(str(v) for v in run.board["finished_at"])
    moment = _dt.datetime.fromisoformat(finished).astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds").replace(":", "-")


def gen_kwargs(run: RunData, task: str) -> dict:
    """The generation settings of ``task`` in lm-eval's ``generation_kwargs`` terms (plus the sampler's own)."""
    entry = run.manifest_task(task)
    preset = dict(entry.get("preset") or _json(run.primary(task).get("generation_settings"), {}))
    kwargs = {"until": list(entry.get("stop", [])), "max_gen_toks": preset.get("gen_length"),
              "do_sample": bool(preset.get("temperature") or 0), "temperature": preset.get("temperature", 0.0)}
    kwargs.update({k: v for k, v in preset.items() if k not in ("gen_length", "temperature", "source")})
    return kwargs


def _stderr(items, key: str, n: int):
    """lm-eval's ``mean_stderr`` (sample stddev / sqrt(n)) over the per-item scores of ``metric/filter``."""
    scores = [float(s[key]) if s.get(key) is not None else 0.0 for s in items if key in s]
    if len(scores) < 2 or len(scores) != n:
        return "N/A"
    mean = sum(scores) / len(scores)
    return math.sqrt(sum((x - mean) ** 2 for x in scores) / (len(scores) - 1)) / math.sqrt(len(scores))


def task_results(run: RunData, task: str, item_scores: list[dict]) -> dict:
    """The ``results[task]`` entry: name, alias, sample_len, then ``metric,filter`` and its ``_stderr``."""
    rows = run.whole(task)
    entry = {"name": task, "alias": task, "sample_len": int(rows["n"].max())}
    for _, r in rows.iterrows():
        metric, filt = str(r["metric"]), str(r["filter"])
        entry[f"{metric},{filt}"] = _number(r["value"])
        entry[f"{metric}_stderr,{filt}"] = _stderr(item_scores, f"{metric}/{filt}", int(r["n"]))
    return entry


def task_config(run: RunData, task: str) -> dict:
    """The ``configs[task]`` entry: lm-eval's TaskConfig keys filled from the card's protocol and the run."""
    r = run.primary(task)
    protocol = _json(r.get("protocol"), {})
    rows = run.whole(task)
    return {
        "task": task, "dataset_path": r.get("dataset_source"), "test_split": r.get("split"),
        "output_type": "generate_until", "num_fewshot": protocol.get("shots", 0),
        "generation_kwargs": gen_kwargs(run, task),
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": m not in NO_DIRECTION}
                        for m in dict.fromkeys(rows["metric"])],
        "filter_list": [{"name": f} for f in dict.fromkeys(rows["filter"])],
        "description": protocol.get("description", ""),
        "metadata": {"version": r.get("task_version"), "variant": r.get("variant"), "preset": r.get("preset"),
                     "card_hash": r.get("card_hash"), "prompt_hash": r.get("prompt_hash"),
                     "dataset_fingerprint": r.get("dataset_fingerprint"), "mmada_bench_run_id": run.run_id},
    }


def samples(run: RunData, task: str) -> list[dict]:
    """Per-sample records as lm-eval writes them (already sanitized): one per item and filter."""
    items = run.items(task)
    kwargs = gen_kwargs(run, task)
    out = []
    for filt in dict.fromkeys(run.whole(task)["filter"]):
        for _, item in items.iterrows():
            scores = _json(item.get("scores"), {})
            extracted = _json(item.get("extracted"), {})
            doc = {"item_id": item["item_id"], "index": int(item["index"]), "split": item.get("split"),
                   "gold": item.get("gold")}
            target = str(item.get("gold"))
            prompt = str(item.get("prompt") or "")
            metrics = {key.split("/", 1)[0]: float(v) if v is not None else 0.0 for key, v in scores.items()
                       if key.split("/", 1)[-1] == filt}
            error = item.get("error")
            record = {
                "doc_id": int(item["index"]), "doc": doc, "target": target,
                "arguments": {"gen_args_0": {"arg_0": prompt, "arg_1": kwargs}},
                "resps": _as_str([[item.get("raw_output") or ""]]),
                "filtered_resps": _as_str([extracted.get(filt, item.get("output") or "")]),
                "filter": filt, "metrics": list(metrics),
                "doc_hash": hash_string(json.dumps(doc, indent=2, default=str, ensure_ascii=False)),
                "prompt_hash": hash_string(prompt), "target_hash": hash_string(target),
                **metrics,
            }
            if isinstance(error, str) and error:
                record["error"] = error
            out.append(record)
    return out


def results(run: RunData, task_samples: dict[str, list[dict]]) -> dict:
    """The whole ``results_<date_id>.json`` document."""
    first = run.board.iloc[0]
    model = str(first["model_name"])
    tasks = run.tasks
    scores = {t: [_json(s, {}) for s in run.items(t)["scores"]] for t in tasks}
    packages = _json(first.get("package_versions"), {})
    started = _dt.datetime.fromisoformat(min(str(v) for v in run.board["started_at"]))
    system = (run.manifest.get("settings") or {}).get("system_instruction")  # run --system-instruction
    return {
        "results": {t: task_results(run, t, scores[t]) for t in tasks},
        "group_subtasks": {t: [] for t in reversed(tasks)},
        "configs": {t: task_config(run, t) for t in sorted(tasks)},
        "versions": {t: run.primary(t).get("task_version") for t in sorted(tasks)},
        "n-shot": {t: int(_json(run.primary(t).get("protocol"), {}).get("shots", 0)) for t in sorted(tasks)},
        "higher_is_better": {t: {m: (None if m in NO_DIRECTION else True) for m in dict.fromkeys(run.whole(t)["metric"])}
                             for t in sorted(tasks)},
        "n-samples": {t: {"original": int(run.manifest_task(t).get("n_items") or run.primary(t)["n"]),
                          "effective": int(run.primary(t)["n"])} for t in tasks},
        "config": {
            "model": str(first["model_family"]), "model_args": f"pretrained={model}",
            "model_dtype": first.get("dtype"), "model_revision": "main",
            "model_sha": str(first["model_fingerprint"]), "batch_size": str(first.get("batch_size")),
            "batch_sizes": [], "device": first.get("device"), "use_cache": None,
            "limit": None if first.get("limit") is None or first.get("limit") != first.get("limit") else int(first["limit"]),
            "bootstrap_iters": 100000, "gen_kwargs": None, "random_seed": int(first.get("seed") or 0),
            "numpy_seed": int(first.get("seed") or 0), "torch_seed": int(first.get("seed") or 0),
            "fewshot_seed": int(first.get("seed") or 0),
        },
        "git_hash": str(first.get("git_sha") or "")[:7],
        "date": started.timestamp(),
        "pretty_env_info": f"exported by mmada-bench from run {run.run_id} (device {first.get('device')})",
        "transformers_version": packages.get("transformers", "N/A"),
        "lm_eval_version": packages.get("lm-eval", "N/A"),
        "upper_git_hash": None,
        "task_hashes": {t: hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"]
                                                for s in task_samples[t])) for t in tasks},
        "model_source": str(first["model_family"]), "model_name": model,
        "model_name_sanitized": sanitize_model_name(model),
        "system_instruction": system, "system_instruction_sha": hash_string(system) if system else None,
        "fewshot_as_multiturn": False,
        "chat_template": None, "chat_template_sha": None,
        "total_evaluation_time_seconds": str(float(run.board.drop_duplicates("task")["wall_s"].fillna(0).sum())),
    }


def write_lm_eval(run: RunData, out: str | Path) -> list[Path]:
    """Write ``<out>/<model_name_sanitized>/results_<date_id>.json`` and one samples file per task."""
    task_samples = {t: samples(run, t) for t in run.tasks}
    doc = results(run, task_samples)
    folder = Path(out) / doc["model_name_sanitized"]
    folder.mkdir(parents=True, exist_ok=True)
    stamp = date_id(run)
    path = folder / f"results_{stamp}.json"
    path.write_text(json.dumps(doc, indent=2, default=str, ensure_ascii=False), encoding="utf-8")
    written = [path]
    for task, records in task_samples.items():
        sample_path = folder / f"samples_{task}_{stamp}.jsonl"
        sample_path.write_text("".join(json.dumps(r, default=str, ensure_ascii=False) + "\n" for r in records),
                               encoding="utf-8")
        written.append(sample_path)
    return written
