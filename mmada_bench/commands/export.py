"""``export``: a run as lm-eval results/samples files, or its headline table as CSV / Markdown."""
from __future__ import annotations

import sys
from pathlib import Path

from mmada_bench.exports.lm_eval import write_lm_eval
from mmada_bench.exports.run_data import ExportError, load_run_data
from mmada_bench.exports.tables import headline_rows, to_csv, to_markdown

HELP = "export a run: lm-eval results/samples files, or the headline table as CSV / Markdown"
DESCRIPTION = """\
RUN is a run id under --output-dir, or `latest` (the most recently finished run).

--format lm-eval   <out>/<model>/results_<date>.json and samples_<task>_<date>.jsonl with the keys
                   lm-eval 0.4.13 writes (results "metric,filter" + "_stderr", configs, versions,
                   n-shot, higher_is_better, n-samples, config, task_hashes, ...); whole-set metrics only.
--format csv       the headline table: one row per task (primary metric, value, CI, n, errors,
--format markdown  variant, protocol), values on the printed scale (% for fractions).

Writes into --out (default: <output-dir>/exports/<run_id>/); exit status 0, 1 when the run or
one of its files is missing, 2 for bad arguments."""
EPILOG = """\
examples:
  python -m mmada_bench export latest --format lm-eval
  python -m mmada_bench export dummy-4f12deb976ed --format markdown --output-dir out/ --out paper/
  python -m mmada_bench export latest --format csv --out -          # print to stdout
"""
FORMATS = ("lm-eval", "csv", "markdown")


def add_arguments(parser) -> None:
    parser.add_argument("run", help="run id, or `latest`")
    parser.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    parser.add_argument("--output-dir", default="leaderboards", help="where the results are (default: leaderboards/)")
    parser.add_argument("--out", default=None,
                        help="folder to write into (default: <output-dir>/exports/<run_id>/); csv/markdown: - = stdout")


def main(args) -> int:
    try:
        run = load_run_data(args.run, args.output_dir)
        out = Path(args.out) if args.out else Path(args.output_dir) / "exports" / run.run_id
        if args.format == "lm-eval":
            if args.out == "-":
                raise ValueError("--format lm-eval writes files: pass a folder as --out")
            paths = write_lm_eval(run, out)
        else:
            rows = headline_rows(run)
            text = to_csv(rows) if args.format == "csv" else to_markdown(rows, f"{run.run_id} ({run.board.iloc[0]['model_name']})")
            if args.out == "-":
                sys.stdout.write(text)
                return 0
            out.mkdir(parents=True, exist_ok=True)
            paths = [out / f"{run.run_id}.{'csv' if args.format == 'csv' else 'md'}"]
            paths[0].write_text(text, encoding="utf-8")
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the export: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"wrote {path}")
    return 0
