"""The one row reader of the harness: a ``.jsonl`` / ``.parquet`` (/ ``.txt``) file -> rows + its sha256.

A JSONL line that cannot be read becomes a :class:`~mmada_ref.jsonl.JSONLError` in its row's place (the
task records it as a malformed item); a file that cannot be read at all raises :class:`RowFileError`
naming the file and the cause.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

import pyarrow as pa
import pyarrow.parquet as pq

from mmada_ref.jsonl import parse_lines

#: file suffixes :func:`read_rows` understands (``.txt`` only where a text field is named)
ROW_SUFFIXES = (".jsonl", ".parquet", ".txt")


class RowFileError(ValueError):
    """A data file cannot be read as its format; the message names the file and the cause."""


def read_rows(path: str | Path, txt_field: Optional[str] = None) -> tuple[list, str]:
    """``(rows, sha256 of the file's bytes)``; ``.txt`` files give one ``{txt_field: line}`` row per non-blank line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RowFileError(f"cannot read {path} ({type(exc).__name__}: {exc.strerror or exc})") from None
    fingerprint = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return parse_lines(data), fingerprint
    if suffix == ".parquet":
        try:
            return pq.read_table(pa.BufferReader(data)).to_pylist(), fingerprint
        except (pa.ArrowException, OSError) as exc:
            raise RowFileError(f"{path} is not a readable Parquet file ({exc}); re-export or re-download it") from None
    if suffix == ".txt" and txt_field:
        return _txt_rows(data, txt_field), fingerprint
    raise RowFileError(f"{path}: unsupported file type {suffix!r} (use .jsonl or .parquet)")


def _txt_rows(data: bytes, field: str) -> list:
    rows: list = []
    for line_no, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as exc:
            rows.append(ValueError(f"line {line_no} is not valid UTF-8 ({exc.reason} at byte {exc.start})"))
            continue
        if text.strip():
            rows.append({field: text.strip()})
    return rows
