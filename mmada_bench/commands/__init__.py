"""Subcommands of ``python -m mmada_bench``; each module has HELP, DESCRIPTION, EPILOG,
``add_arguments(parser)`` and ``main(args) -> int``, and is listed in ``mmada_bench.cli.COMMANDS``."""
