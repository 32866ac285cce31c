"""``show``: a run's results beside the published baselines, with protocol differences marked."""
from __future__ import annotations

import json
import sys

HELP = "print a run's results beside the published baselines (protocol differences marked)"
DESCRIPTION = """\
Print the metrics of a run (default: the most recently finished one) and, for each task, the
published numbers of the same benchmark from baselines.parquet. A baseline whose protocol differs
from the task card's (shots, split, metric) is marked with '*' and the difference."""
EPILOG = """\
examples:
  python -m mmada_bench show
  python -m mmada_bench show dummy-06770856a5ba --output-dir out/
  python -m mmada_bench show --task gsm8k --baselines leaderboards/baselines.parquet
"""


def add_arguments(parser) -> None:
    parser.add_argument("run_id", nargs="?", default=None, help="run id (default: the latest finished run)")
    parser.add_argument("--output-dir", default="leaderboards", help="where the leaderboard is (default: leaderboards/)")
    parser.add_argument("--baselines", default=None, help="baselines Parquet (default: the committed leaderboards/baselines.parquet)")
    parser.add_argument("--task", default=None, help="only this task")


def main(args) -> int:
    from mmada_bench.results import read_leaderboard

    board = read_leaderboard(args.output_dir)
    if board.empty:
        print(f"error: no results in {args.output_dir}/leaderboard.parquet; run `python -m mmada_bench run --tasks ...` first",
              file=sys.stderr)
        return 1
    run_id = args.run_id or board.sort_values("finished_at").iloc[-1]["run_id"]
    rows = board[board["run_id"] == run_id]
    if args.task:
        rows = rows[rows["task"] == args.task]
    if rows.empty:
        known = ", ".join(sorted(board["run_id"].unique())[-10:])
        print(f"error: no results for run {run_id!r}{' task ' + args.task if args.task else ''}; known runs: {known}",
              file=sys.stderr)
        return 1
    print(format_show(rows, _baselines(args.baselines)))
    return 0


def _baselines(path):
    from mmada_bench import baselines

    try:
        return baselines.load(path)
    except (OSError, ValueError) as exc:
        print(f"warning: no baselines ({exc}); build them with python -m mmada_bench.baselines build --csv PATH",
              file=sys.stderr)
        return None


def format_show(rows, baselines) -> str:
    """Text of the run's rows grouped by task, each followed by its benchmark's baselines."""
    from mmada_bench.baselines import protocol_differences

    first = rows.iloc[0]
    smoke = "  [SMOKE MODEL: not a real result]" if first["model_is_smoke"] else ""
    lines = [f"run {first['run_id']}  model {first['model_name']} ({first['model_family']}, "
             f"fingerprint {first['model_fingerprint'][:12]}){smoke}"]
    for task, group in rows.groupby("task", sort=False):
        r0 = group.iloc[0]
        protocol = json.loads(r0["protocol"])
        split = r0["split"] + ("  [SMOKE SUBSET]" if r0["split"] == "smoke" else "")
        lines += ["", f"{task} v{r0['task_version']}  variant {r0['variant']}  split {split}  preset {r0['preset']}",
                  f"  protocol: {protocol.get('description', '')}"]
        for _, r in group.iterrows():
            mark = " (primary)" if r["is_primary"] else ""
            lines.append(f"  this run  {r['metric']}/{r['filter']}{mark}: {100 * r['value']:.1f}% "
                         f"[{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}] ({r['ci_method']}), n={r['n']}, "
                         f"errors={r['n_errors']}")
        if baselines is None:
            continue
        names = [protocol["benchmark"], *protocol.get("baseline_aliases", {})]
        matches = baselines[baselines["benchmark"].isin(names)]
        if matches.empty:
            lines.append(f"  no published baselines for {protocol['benchmark']}")
            continue
        lines.append(f"  published baselines ({protocol['benchmark']}; * = protocol differs from this card):")
        width = max(len(m) for m in matches["model"])
        for _, b in matches.iterrows():
            diffs = protocol_differences(protocol, b.to_dict())
            unit = "%" if b["unit"] == "percent" else ""
            lines.append(f"  {'*' if diffs else ' '} {b['model'].ljust(width)}  {b['benchmark']:<8} {b['value']:>7.1f}{unit}"
                         + (f"   {'; '.join(diffs)}" if diffs else ""))
    return "\n".join(lines)
