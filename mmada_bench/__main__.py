"""``python -m mmada_bench``: the command line (see :mod:`mmada_bench.cli`)."""
import sys

from mmada_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
