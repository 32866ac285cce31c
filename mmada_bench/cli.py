"""``python -m mmada_bench``: evaluate checkpoints on benchmark tasks and compare the results.

Subcommands are listed in :data:`COMMANDS` (name -> module). A command module defines ``HELP``
(one line), ``DESCRIPTION``, ``EPILOG`` (examples), ``add_arguments(parser)`` and
``main(args) -> int``; adding a command is one module plus one line here.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, str] = {
    "run": "mmada_bench.commands.run",
    "list-tasks": "mmada_bench.commands.list_tasks",
    "show": "mmada_bench.commands.show",
    "compare": "mmada_bench.commands.compare",
    "profile": "mmada_bench.commands.profile",
    "lm-eval": "mmada_bench.commands.lm_eval",
    "export": "mmada_bench.commands.export",
    "report": "mmada_bench.commands.report",
}

EPILOG = """\
examples:
  python -m mmada_bench list-tasks
  python -m mmada_bench run --tasks gsm8k --limit 20                  # packaged smoke model + data
  python -m mmada_bench run --tasks gsm8k,math500 --model /ckpt/MMaDA-8B-MixCoT \\
      --data-dir ../shared/data --device cuda --dtype bfloat16 --batch-size 8
  python -m mmada_bench run --tasks gsm8k --model dummy --variant mmada-chat --limit 5
  python -m mmada_bench show                                          # latest run beside the paper baselines

Results go to leaderboards/ (or --output-dir): leaderboard.parquet (one row per run x task x
metric), items/<run_id>/<task>.parquet (every prediction), runs/<run_id>/ (resumable progress).
Run `python -m mmada_bench COMMAND --help` for the options of a command; docs/harness.md explains
task cards and the Parquet schemas.
"""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="python -m mmada_bench",
        description="Evaluate unified multimodal diffusion models (MMaDA) with the papers' protocols; "
                    "every item is stored, runs resume after interruption, results land in Parquet.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION, epilog=module.EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter, **getattr(module, "PARSER_KWARGS", {}))
        module.add_arguments(cmd)
        cmd.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    try:
        return int(args._main(args) or 0)
    except KeyboardInterrupt:
        print("interrupted: finished items are stored; re-run the same command to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
