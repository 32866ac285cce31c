"""Durable storage primitives: the per-item jsonl store of a running task, atomic writes, file locks.

``runs/<run_id>/items/<task>.jsonl`` holds one record per finished item, flushed and fsync'ed before
:meth:`ItemStore.append` returns. A SIGKILL can at worst leave a half-written last line; :class:`ItemStore`
cuts it on open. A complete line that is not a record (not UTF-8 / JSON, not an object, no string
``item_id``) is moved aside: appended, raw bytes kept, to ``<task>.jsonl.quarantine`` beside the store, with a
warning naming the file and line, and the store is rewritten atomically without it (its item is then simply
missing, so the runner generates it again). Appends and repairs hold an ``flock`` on the store file, so
concurrent writers never interleave or lose lines. Other files are written to a temporary file and moved into
place with ``os.replace``.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from mmada_ref.jsonl import JSONLError, encode_line, parse_lines, read_jsonl

QUARANTINE_SUFFIX = ".quarantine"


def quarantine_path(store_path: str | Path) -> Path:
    """``<task>.jsonl.quarantine`` beside a store: where its unreadable lines are moved."""
    store_path = Path(store_path)
    return store_path.with_name(store_path.name + QUARANTINE_SUFFIX)


def bad_record_reason(row) -> str | None:
    """Why a parsed store line is not an item record (None when it is one)."""
    if isinstance(row, JSONLError):
        return str(row)
    if not isinstance(row, dict):
        return f"is JSON {type(row).__name__}, not an object"
    if "item_id" not in row:
        return "is an object without item_id"
    if not isinstance(row["item_id"], str):
        return f"has a non-string item_id ({type(row['item_id']).__name__})"
    return None


def split_store_lines(data: bytes, source: str = "") -> tuple[list[tuple[bytes, dict]], list[tuple[int, bytes, str]]]:
    """Complete lines of ``data`` as (raw, record) pairs and bad lines as (line number, raw, reason)."""
    numbered = [(no, raw) for no, raw in enumerate(data.split(b"\n"), start=1) if raw.strip()]
    parsed = parse_lines(data, source)
    assert len(parsed) == len(numbered), "parse_lines skips exactly the blank lines"
    good, bad = [], []
    for (no, raw), row in zip(numbered, parsed):
        reason = bad_record_reason(row)
        if reason is None:
            good.append((raw, row))
        elif isinstance(row, JSONLError):
            bad.append((no, raw, reason))
        else:
            bad.append((no, raw, f"{source} line {no} {reason}"))
    return good, bad


def _same_file(fh, path: Path) -> bool:
    """Whether the open ``fh`` is still the file at ``path`` (a repair replaces it)."""
    try:
        here, there = os.fstat(fh.fileno()), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _open_locked(path: Path):
    """``path`` opened r+b under an exclusive flock, or None if it does not exist; retries while another
    process replaces the file between the open and the lock (the lock must be on the current file)."""
    while True:
        try:
            fh = open(path, "r+b")
        except FileNotFoundError:
            return None
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        if _same_file(fh, path):
            return fh
        fh.close()


class ItemStore:
    """Append-only, fsync'ed jsonl of finished items for one task of one run."""
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, dict] = {}
        self._repair_and_load()
        self._fh = open(self.path, "ab")

    def _repair_and_load(self) -> None:
        """Read stored records under the store's lock; cut a half-written last line left by a kill and move
        unreadable lines to the quarantine file."""
        fh = _open_locked(self.path)
        if fh is None:
            return
        with fh:  # the lock is released on close, after any replace
            data = fh.read()
            end = data.rfind(b"\n") + 1
            if end < len(data):
                fh.truncate(end)
                fh.flush()
                os.fsync(fh.fileno())
            good, bad = split_store_lines(data[:end], str(self.path))
            if bad:
                try:
                    self._quarantine(bad, [raw for raw, _ in good])
                except OSError as exc:  # e.g. a read-only folder: skip the lines, keep going
                    warnings.warn(f"{self.path}: {len(bad)} unreadable line(s) skipped, could not move them aside "
                                  f"({exc}): {bad[0][2]}", stacklevel=3)
        self.records = {r["item_id"]: r for _, r in good}

    def _quarantine(self, bad: list[tuple[int, bytes, str]], good_lines: list[bytes]) -> None:
        """Append ``bad`` lines to the quarantine file (durably), then rewrite the store without them."""
        target = quarantine_path(self.path)
        with open(target, "ab") as out:
            out.write(b"".join(raw + b"\n" for _, raw, _ in bad))
            out.flush()
            os.fsync(out.fileno())
        atomic_write_bytes(self.path, b"".join(raw + b"\n" for raw in good_lines))
        shown = "; ".join(reason for _, _, reason in bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        warnings.warn(f"{self.path}: {len(bad)} unreadable line(s) moved to {target} (their items will be generated "
                      f"again): {shown}", stacklevel=4)

    def append(self, record: dict) -> None:
        """Store one record durably (flush + fsync) before returning, under the store's lock."""
        line = encode_line(record)
        while True:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
            if _same_file(self._fh, self.path):
                break
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)  # replaced by a repair: append to the new file
            self._fh.close()
            self._fh = open(self.path, "ab")
        try:
            self._fh.write(line)
            self._fh.flush()
            os.fsync(self._fh.fileno())
        finally:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        self.records[record["item_id"]] = record

    def close(self) -> None:
        self._fh.close()


def records_by_id(rows: list) -> dict[str, dict]:
    """item_id -> record of parsed store lines (the last record of an item wins; unreadable lines are skipped)."""
    return {r["item_id"]: r for r in rows if bad_record_reason(r) is None}


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
