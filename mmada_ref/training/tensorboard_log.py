"""Optional TensorBoard scalars of a training run (``train.tensorboard: true`` or ``--tensorboard``).

Every record the trainer appends to ``metrics.jsonl`` is also written to ``OUTPUT_DIR/tensorboard/`` as scalars
``train/<key>`` at the record's step (``tensorboard --logdir OUTPUT_DIR/tensorboard``). Needs the ``tensorboard``
package (``pip install "mmada-bench[tensorboard]"``); nothing else in training does.
"""
from __future__ import annotations

from pathlib import Path

TENSORBOARD_DIR = "tensorboard"
TENSORBOARD_MISSING = 'train.tensorboard needs the tensorboard package: pip install "mmada-bench[tensorboard]"'


class TensorBoardMissing(ImportError):
    """``train.tensorboard`` is on but the tensorboard package is not installed."""


def summary_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``; :class:`TensorBoardMissing` without the tensorboard package."""
    try:
        from torch.utils.tensorboard import (
            SummaryWriter,  # optional extra: imported only with train.tensorboard
        )
    except ImportError:
        raise TensorBoardMissing(TENSORBOARD_MISSING) from None
    return SummaryWriter


class TensorBoardLog:
    """Scalars of the logged training records under ``output_dir/tensorboard/`` (opened on the first record)."""

    def __init__(self, output_dir: str | Path):
        self.folder = Path(output_dir) / TENSORBOARD_DIR
        self._writer_class = summary_writer_class()
        self._writer = None

    def add(self, record: dict) -> None:
        """Write every numeric field of ``record`` but ``step`` as ``train/<key>`` at ``record["step"]``."""
        if self._writer is None:
            self._writer = self._writer_class(log_dir=str(self.folder))
        step = int(record["step"])
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(f"train/{key}", float(value), step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
