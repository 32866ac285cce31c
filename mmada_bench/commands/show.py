"""``show``: a run's results beside the published baselines, with protocol differences marked."""
from __future__ import annotations

import json
import sys

from mmada_bench.cards.discovery import get_task
from mmada_bench.data.loading import BUNDLED_SPLIT_NOTES, WORLD_SPLIT
from mmada_bench.models.smoke import result_label
from mmada_bench.results import baselines
from mmada_bench.results.baselines import baseline_family, protocol_differences
from mmada_bench.results.leaderboard import read_leaderboard

HELP = "print a run's results beside the published baselines (protocol differences marked)"
DESCRIPTION = """\
Print the metrics of a run (default: the most recently finished one) and, for each task, the
published numbers of the same benchmark from baselines.parquet. A baseline whose protocol differs
from the task card's (shots, split, metric) is marked with '*' and the difference."""
EPILOG = """\
examples:
  python -m mmada_bench show
  python -m mmada_bench show dummy-06770856a5ba --output-dir out/
  python -m mmada_bench show --task gsm8k --baselines mmada_bench/assets/baselines.parquet
"""


def add_arguments(parser) -> None:
    parser.add_argument("run_id", nargs="?", default=None, help="run id (default: the latest finished run)")
    parser.add_argument("--output-dir", default="leaderboards", help="where the leaderboard is (default: leaderboards/)")
    parser.add_argument("--baselines", default=None, help="baselines Parquet (default: the packaged mmada_bench/assets/baselines.parquet)")
    parser.add_argument("--task", default=None, help="only this task")
    parser.add_argument("--all", action="store_true", help="every metric under every parser and every breakdown "
                        "(default: the headline metric of each task)")


def main(args) -> int:
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
    headline = rows[rows["is_primary"].fillna(False).astype(bool)]
    if not args.all and not headline.empty:
        rows = headline
    print(format_show(rows, load_baselines_quietly(args.baselines)))
    if not args.all:
        print(f"\n(headline metrics only; every parser and breakdown: python -m mmada_bench show {run_id} --all)")
    return 0


def load_baselines_quietly(path=None):
    """The published baselines, or None with a warning when the file cannot be read."""
    try:
        return baselines.load(path)
    except (OSError, ValueError) as exc:
        print(f"warning: no baselines ({exc}); build them with python -m mmada_bench.results.baselines build --csv PATH",
              file=sys.stderr)
        return None


def format_value(value, unit=None) -> str:
    """A leaderboard value as printed: fractions as %, ``x100`` metrics x100, ``points`` as they are,
    ``score`` (CLIP score, ImageReward) as it is with two decimals."""
    if value is None or value != value:
        return "-"
    if unit == "score":
        return f"{value:.2f}"
    if unit == "points":
        return f"{value:.1f}"
    if unit == "x100":
        return f"{100 * value:.1f}"
    return f"{100 * value:.1f}%"


def format_ci(row) -> str:
    """``[low, high] (method)`` of a row, or the method alone when the row has no interval."""
    low, high = row.get("ci_low"), row.get("ci_high")
    if low is None or high is None or low != low or high != high:
        return f"({row.get('ci_method') or 'no interval'})"
    if row.get("unit") == "score":
        return f"[{low:.2f}, {high:.2f}] ({row['ci_method']})"
    return f"[{100 * low:.1f}, {100 * high:.1f}] ({row['ci_method']})"


def format_breakdowns(rows) -> list[str]:
    """One line per (metric, filter, breakdown kind): ``f1/lmms_eval by split: adversarial 85.0% ...``."""
    lines, groups = [], {}
    for _, r in rows.iterrows():
        kind, _, label = str(r["breakdown"]).partition("=")
        base = str(r["metric"]).split("[", 1)[0]
        groups.setdefault((base, r["filter"], kind), []).append(f"{label} {format_value(r['value'], r.get('unit'))}")
    for (base, filt, kind), cells in groups.items():
        lines.append(f"    {base}/{filt} by {kind}: " + ", ".join(cells))
    return lines


def _card(task: str):
    """The task's card (for the protocol variant each baseline family is scored with), or None if it is gone."""
    try:
        return get_task(task)
    except (KeyError, ValueError):
        return None


def format_show(rows, baselines) -> str:
    """Text of the run's rows grouped by task, each followed by its benchmark's baselines."""
    first = rows.iloc[0]
    label = result_label(first)
    smoke = f"  [{label}]" if label else ""
    lines = [f"run {first['run_id']}  model {first['model_name']} ({first['model_family']}, "
             f"fingerprint {first['model_fingerprint'][:12]}){smoke}"]
    for task, group in rows.groupby("task", sort=False):
        r0 = group.iloc[0]
        protocol = json.loads(r0["protocol"])
        split = r0["split"] + (f"  [{BUNDLED_SPLIT_NOTES[r0['split']]}]" if r0["split"] in BUNDLED_SPLIT_NOTES else "")
        lines += ["", f"{task} v{r0['task_version']}  variant {r0['variant']}  split {split}  preset {r0['preset']}",
                  f"  protocol: {protocol.get('description', '')}"]
        breakdown = group["breakdown"] if "breakdown" in group else None
        whole = group if breakdown is None else group[breakdown.isna()]
        for _, r in whole.iterrows():
            mark = " (primary)" if r["is_primary"] else ""
            lines.append(f"  this run  {r['metric']}/{r['filter']}{mark}: {format_value(r['value'], r.get('unit'))} "
                         f"{format_ci(r)}, n={r['n']}, errors={r['n_errors']}")
        if breakdown is not None and breakdown.notna().any():
            lines += format_breakdowns(group[breakdown.notna()])
        if baselines is None:
            continue
        if r0["split"] == WORLD_SPLIT:  # another world's data: no paper figure is comparable, not even for orientation
            lines.append(f"  published baselines not shown: split {WORLD_SPLIT} is the synthetic shapes world, "
                         f"not {protocol['benchmark']}'s data")
            continue
        names = [protocol["benchmark"], *protocol.get("baseline_aliases", {})]
        matches = baselines[baselines["benchmark"].isin(names)]
        if matches.empty:
            lines.append(f"  no published baselines for {protocol['benchmark']}")
            continue
        card = _card(task)
        if label:
            lines.append(f"  [{label}: the baselines below are for orientation only, not a comparison]")
        lines.append(f"  published baselines ({protocol['benchmark']}; * = protocol differs from this card; "
                     f"[the variant the baseline's model family is scored with]):")
        width = max(len(m) for m in matches["model"])
        for _, b in matches.iterrows():
            diffs = protocol_differences(protocol, b.to_dict())
            variant = card.default_variant_for(baseline_family(b["model_type"])) if card else None
            mark = "*" if diffs else " "
            same = " = this run" if variant is not None and variant == r0["variant"] else ""
            unit = "%" if b["unit"] == "percent" else ""
            note = str(b.get("split_or_protocol") or "")
            lines.append(f"  {mark} {b['model'].ljust(width)}  {b['benchmark']:<8} {b['value']:>7.{1 if unit else 2}f}{unit}"
                         f"  [{variant or '-'}{same}]" + (f"   {'; '.join(diffs)}" if diffs else "")
                         + (f"   ({note[:90]}{'...' if len(note) > 90 else ''})" if note else ""))
    return "\n".join(lines)
