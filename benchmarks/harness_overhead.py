"""Where the wall time of a whole ``python -m mmada_bench run`` goes (issue 16, item 4).

Runs the command in fresh processes (so imports count) and reads the ``timing`` block the run writes
into its manifest (``mmada_bench/run/timing.py``): start-up (imports + planning + model loading),
the tasks' wall time, the time inside ``model.generate`` and inside the forward passes, and the rest
(the harness). One row per model and batch size, printed as a Markdown table.

    python benchmarks/build_profile_model.py --out out/mmada-50m
    python benchmarks/harness_overhead.py --model out/mmada-50m --limit 20 --preset ci --batch-sizes 1 4
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_once(model: str | None, args, batch_size: str, out: Path) -> dict:
    """One fresh ``run`` process; returns its manifest's timing block plus the wall time seen from outside."""
    cmd = [sys.executable, "-m", "mmada_bench", "run", "--tasks", args.task, "--limit", str(args.limit),
           "--preset", args.preset, "--data-dir", str(args.data_dir), "--output-dir", str(out),
           "--batch-size", batch_size, "--no-progress", *(["--model", model] if model else []),
           *(["--gen-kwargs", args.gen_kwargs] if args.gen_kwargs else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    (manifest,) = out.glob("runs/*/manifest.json")
    data = json.loads(manifest.read_text())
    return {**data["timing"], "process_wall_s": wall, "batch_size": data["batch_sizes"][args.task]["batch_size"]}


def table(rows: list[dict]) -> str:
    head = ("| model | batch | items | start-up s (imports + load) | tasks s | in generate | in forward | "
            "harness s | process wall s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['batch_size']} | {r['generated_items']} | {r['startup_s']:.2f} "
                     f"({r['import_s'] or 0:.2f} + {r['load_s']:.2f}) | {r['tasks_s']:.2f} | "
                     f"{100 * r['generate_share']:.1f} % | {100 * r['forward_share']:.1f} % | {r['harness_s']:.2f} | "
                     f"{r['process_wall_s']:.2f} |")
    return "\n".join(lines)


def machine() -> str:
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), load average {load[0]:.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[],
                        help="checkpoint folder (repeatable); 'smoke' = the packaged smoke model (default: smoke)")
    parser.add_argument("--task", default="gsm8k")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--preset", default="ci", help="a short text preset (default: ci, 16 tokens)")
    parser.add_argument("--gen-kwargs", default=None, help="passed through to run, e.g. gen_length=8,steps=4")
    parser.add_argument("--batch-sizes", nargs="+", default=["1"], help="e.g. 1 4 auto")
    parser.add_argument("--data-dir", type=Path, default=REPO / "tests" / "fixtures" / "data")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = []
    print(f"machine: {machine()}", flush=True)
    for model in args.model or ["smoke"]:
        for batch in args.batch_sizes:
            with tempfile.TemporaryDirectory() as tmp:
                row = run_once(None if model == "smoke" else model, args, batch, Path(tmp))
            rows.append({**row, "model": Path(model).name})
            print(f"{Path(model).name} batch {row['batch_size']}: start-up {row['startup_s']:.2f} s, tasks "
                  f"{row['tasks_s']:.2f} s, forward share {100 * row['forward_share']:.1f} %", flush=True)
    print(f"machine at the end: {machine()}")
    print(table(rows))
    if args.json:
        settings = {"task": args.task, "limit": args.limit, "preset": args.preset, "gen_kwargs": args.gen_kwargs,
                    "batch_sizes": args.batch_sizes, "models": [Path(m).name for m in args.model or ["smoke"]]}
        args.json.write_text(json.dumps({"machine": machine(), "settings": settings, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
