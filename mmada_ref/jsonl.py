"""The one JSONL reader/writer of the project: data files, item stores, training corpora.

Lines are split on ``\\n`` only (never on U+2028, U+0085 or other characters ``str.splitlines`` treats as
line ends), so any text round-trips: :func:`encode_line` escapes what JSON must escape plus lone
surrogates (which UTF-8 cannot hold), and :func:`parse_lines` turns a line that is not valid UTF-8 / JSON
into a :class:`JSONLError` naming the file and line, in the row's place, so callers can keep positions.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Union

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONLError(ValueError):
    """A line of a JSONL file that cannot be read; the message names the file and the line."""

    def __init__(self, message: str, line_no: int):
        super().__init__(message)
        self.line_no = line_no


def encode_line(value: Any) -> bytes:
    """``value`` as one UTF-8 JSON line ending in ``\\n`` (lone surrogates escaped as ``\\udxxx``)."""
    text = json.dumps(value, ensure_ascii=False)
    text = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text.encode("utf-8") + b"\n"


def parse_lines(data: bytes, source: str = "") -> list[Union[Any, JSONLError]]:
    """Every non-blank line of ``data`` parsed as JSON; a bad line becomes a :class:`JSONLError` in its place."""
    rows: list = []
    where = f"{source} " if source else ""
    for line_no, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            rows.append(json.loads(raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            rows.append(JSONLError(f"{where}line {line_no} is not valid UTF-8 ({exc.reason} at byte {exc.start})",
                                   line_no))
        except json.JSONDecodeError as exc:
            rows.append(JSONLError(f"{where}line {line_no} is not valid JSON ({exc.msg})", line_no))
    return rows


def read_jsonl(path: str | Path) -> list[Union[Any, JSONLError]]:
    """:func:`parse_lines` of a file, errors naming the file."""
    path = Path(path)
    return parse_lines(path.read_bytes(), str(path))
