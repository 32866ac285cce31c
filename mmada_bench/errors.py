"""The harness's error boundary: which failures are anticipated, and how each is reported in one line.

Every anticipated failure is one ``error: <cause and fix>`` line: exit status 2 for usage errors (bad flags,
unknown names), 1 for a run that failed (bad data, checkpoint, output folder). Anything else is unanticipated:
one line plus the path of a file holding the full traceback (``--debug`` prints it instead).
"""
from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import traceback
from pathlib import Path

from mmada_bench.cards.schema import CardError
from mmada_bench.data.images import ItemImageError
from mmada_bench.data.loading import DatasetMissing, DatasetSchemaError
from mmada_bench.data.rows import RowFileError
from mmada_bench.gate import CompareError
from mmada_bench.models.loader import ModelLoadError
from mmada_bench.run.records import RunIdentityError
from mmada_bench.run.types import RunBusy
from mmada_ref.checkpoint import CheckpointError
from mmada_ref.image_processing import ImageLoadError
from mmada_ref.jsonl import JSONLError
from mmada_ref.magvit import MAGVITLoadError
from mmada_scoring.scorer_weights import ScorerWeightsMissing


class UsageError(ValueError):
    """A flag value the command cannot use; the message says which and what to pass instead."""


#: failures of a run whose message already names the cause and the fix (exit status 1)
RUN_FAILURES = (CardError, DatasetMissing, DatasetSchemaError, RowFileError, ModelLoadError, RunBusy, CheckpointError,
                MAGVITLoadError, ImageLoadError, ItemImageError, JSONLError, ScorerWeightsMissing, CompareError,
                RunIdentityError)


def report(exc: BaseException, debug: bool = False, log_dir: str | os.PathLike | None = None) -> int:
    """Print ``exc`` as one line (or its traceback with ``debug``) and return the exit status."""
    if isinstance(exc, UsageError):
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, RUN_FAILURES):
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if isinstance(exc, OSError) and exc.strerror:  # full disk, read-only or unwritable folder, missing file
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror}{where}; check the path, its permissions and the free space, then re-run "
              "(finished items are kept)", file=sys.stderr)
        return 1
    if debug:
        traceback.print_exception(exc)
        return 1
    path = _write_traceback(exc, log_dir)
    print(f"error: unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
          f"(full traceback: {path}; re-run with --debug to print it)", file=sys.stderr)
    return 1


def _write_traceback(exc: BaseException, log_dir) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    text = "".join(traceback.format_exception(exc))
    for folder in [Path(log_dir) / "logs"] if log_dir else []:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"crash-{stamp}-{os.getpid()}.txt"
            path.write_text(text)
            return str(path)
        except OSError:
            pass
    fd, path = tempfile.mkstemp(prefix=f"mmada_bench-crash-{stamp}-", suffix=".txt")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path
