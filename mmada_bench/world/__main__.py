"""``python -m mmada_bench.world ...`` (see :mod:`mmada_bench.world.cli`)."""
import sys

from .cli import main

sys.exit(main(sys.argv[1:]))
