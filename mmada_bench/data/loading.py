"""Dataset loading for task cards.

Sources, in order:

1. ``--data-dir DIR``: ``DIR/<local_dir or task>/<split>.jsonl`` or ``.parquet`` in the canonical
   schema (the card's ``dataset.required_fields``); ``--data-dir smoke`` picks the bundled subsets.
2. The Hugging Face ``datasets`` cache, offline (``dataset.hf_id`` / ``hf_config`` / ``split``).
3. The bundled smoke subset ``mmada_bench/assets/smoke/<task>/<split>.jsonl`` (about 20 items),
   labelled split ``"smoke"`` everywhere; skipped with ``require_data=True``.

A row that cannot be parsed or lacks a required field becomes an :class:`Item` with ``error`` set;
the run records it as a failed item and goes on. A required column absent from every row is a
:class:`DatasetSchemaError` naming it. Cards with ``dataset.group_by`` / ``group_size`` (MME's
question pairs) turn items of an incomplete group into error records.

Image tasks (``dataset.image_field``): relative image paths are looked up in ``image_dir`` (the
``--image-dir`` option, else ``<task data folder>/<dataset.image_dir>``); ``dataset.local_formats``
names other readable layouts of the task's data folder (:mod:`mmada_bench.data.formats`, e.g. the
original POPE question files).
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from mmada_bench.cards.schema import TaskCard
from mmada_bench.data import hf
from mmada_bench.data.formats import LOCAL_FORMATS
from mmada_bench.data.rows import read_rows

SMOKE_DIR = Path(__file__).resolve().parents[1] / "assets" / "smoke"
SMOKE_SPLIT = "smoke"


class DatasetMissing(FileNotFoundError):
    """No dataset could be found for a task; the message names the cause and the fix."""


class DatasetSchemaError(ValueError):
    """The dataset lacks a column the card needs; the message names it and the file."""


@dataclass
class Item:
    """One evaluation item; ``error`` is set for malformed rows."""
    index: int
    item_id: str
    doc: dict
    error: Optional[str] = None


@dataclass
class TaskData:
    """The items of a task plus where they came from."""
    items: list[Item]
    fewshot_pool: list[dict]
    source: str  # "local:<path>" | "hf:<id>/<config>" | "smoke:<path>"
    split: str  # the split name, or "smoke" for the bundled subset
    fingerprint: str  # sha256 of the evaluation split's content
    extra: dict = field(default_factory=dict)


def load_task_data(card: TaskCard, data_dir: Optional[str | Path] = None, require_data: bool = False,
                   image_dir: Optional[str | Path] = None) -> TaskData:
    """Load the evaluation split (and few-shot pool) of ``card``; see the module docstring."""
    data = _load(card, data_dir, require_data)
    if card.dataset.image_field:
        folder = Path(data.extra.get("folder", "."))
        data.extra["image_dir"] = _image_dir(card, data, Path(image_dir) if image_dir else folder / card.dataset.image_dir,
                                             explicit=image_dir is not None)
    _mark_incomplete_groups(card, data.items)
    return data


def _load(card: TaskCard, data_dir: Optional[str | Path], require_data: bool) -> TaskData:
    ds = card.dataset
    if data_dir is not None and str(data_dir) == SMOKE_SPLIT:
        return _load_smoke(card)
    if data_dir is not None:
        folder = Path(data_dir) / (ds.local_dir or card.name)
        found = read_split(folder, ds.split, ds.image_field) or _read_local_format(card, folder)
        if found is None:
            raise DatasetMissing(
                f"{card.name}: no {ds.split!r} split under {folder} (looked for {ds.split}.jsonl / {ds.split}.parquet, "
                f"Hugging Face shards data/{ds.split}-*.parquet, a save_to_disk folder); "
                f"pass --data-dir DIR with {ds.local_dir or card.name}/{ds.split}.jsonl"
                + (f" or cache {ds.hf_id} and omit --data-dir" if ds.hf_id else ""))
        rows, fingerprint, source = found
        return TaskData(_to_items(card, rows, ds.split, source), _local_pool(card, folder), f"local:{source}", ds.split,
                        fingerprint, {"folder": str(folder)})
    if ds.hf_id:
        loaded = _load_hf(card)
        if loaded is not None:
            return loaded
    hint = (f"pass --data-dir DIR with {ds.local_dir or card.name}/{ds.split}.jsonl"
            + (f" or cache {ds.hf_id} with `datasets`" if ds.hf_id else ""))
    if require_data:
        raise DatasetMissing(f"{card.name}: no dataset found (no --data-dir, {ds.hf_id or 'no HF id'} not in the local cache); {hint}")
    warnings.warn(f"{card.name}: no dataset found; using the bundled smoke subset (split 'smoke'); {hint}", stacklevel=3)
    return _load_smoke(card)


def _read_local_format(card: TaskCard, folder: Path):
    for name in card.dataset.local_formats:
        found = LOCAL_FORMATS[name](folder)
        if found is not None:
            return found
    return None


def _image_dir(card: TaskCard, data: TaskData, image_dir: Path, explicit: bool) -> str:
    """The folder for relative image paths; DatasetMissing when rows need it and it is absent."""
    field_name = card.dataset.image_field
    needs_files = any(isinstance(item.doc.get(field_name), str) for item in data.items[:50])
    if (explicit or needs_files) and not image_dir.is_dir():
        raise DatasetMissing(f"{card.name}: image folder {image_dir} does not exist; the items name image files "
                             f"(e.g. {next((i.doc.get(field_name) for i in data.items if i.doc.get(field_name)), '?')!r}): "
                             f"pass --image-dir DIR (e.g. COCO val2014) or put them in "
                             f"<data-dir>/{card.dataset.local_dir or card.name}/{card.dataset.image_dir}/")
    return str(image_dir)


def _mark_incomplete_groups(card: TaskCard, items: list[Item]) -> None:
    """Give every item of a group with the wrong size an error (e.g. an MME question without its pair)."""
    ds = card.dataset
    if not ds.group_by or ds.group_size is None:
        return
    groups: dict[tuple, list[Item]] = {}
    for item in items:
        if item.doc:
            groups.setdefault(tuple(str(item.doc.get(f)) for f in ds.group_by), []).append(item)
    for key, members in groups.items():
        if len(members) != ds.group_size:
            where = ", ".join(f"{f}={v!r}" for f, v in zip(ds.group_by, key))
            message = (f"item group ({where}) has {len(members)} item(s), expected {ds.group_size} "
                       f"(grouped by {', '.join(ds.group_by)}); add the missing item(s) or remove the group")
            for item in members:
                item.error = item.error or message


def read_split(folder: Path, split: str, image_field: Optional[str] = None) -> Optional[tuple[list, str, str]]:
    """``(rows, fingerprint, source)`` of split ``split`` in a task's data folder, in the first layout found:
    ``<split>.jsonl`` / ``<split>.parquet``; Hugging Face hub shards ``data/<split>-*.parquet`` or
    ``<split>-*.parquet``; a ``save_to_disk`` folder (``<split>/`` or the folder itself as a DatasetDict).
    ``None`` when there is none."""
    for suffix in (".jsonl", ".parquet"):
        path = folder / f"{split}{suffix}"
        if path.is_dir():
            raise DatasetSchemaError(f"{path} is a folder, not a {suffix} file; point --data-dir at the folder that "
                                     f"holds {split}{suffix}")
        if path.is_file():
            rows, fingerprint = read_rows(path)
            return rows, fingerprint, str(path)
    shards = sorted(folder.glob(f"data/{split}-*.parquet")) or sorted(folder.glob(f"{split}-*.parquet"))
    if shards:
        rows, digest = [], hashlib.sha256()
        for shard in shards:
            shard_rows, shard_fingerprint = read_rows(shard)
            rows.extend(shard_rows)
            digest.update(shard_fingerprint.encode())
        return rows, digest.hexdigest(), f"{folder} ({len(shards)} shards of {split})"
    for saved in (folder / split, folder):
        if saved.is_dir() and hf.is_saved_dataset(saved):
            rows, fingerprint = hf.load_saved(saved, split, image_field)
            return rows, fingerprint, f"{saved} (save_to_disk)"
    return None


def _local_pool(card: TaskCard, folder: Path) -> list[dict]:
    split = card.dataset.fewshot_split
    if not split or card.prompt.fewshot.sampler == "fixed" or card.prompt.fewshot.n == 0:
        return []
    found = read_split(folder, split)
    if found is None:
        raise DatasetMissing(f"{card.name}: few-shot split {split!r} missing under {folder}; "
                             f"add {folder.name}/{split}.jsonl (the exemplars are drawn from it)")
    rows = found[0]
    return [r for r in rows if isinstance(r, dict) and _row_error(card, r) is None]


def _load_smoke(card: TaskCard) -> TaskData:
    folder = SMOKE_DIR / (card.dataset.local_dir or card.name)
    found = read_split(folder, card.dataset.split)
    if found is None:
        raise DatasetMissing(f"{card.name}: no bundled smoke subset at {folder}; pass --data-dir DIR "
                             f"with {card.dataset.local_dir or card.name}/{card.dataset.split}.jsonl")
    rows, fingerprint, path = found
    pool = _local_pool(card, folder)
    return TaskData(_to_items(card, rows, SMOKE_SPLIT, path), pool, f"smoke:{path}", SMOKE_SPLIT, fingerprint,
                    {"folder": str(folder)})


def _row_error(card: TaskCard, row) -> Optional[str]:
    if isinstance(row, Exception):
        return str(row)
    if not isinstance(row, dict):
        return f"row is a {type(row).__name__}, not an object"
    for name in card.dataset.required_fields:
        value = row.get(name)
        if value is None:
            return f"field {name!r} is missing"
        if not isinstance(value, (str, int, float, list)):
            return f"field {name!r} is a {type(value).__name__}, expected text"
        if isinstance(value, list) and not value:
            return f"field {name!r} is an empty list"
    return None


def _check_columns(card: TaskCard, rows: list, path) -> None:
    """A required column (or the image column) absent from every row is a schema error, not N bad rows."""
    dicts = [r for r in rows if isinstance(r, dict)]
    if not dicts:
        return
    needed = list(card.dataset.required_fields) + ([card.dataset.image_field] if card.dataset.image_field else [])
    for name in needed:
        if all(name not in r for r in dicts):
            raise DatasetSchemaError(f"{card.name}: column {name!r} is missing from {path} (columns: "
                                     f"{', '.join(sorted(dicts[0]))}); the card needs {', '.join(needed)}")


def _to_items(card: TaskCard, rows: list, split: str, path) -> list[Item]:
    _check_columns(card, rows, path)
    items = []
    for index, row in enumerate(rows):
        error = _row_error(card, row)
        doc = row if isinstance(row, dict) else {}
        id_field = card.dataset.id_field
        item_id = str(doc[id_field]) if id_field and doc.get(id_field) is not None else f"{split}-{index}"
        if error:
            error = f"malformed row {index} in {path}: {error}; fix or remove the row"
        items.append(Item(index, item_id, doc, error))
    check_items(card, items, path)
    return items


def check_items(card: TaskCard, items: list[Item], source) -> None:
    """An empty split or duplicate item ids are dataset errors (a duplicate would overwrite another item's result)."""
    if not items:
        raise DatasetSchemaError(f"{card.name}: {source} holds no items; point --data-dir at the full split")
    seen: dict[str, int] = {}
    duplicates = []
    for item in items:
        if item.item_id in seen:
            duplicates.append(item.item_id)
        seen[item.item_id] = item.index
    if duplicates:
        shown = ", ".join(repr(d) for d in sorted(set(duplicates))[:5])
        raise DatasetSchemaError(f"{card.name}: duplicate item ids in {source} ({len(set(duplicates))} ids, e.g. {shown}; "
                                 f"field {card.dataset.id_field!r}); make the ids unique or drop the duplicated rows")


def _load_hf(card: TaskCard) -> Optional[TaskData]:
    """The card's ``hf_id`` from the offline Hugging Face cache (read by ``datasets``), or None when not cached."""
    ds = card.dataset
    loaded = hf.load_cached(ds.hf_id, ds.hf_config, ds.split, ds.image_field)
    if loaded is None:
        return None
    rows, fingerprint = loaded
    pool = []
    if ds.fewshot_split and card.prompt.fewshot.sampler != "fixed" and card.prompt.fewshot.n:
        pool_rows = hf.load_cached(ds.hf_id, ds.hf_config, ds.fewshot_split)
        if pool_rows is None:
            raise DatasetMissing(f"{card.name}: {ds.hf_id} is cached without its few-shot split {ds.fewshot_split!r}; "
                                 f"cache that split too or pass --data-dir")
        pool = [r for r in pool_rows[0] if isinstance(r, dict) and _row_error(card, r) is None]
    source = f"hf:{ds.hf_id}" + (f"/{ds.hf_config}" if ds.hf_config else "")
    return TaskData(_to_items(card, rows, ds.split, source), pool, source, ds.split, fingerprint)
