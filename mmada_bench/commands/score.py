"""``score``: score a stored run from its items, without the model (e.g. after ``run --predict-only``)."""
from __future__ import annotations

import sys
import warnings

from mmada_bench.commands.run import _scorer_options, add_t2i_arguments, format_summary
from mmada_bench.errors import UsageError
from mmada_bench.run.rescoring import RescoreError, score_run

HELP = "score a stored run from its items without the model (a --predict-only run, or again after a scorer fix)"
DESCRIPTION = """\
Score every task of a stored run from runs/<run_id>/items/ (and the images of text-to-image tasks),
without loading the model: filters, per-item and set metrics, the item tables and the leaderboard rows,
exactly as `run` computes them when a task finishes. Use it after `run --predict-only` (generate on the
GPU machine, score anywhere), or to score a run again after a scorer's fix or with scorer weights it
lacked. Each task is planned again from the run's manifest and must match what the run recorded (card
hash, dataset fingerprint, variant, prompt flags, the prompt hash of every stored item); a task that
differs, or whose items are not all stored yet, is reported and not scored."""
EPILOG = """\
examples:
  python -m mmada_bench run --tasks gsm8k,pope --model /ckpt/MMaDA-8B-MixCoT --device cuda --predict-only
  python -m mmada_bench score latest
  python -m mmada_bench score MMaDA-8B-MixCoT-0123456789ab --output-dir out/ --data-dir ../shared/data
  python -m mmada_bench score RUN --clip-checkpoint ViT-L-14.pt --imagereward-dir /weights/ImageReward
"""


def add_arguments(parser) -> None:
    parser.add_argument("run", help="run id (runs/<run_id>/ under --output-dir) or 'latest' (the last updated run)")
    parser.add_argument("--output-dir", default="leaderboards", help="the results folder (default: leaderboards/)")
    parser.add_argument("--data-dir", default=None,
                        help="where the task data is now, if it moved (default: the run's); it must be the same data")
    parser.add_argument("--image-dir", default=None, help="folder of the image files items refer to (default: the run's)")
    parser.add_argument("--device", default=None, help="device of model-based scorers (CLIP, ImageReward; default: the run's)")
    add_t2i_arguments(parser)


def main(args) -> int:
    warnings.formatwarning = lambda message, *a, **k: f"warning: {message}\n"
    overrides = {"data_dir": args.data_dir, "image_dir": args.image_dir, "prompts": args.prompts,
                 "device": args.device, "scorers": _scorer_options(args)}
    try:
        outcome = score_run(args.output_dir, args.run, overrides)
    except RescoreError as exc:
        raise UsageError(str(exc)) from None
    for message in outcome.task_errors.values():
        print(f"error: {message}", file=sys.stderr)
    if outcome.rows:
        print(format_summary(outcome, activity=f"scored {outcome.resumed} stored items (nothing generated)"))
    elif not outcome.task_errors:
        print(f"error: run {outcome.run_id} has no tasks to score", file=sys.stderr)
        return 1
    return 1 if outcome.task_errors else 0
