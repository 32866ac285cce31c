"""``lm-eval``: run lm-evaluation-harness with the ``mmada`` model registered (lm-eval's own arguments)."""
from __future__ import annotations

import argparse
import sys

HELP = "run lm-evaluation-harness with --model mmada available (all arguments go to lm-eval)"
DESCRIPTION = """\
lm-evaluation-harness (0.4) has no model plugin discovery: this command imports the MMaDA adapter
(mmada_bench/lm_eval_bridge.py, registered as "mmada") and then hands every argument to lm-eval's
own command line. --model_args of mmada: pretrained=DIR (MMaDA or LLaDA folder; default: the
packaged demo checkpoint), preset=NAME, gen_length=N, mc_num=N, mc_batch_size=N, seed=S, dtype=D.
Run `python -m mmada_bench lm-eval --help` for lm-eval's options."""
EPILOG = """\
examples:
  python -m mmada_bench lm-eval --model mmada --model_args pretrained=/ckpt/MMaDA-8B-MixCoT,preset=gsm8k-paper \\
      --tasks gsm8k --device cuda --batch_size 4
  python -m mmada_bench lm-eval --model mmada --model_args pretrained=/ckpt/LLaDA-8B-Base,mc_num=128 \\
      --tasks arc_easy,hellaswag
  python -m mmada_bench lm-eval --model mmada --include_path my_tasks/ --tasks my_task --limit 10
"""
# "--model ..." must reach lm-eval untouched: this subcommand's own parser has no "-" options
PARSER_KWARGS = {"prefix_chars": "+", "add_help": False}


def add_arguments(parser) -> None:
    parser.add_argument("lm_eval_args", nargs=argparse.REMAINDER, help="arguments of lm-eval's `run`")


def main(args) -> int:
    from lm_eval.__main__ import (
        cli_evaluate,  # lm-eval is heavy: loaded only by the bridge
    )

    import mmada_bench.integrations.lm_eval  # noqa: F401  - registers --model mmada

    argv = list(args.lm_eval_args)
    if argv and argv[0] not in ("run", "ls", "validate") and not argv[0].startswith("-h"):
        argv = ["run", *argv]
    saved = sys.argv
    sys.argv = ["lm-eval", *argv]
    try:
        cli_evaluate()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    finally:
        sys.argv = saved
    return 0
