"""Durable storage primitives: the per-item jsonl store of a running task, atomic writes, file locks.

``runs/<run_id>/items/<task>.jsonl`` holds one record per finished item, flushed and fsync'ed before
:meth:`ItemStore.append` returns. A SIGKILL can at worst leave a half-written last line; :class:`ItemStore`
cuts it on open. Other files are written to a temporary file and moved into place with ``os.replace``.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from mmada_ref.jsonl import encode_line, parse_lines, read_jsonl


class ItemStore:
    """Append-only, fsync'ed jsonl of finished items for one task of one run."""
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, dict] = {}
        self._repair_and_load()
        self._fh = open(self.path, "ab")

    def _repair_and_load(self) -> None:
        """Read stored records; cut a half-written last line left by a kill."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(self.path, "r+b") as fh:
                fh.truncate(end)
                fh.flush()
                os.fsync(fh.fileno())
        self.records = records_by_id(parse_lines(data[:end], str(self.path)))

    def append(self, record: dict) -> None:
        """Store one record durably (flush + fsync) before returning."""
        self._fh.write(encode_line(record))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.records[record["item_id"]] = record

    def close(self) -> None:
        self._fh.close()


def records_by_id(rows: list) -> dict[str, dict]:
    """item_id -> record of parsed store lines (the last record of an item wins; unreadable lines are skipped)."""
    return {r["item_id"]: r for r in rows if isinstance(r, dict) and "item_id" in r}


def read_store(path: str | Path) -> dict[str, dict]:
    """item_id -> record of a per-item jsonl, read-only (a half-written last line is ignored)."""
    path = Path(path)
    return records_by_id(read_jsonl(path)) if path.exists() else {}


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder + fsync + os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_table(path: str | Path, table: pa.Table) -> None:
    """Write a Parquet table atomically."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


@contextlib.contextmanager
def file_lock(path: str | Path, blocking: bool = True) -> Iterator[None]:
    """Exclusive advisory lock on ``path`` (created if needed); BlockingIOError if busy and not blocking."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
