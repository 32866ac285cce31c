"""Parallel decoding on a trained model: accuracy vs tokens per step of the cache modes and confidence thresholds.

Runs the harness on the shapes-world model (default: the packaged one) over the bundled world split for each
cache mode (none / prefix / dual) x confidence threshold (1.0 = one token per step, 0.95, 0.9, 0.8, 0.7) plus
factor decoding, pairs every configuration with vanilla on the same items (the regression gate's paired
bootstrap) and writes a Markdown table, a JSON file and a speed-quality plot::

    python benchmarks/world_parallel_decoding.py --out docs/world/parallel_decoding [--tasks gsm8k,flickr30k]
        [--limit 200] [--model DIR] [--batch-size 8]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from mmada_bench.gate import compare_runs, load_run
from mmada_bench.models.smoke import WORLD_MODEL_DIR
from mmada_bench.run.runner import run
from mmada_bench.run.types import RunSettings

CACHES = ("none", "prefix", "dual")
THRESHOLDS = (1.0, 0.95, 0.9, 0.8, 0.7)
FACTOR = 1.0


def configs() -> list[dict]:
    """Every sampler override measured: ``{"label", "gen_kwargs"}`` (threshold 1.0 = the preset itself)."""
    out = []
    for cache in CACHES:
        for t in THRESHOLDS:
            kwargs = {"cache": cache, **({"threshold": str(t)} if t < 1.0 else {})}
            out.append({"label": f"{cache} t={t}", "cache": cache, "threshold": t, "factor": None,
                        "gen_kwargs": kwargs})
        out.append({"label": f"{cache} factor={FACTOR}", "cache": cache, "threshold": None, "factor": FACTOR,
                    "gen_kwargs": {"cache": cache, "factor": str(FACTOR)}})
    return out


def measure(task: str, config: dict, args, output_dir: Path) -> dict:
    """Run one configuration; returns its headline number, tokens per step and wall time."""
    settings = RunSettings(tasks=[task], model=args.model, data_dir=str(args.data_dir), require_data=True,
                           output_dir=str(output_dir), limit=args.limit, batch_size=args.batch_size, progress=False,
                           gen_kwargs=config["gen_kwargs"])
    start = time.perf_counter()
    outcome = run(settings)
    seconds = time.perf_counter() - start
    if outcome.task_errors:
        raise SystemExit(f"{task} {config['label']}: {outcome.task_errors[task]}")
    primary = next(r for r in outcome.rows if r.get("is_primary") and not r.get("breakdown"))
    items = pd.read_parquet(output_dir / "items" / outcome.run_id / f"{task}.parquet")
    tokens = items["n_generated_tokens"].sum() if "n_generated_tokens" in items else float("nan")
    nfe = items["nfe"].sum() if "nfe" in items else float("nan")
    return {"task": task, **{k: config[k] for k in ("label", "cache", "threshold", "factor")},
            "run_id": outcome.run_id, "metric": f"{primary['metric']}/{primary['filter']}", "value": primary["value"],
            "n": int(primary["n"]), "tokens_per_step": float(tokens / nfe) if nfe else float("nan"),
            "seconds": round(seconds, 1)}


def paired(rows: list[dict], output_dir: Path) -> None:
    """Add the paired difference to vanilla (``none t=1.0``) on the same items, with its 95 % interval (the regression
    gate's comparison: per-item scores, per-item CIDEr for captions)."""
    for task in {r["task"] for r in rows}:
        base = next(r for r in rows if r["task"] == task and r["label"] == "none t=1.0")
        baseline = load_run(base["run_id"], output_dir)
        for r in (r for r in rows if r["task"] == task):
            cmp = compare_runs(baseline, load_run(r["run_id"], output_dir), tasks=[task], default_tolerance=0.0)
            m = next((m for t in cmp.tasks for m in t.metrics if m.is_primary), None)
            r.update(paired_metric=m.metric if m else None, paired_diff=m.diff if m else None,
                     ci_low=m.ci_low if m else None, ci_high=m.ci_high if m else None, n_shared=m.n_shared if m else 0)


def markdown(rows: list[dict]) -> str:
    lines = ["| task | decoding | primary metric | value | tokens / step | wall s | paired vs vanilla (95 % CI) | n |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        diff = ("-" if r.get("paired_diff") is None else
                f"{r['paired_diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] ({r['paired_metric']})")
        lines.append(f"| {r['task']} | {r['label']} | {r['metric']} | {r['value']:.3f} | {r['tokens_per_step']:.2f} | "
                     f"{r['seconds']} | {diff} | {r.get('n_shared', r['n'])} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for cache, marker in zip(CACHES, "osd"):
            pts = [r for r in rows if r["task"] == task and r["cache"] == cache]
            ax.plot([r["tokens_per_step"] for r in pts if r["factor"] is None],
                    [r["value"] for r in pts if r["factor"] is None], marker=marker, label=f"cache {cache}")
            for r in pts:
                if r["factor"] is not None:
                    ax.scatter([r["tokens_per_step"]], [r["value"]], marker="*", s=120)
                    ax.annotate(f"factor ({cache})", (r["tokens_per_step"], r["value"]), fontsize=7)
        ax.set(title=f"{task} (world split)", xlabel="tokens per step", ylabel=pts[0]["metric"] if pts else "")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output prefix: writes OUT.md, OUT.json, OUT.png")
    parser.add_argument("--tasks", default="gsm8k,flickr30k")
    parser.add_argument("--model", default=str(WORLD_MODEL_DIR))
    parser.add_argument("--data-dir", default="world", help="default: the bundled world split")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--runs-dir", default="runs/world_parallel_decoding", help="harness output dir of the runs")
    args = parser.parse_args(argv)
    output_dir = Path(args.runs_dir)
    rows = []
    for task in args.tasks.split(","):
        for config in configs():
            rows.append(measure(task, config, args, output_dir))
            print(json.dumps(rows[-1]), flush=True)
    paired(rows, output_dir)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(rows))
    plot(rows, out.with_suffix(".png"))
    print(markdown(rows))


if __name__ == "__main__":
    main()
