"""``world``: the shapes world (generate it, train and package the world model; ``mmada_bench.world.cli``)."""
from __future__ import annotations

import argparse

HELP = "the synthetic shapes world: generate it, build (train + package) the world model, score t2i with its oracle"
DESCRIPTION = """\
Every argument goes to the world command line (python -m mmada_bench world --help lists its commands):
build, generate, tokenizer, magvit, init-model, score-t2i, oracle."""
EPILOG = """\
examples:
  python -m mmada_bench world build --out runs/world                 # everything from nothing (~90 min, 2 CPU cores)
  python -m mmada_bench world build --out runs/world_mini --scale mini # the CI miniature (minutes)
  python -m mmada_bench world generate --out world --n 200
"""
PARSER_KWARGS = {"prefix_chars": "+", "add_help": False}  # "--out ..." reaches the world parser untouched


def add_arguments(parser) -> None:
    parser.add_argument("world_args", nargs=argparse.REMAINDER, help="arguments of the world command line")


def main(args) -> int:
    from mmada_bench.world.cli import main as world_main

    return world_main(list(args.world_args) or ["--help"])
