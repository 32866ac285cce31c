"""Prompt sets of the text-to-image tasks: txt / jsonl / parquet files, Hugging Face datasets, the packaged set.

Sources, in order (the first one given wins):

1. ``--prompts SOURCE``: a ``.txt`` file (one prompt per line, blank lines skipped), a ``.jsonl`` or
   ``.parquet`` file (a ``prompt`` column; ``Prompt`` / ``text`` / ``caption`` are accepted too, an ``id``
   column is used as the item id), or a Hugging Face dataset id ``ORG/NAME[:SPLIT]`` from the offline cache;
2. ``--data-dir DIR``: ``DIR/<local_dir or task>/<split>.jsonl|parquet|txt`` (``--data-dir smoke``: the
   packaged set; ``--data-dir world``: the bundled shapes-world prompts ``assets/world/t2i/world.jsonl``, split
   ``world``, which the world oracle scores);
3. the card's ``dataset.hf_id`` if it is in the offline cache;
4. the packaged set ``mmada_bench/assets/prompts/<split>.jsonl``, checked against ``<split>.sha256``.

A row that cannot be read (bad JSON, bytes that are not UTF-8, no prompt field, a prompt that is not text)
becomes an item with ``error`` set; the run records it and goes on. Empty prompts are flagged when the
task is planned. A file that cannot be read at all is a :class:`~mmada_bench.data.loading.DatasetMissing` naming it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

from mmada_bench.cards.schema import TaskCard
from mmada_bench.data import hf
from mmada_bench.data.loading import (
    WORLD_DIR,
    WORLD_SPLIT,
    DatasetMissing,
    DatasetSchemaError,
    Item,
    TaskData,
    check_items,
)
from mmada_bench.data.rows import ROW_SUFFIXES, RowFileError, read_rows

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "assets" / "prompts"
PROMPT_ALIASES = ("prompt", "Prompt", "text", "caption")
SUFFIXES = (".jsonl", ".parquet", ".txt")


def load_prompt_set(card: TaskCard, prompts: Optional[str] = None, data_dir: Optional[str] = None) -> TaskData:
    """The prompt items of ``card`` from the first available source (see the module docstring)."""
    ds = card.dataset
    if prompts:
        path = Path(prompts).expanduser()
        if path.is_file():
            return read_prompt_file(card, path, split=path.stem)
        if path.is_dir():
            raise DatasetMissing(f"--prompts {prompts}: is a folder; pass a .txt, .jsonl or .parquet file")
        hf_id, _, split = prompts.partition(":")
        loaded = _load_hf(card, hf_id, split or ds.split) if "/" in hf_id and not path.suffix else None
        if loaded is None:
            raise DatasetMissing(f"--prompts {prompts}: no such file, and not a dataset id in the offline Hugging Face "
                                 "cache; pass a .txt/.jsonl/.parquet file or a cached ORG/NAME[:SPLIT]")
        return loaded
    if data_dir is not None and str(data_dir) == WORLD_SPLIT:
        return read_prompt_file(card, WORLD_DIR / (ds.local_dir or card.name) / f"{WORLD_SPLIT}.jsonl", split=WORLD_SPLIT,
                                source_kind="world")
    if data_dir is not None and str(data_dir) != "smoke":
        folder = Path(data_dir) / (ds.local_dir or card.name)
        for suffix in SUFFIXES:
            if (folder / f"{ds.split}{suffix}").is_file():
                return read_prompt_file(card, folder / f"{ds.split}{suffix}", split=ds.split)
        raise DatasetMissing(f"{card.name}: no prompt file {ds.split}.jsonl|parquet|txt under {folder}; "
                             "pass --data-dir DIR with that file, or --prompts FILE")
    if data_dir is None and ds.hf_id:
        loaded = _load_hf(card, ds.hf_id, ds.split)
        if loaded is not None:
            return loaded
    return load_packaged(card)


def load_packaged(card: TaskCard) -> TaskData:
    """The packaged prompt set ``assets/prompts/<split>.jsonl`` after checking its recorded sha256."""
    path = PROMPTS_DIR / f"{card.dataset.split}.jsonl"
    if not path.is_file():
        raise DatasetMissing(f"{card.name}: no packaged prompt set {path}; pass --prompts FILE or --data-dir DIR")
    recorded_file = path.with_suffix(".sha256")
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    recorded = recorded_file.read_text().split()[0] if recorded_file.is_file() else None
    if recorded != actual:
        raise ValueError(f"{card.name}: packaged prompt set {path} has sha256 {actual[:12]}..., but {recorded_file.name} "
                         f"records {recorded or 'nothing'}; if the prompts were changed on purpose, update "
                         f"{recorded_file.name} (sha256sum {path.name}) and bump the card's version")
    return read_prompt_file(card, path, split=card.dataset.split, source_kind="packaged")


def read_prompt_file(card: TaskCard, path: Path, split: str, source_kind: str = "local") -> TaskData:
    """Items of one prompt file (.txt, .jsonl, .parquet); unreadable rows become error items."""
    if path.suffix.lower() not in ROW_SUFFIXES:
        raise DatasetMissing(f"{card.name}: prompt file {path} has suffix {path.suffix!r}; use .txt, .jsonl or .parquet")
    try:
        rows, fingerprint = read_rows(path, txt_field="prompt")
    except RowFileError as exc:
        raise DatasetMissing(f"{card.name}: cannot read prompt file: {exc}; pass another --prompts file") from None
    return TaskData(_to_items(card, rows, split, path), [], f"{source_kind}:{path}", split, fingerprint)


def prompt_field(card: TaskCard) -> str:
    """The card's prompt column (first required field, default ``prompt``)."""
    return card.dataset.required_fields[0] if card.dataset.required_fields else "prompt"


def _prompt_of(row: dict, field: str) -> tuple[Optional[str], Optional[str]]:
    """``(prompt, error)`` of one row: the card's field or one of :data:`PROMPT_ALIASES`."""
    for name in (field, *PROMPT_ALIASES):
        if name in row:
            value = row[name]
            if value is None:
                return "", None  # reported as an empty prompt when planned
            if not isinstance(value, str):
                return None, f"field {name!r} is a {type(value).__name__}, expected text"
            return value, None
    return None, f"no prompt field ({', '.join(dict.fromkeys((field, *PROMPT_ALIASES)))})"


def _to_items(card: TaskCard, rows: list, split: str, where) -> list[Item]:
    field = prompt_field(card)
    dicts = [r for r in rows if isinstance(r, dict)]
    names = (field, *PROMPT_ALIASES)
    if dicts and not any(name in r for r in dicts for name in names):
        raise DatasetSchemaError(f"{card.name}: no prompt column in {where} (columns: {', '.join(sorted(dicts[0]))}); "
                                 f"name it {field!r} (or {', '.join(PROMPT_ALIASES[1:])})")
    items = []
    id_field = card.dataset.id_field or "id"
    for index, row in enumerate(rows):
        doc = row if isinstance(row, dict) else {}
        item_id = str(doc[id_field]) if doc.get(id_field) is not None else f"{split}-{index}"
        if isinstance(row, Exception):
            error = str(row)
        elif not isinstance(row, dict):
            error = f"row is a {type(row).__name__}, not an object"
        else:
            prompt, error = _prompt_of(row, field)
            if error is None:
                doc = {**row, "prompt": prompt}
        if error:
            error = f"malformed row {index} in {where}: {error}; fix or remove the row"
        items.append(Item(index, item_id, doc, error))
    check_items(card, items, where)  # image files and resume are keyed by item id
    return items


def _load_hf(card: TaskCard, hf_id: str, split: str) -> Optional[TaskData]:
    """A prompt set from the offline Hugging Face cache (read by ``datasets``), or None when it is not cached."""
    loaded = hf.load_cached(hf_id, card.dataset.hf_config if hf_id == card.dataset.hf_id else None, split)
    if loaded is None:
        return None
    rows, fingerprint = loaded
    return TaskData(_to_items(card, rows, split, f"hf:{hf_id}"), [], f"hf:{hf_id}", split, fingerprint)
