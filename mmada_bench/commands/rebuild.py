"""``rebuild``: regenerate leaderboard.parquet from the rows every run keeps (runs/<run_id>/rows/<task>.parquet)."""
from __future__ import annotations

import sys
from pathlib import Path

from mmada_bench.results.leaderboard import rebuild_leaderboard

HELP = "regenerate leaderboard.parquet from the runs' own rows (runs/*/rows/*.parquet)"
DESCRIPTION = """\
Rebuild the leaderboard from the rows each finished task also writes to runs/<run_id>/rows/<task>.parquet,
e.g. after leaderboard.parquet was deleted or damaged. Corrupt files met on the way are renamed to
<name>.corrupt-<UTC time> with a warning. Rows of an old leaderboard that no run rows back are not lost:
that file is kept as leaderboard.parquet.replaced-<UTC time>."""
EPILOG = """\
examples:
  python -m mmada_bench rebuild
  python -m mmada_bench rebuild --output-dir out/
"""


def add_arguments(parser) -> None:
    parser.add_argument("--output-dir", default="leaderboards", help="the results folder (default: leaderboards/)")


def main(args) -> int:
    out = Path(args.output_dir)
    try:
        result = rebuild_leaderboard(out)
    except OSError as exc:
        print(f"error: cannot rebuild {out / 'leaderboard.parquet'}: {exc}", file=sys.stderr)
        return 1
    if not result["files"]:
        print(f"error: no run rows under {out}/runs/*/rows/*.parquet; nothing rebuilt "
              f"(runs write them when a task finishes)", file=sys.stderr)
        return 1
    print(f"rebuilt {result['path']}: {result['rows']} rows from {result['runs']} runs ({result['files']} task files)")
    if result["kept_aside"]:
        print(f"the previous leaderboard held rows without run rows; kept as {result['kept_aside']}")
    return 0
