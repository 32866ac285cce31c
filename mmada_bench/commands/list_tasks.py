"""``list-tasks``: the task cards found, with version, variants, preset and dataset."""
from __future__ import annotations

from mmada_bench.cards.discovery import task_cards
from mmada_bench.cards.schema import CardError, load_card

HELP = "list the available tasks (task cards) with their versions and variants"
DESCRIPTION = "List every task card found in $MMADA_TASKS_DIR and the packaged cards, with its metrics (a metric name that one card computes, e.g. clip_score, is accepted by run --tasks)."
EPILOG = """\
examples:
  python -m mmada_bench list-tasks
  MMADA_TASKS_DIR=./my_tasks python -m mmada_bench list-tasks      # add your own cards
"""


def add_arguments(parser) -> None:
    parser.add_argument("--verbose", "-v", action="store_true", help="also print each card's path and protocol")


def main(args) -> int:
    status = 0
    rows = [("task", "version", "variants (default first)", "preset", "metrics", "dataset")]
    for name, path in sorted(task_cards().items()):
        try:
            card = load_card(path)
        except CardError as exc:
            print(f"error: {exc}")
            status = 1
            continue
        variants = [card.default_variant] + [v for v in card.variants if v != card.default_variant]
        dataset = f"{card.dataset.hf_id or card.dataset.local_dir} [{card.dataset.split}]"
        rows.append((name, card.version, ", ".join(variants), card.preset, ", ".join(card.metric_names), dataset))
        if args.verbose:
            rows.append(("", str(path), card.protocol.description, "", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return status
