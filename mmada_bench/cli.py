"""``python -m mmada_bench``: evaluate checkpoints on benchmark tasks and compare the results.

Subcommands are listed in :data:`COMMANDS` (name -> module). A command module defines ``HELP``
(one line), ``DESCRIPTION``, ``EPILOG`` (examples), ``add_arguments(parser)`` and
``main(args) -> int``; adding a command is one module plus one line here.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import yaml

from mmada_bench.errors import UsageError, report

COMMANDS: dict[str, str] = {
    "run": "mmada_bench.commands.run",
    "score": "mmada_bench.commands.score",
    "list-tasks": "mmada_bench.commands.list_tasks",
    "show": "mmada_bench.commands.show",
    "compare": "mmada_bench.commands.compare",
    "profile": "mmada_bench.commands.profile",
    "lm-eval": "mmada_bench.commands.lm_eval",
    "rebuild": "mmada_bench.commands.rebuild",
    "export": "mmada_bench.commands.export",
    "report": "mmada_bench.commands.report",
    "world": "mmada_bench.commands.world",
}

EPILOG = """\
examples:
  python -m mmada_bench list-tasks
  python -m mmada_bench run --tasks gsm8k --limit 20                  # packaged demo model + data
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
    parser.add_argument("--debug", action="store_true", help="print the full traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.commands = {}
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.DESCRIPTION, epilog=module.EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter, **getattr(module, "PARSER_KWARGS", {}))
        if not getattr(module, "PARSER_KWARGS", {}).get("add_help") is False:
            cmd.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="print the full traceback of an unexpected error")
            cmd.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE.yaml",
                             help="a YAML mapping of this command's flags (flag names with - or _); the command line wins")
        module.add_arguments(cmd)
        cmd.set_defaults(_main=module.main)
        parser.commands[name] = cmd
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        apply_config_file(parser, argv)
    except UsageError as exc:
        return report(exc)
    args = parser.parse_args(argv)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    try:
        return int(args._main(args) or 0)
    except KeyboardInterrupt:
        print("interrupted: finished items are stored; re-run the same command to continue", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one error boundary of the command line
        return report(exc, debug=args.debug, log_dir=getattr(args, "output_dir", None))


def apply_config_file(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """``COMMAND --config FILE.yaml``: the file's keys become the command's defaults, so flags given on the command
    line still win; unknown keys and unreadable files are usage errors."""
    command = next((a for a in argv if a in parser.commands), None)
    if command is None or ("--config" not in argv and not any(a.startswith("--config=") for a in argv)):
        return
    value = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    if value is None:
        index = argv.index("--config")
        if index + 1 >= len(argv):
            raise UsageError("--config needs a FILE.yaml")
        value = argv[index + 1]
    try:
        data = yaml.safe_load(Path(value).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"--config {value}: cannot read it as YAML ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {value}: expected a mapping of flag names to values")
    sub = parser.commands[command]
    actions = {a.dest: a for a in sub._actions if a.dest not in ("help", "config")}
    defaults = {}
    for key, item in data.items():
        dest = str(key).lstrip("-").replace("-", "_")
        if dest not in actions:
            raise UsageError(f"--config {value}: {key!r} is not a flag of {command} (see {command} --help)")
        if isinstance(item, list):
            item = ",".join(map(str, item))
        defaults[dest] = item
        actions[dest].required = False
    sub.set_defaults(**defaults)


if __name__ == "__main__":
    sys.exit(main())
