"""``compare``: the regression gate between two runs (paired bootstrap over shared items)."""
from __future__ import annotations

import sys
from pathlib import Path

from mmada_bench.gate import CompareError, compare_runs, load_run, markdown_report

HELP = "regression gate: compare a candidate run against a baseline run item by item"
DESCRIPTION = """\
Compare two runs task by task and metric by metric on the items both scored: the difference
candidate - baseline with a paired bootstrap 95 % interval. A regression is a drop whose whole
interval lies below -tolerance (per task: the card's regression.tolerance unless overridden).
Only each task's primary metric is gated unless --all-metrics.

BASELINE / CANDIDATE: a run id (under --output-dir), an items Parquet file
(items/<run_id>/<task>.parquet), an items/<run_id>/ folder, or an output dir (its latest run).

exit status: 0 no regression, 1 regression, 2 not comparable (different protocol, task version
or variant, a task missing on one side, or no shared items)."""
EPILOG = """\
examples:
  python -m mmada_bench compare mmada-3f2a91c0 mmada-77b0e1d2
  python -m mmada_bench compare accepted/ candidate/ --report gate.md
  python -m mmada_bench compare base/items/RUN/gsm8k.parquet cand/items/RUN2/gsm8k.parquet --tolerance 0.03
  python -m mmada_bench compare BASE CAND --tolerance gsm8k=0.01 --tolerance math500=0.03 --tasks gsm8k,math500
"""


def add_arguments(parser) -> None:
    parser.add_argument("baseline", help="baseline run: run id, items Parquet, items/<run_id>/ folder or output dir")
    parser.add_argument("candidate", help="candidate run (same forms)")
    parser.add_argument("--output-dir", default="leaderboards", help="where run ids are looked up (default: leaderboards/)")
    parser.add_argument("--tolerance", action="append", default=[], metavar="[TASK=]VALUE",
                        help="allowed drop on the fraction scale (0.02 = 2 points): global, or per task with "
                             "TASK=VALUE; repeatable; default: each card's regression.tolerance")
    parser.add_argument("--tasks", default=None, help="comma-separated tasks to compare (default: all of both runs)")
    parser.add_argument("--all-metrics", action="store_true", help="gate every metric, not only the primary one")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default: 2000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    parser.add_argument("--report", default=None, help="also write the Markdown report to this file")
    parser.add_argument("--quiet", action="store_true", help="do not print the report")


def parse_tolerances(values: list[str]) -> tuple[dict, float | None]:
    """``["0.02", "gsm8k=0.01"]`` -> ({"gsm8k": 0.01}, 0.02); raises ValueError with a clear message."""
    per_task, default = {}, None
    for value in values:
        task, sep, number = value.rpartition("=")
        try:
            tolerance = float(number)
        except ValueError:
            raise ValueError(f"--tolerance {value!r}: expected VALUE or TASK=VALUE with a number, e.g. 0.02 "
                             f"or gsm8k=0.02") from None
        if not 0 <= tolerance < 1:
            raise ValueError(f"--tolerance {value!r}: a tolerance is an absolute drop on the 0..1 scale "
                             f"(0.02 = 2 points), got {tolerance}")
        if sep:
            per_task[task] = tolerance
        else:
            default = tolerance
    return per_task, default


def main(args) -> int:
    try:
        per_task, default = parse_tolerances(args.tolerance)
        if args.resamples < 100:
            raise ValueError("--resamples must be at least 100")
        baseline = load_run(args.baseline, args.output_dir)
        candidate = load_run(args.candidate, args.output_dir)
    except (CompareError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    result = compare_runs(baseline, candidate, per_task, default, tasks, args.all_metrics, args.resamples, args.seed)
    report = markdown_report(result)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(report)
    if not args.quiet:
        print(report)
    return result.status
