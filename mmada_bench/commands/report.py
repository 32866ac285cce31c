"""``report``: one self-contained HTML file of one or more runs."""
from __future__ import annotations

import sys
from pathlib import Path

from mmada_bench.exports.run_data import ExportError, load_run_data
from mmada_bench.gate import CompareError
from mmada_bench.report.html import build_report
from mmada_bench.results import baselines
from mmada_bench.results.environment import utc_now

HELP = "write one self-contained HTML report of runs (tables, baselines, plots, gate, manifests)"
DESCRIPTION = """\
One HTML file (inline CSS, figures as PNG data URIs, no external URLs) with, per run, the
headline table beside the papers' baselines (protocol differences marked), per-split /
per-category bars, a speed-quality plot of the presets present, the latency / throughput plots of
profiles.parquet when it exists, text-to-image contact sheets, the regression gate when exactly two
runs are given (the second against the first), and each run's manifest.

RUN: run ids under --output-dir, or `latest` (default)."""
EPILOG = """\
examples:
  python -m mmada_bench report --out report.html
  python -m mmada_bench report mmada-3f2a91c0 mmada-77b0e1d2 --out gate.html --output-dir out/
"""


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="*", default=["latest"], metavar="RUN", help="run ids or `latest` (default: latest)")
    parser.add_argument("--out", default="report.html", help="the HTML file to write (default: report.html)")
    parser.add_argument("--output-dir", default="leaderboards", help="where the results are (default: leaderboards/)")
    parser.add_argument("--baselines", default=None, help="baselines Parquet (default: the packaged one)")


def main(args) -> int:
    try:
        runs = [load_run_data(run, args.output_dir) for run in args.runs]
        try:
            table = baselines.load(args.baselines)
        except (OSError, ValueError) as exc:
            print(f"warning: no baselines ({exc})", file=sys.stderr)
            table = None
        page = build_report(runs, table, utc_now())
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    except (ExportError, CompareError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot write the report: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
    return 0
