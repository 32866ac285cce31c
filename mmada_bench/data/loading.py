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
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from mmada_bench.cards.schema import TaskCard
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
        path = _find_split_file(folder, ds.split)
        other = _read_local_format(card, folder) if path is None else None
        if other is not None:
            rows, fingerprint, source = other
            return TaskData(_to_items(card, rows, ds.split, source), [], f"local:{source}", ds.split, fingerprint,
                            {"folder": str(folder)})
        if path is None:
            raise DatasetMissing(
                f"{card.name}: no {ds.split!r} split under {folder} (looked for {ds.split}.jsonl / {ds.split}.parquet); "
                f"pass --data-dir DIR with {ds.local_dir or card.name}/{ds.split}.jsonl"
                + (f" or cache {ds.hf_id} and omit --data-dir" if ds.hf_id else ""))
        pool = _local_pool(card, folder)
        rows, fingerprint = read_rows(path)
        return TaskData(_to_items(card, rows, ds.split, path), pool, f"local:{path}", ds.split, fingerprint,
                        {"folder": str(folder)})
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


def _find_split_file(folder: Path, split: str) -> Optional[Path]:
    for suffix in (".jsonl", ".parquet"):
        if (folder / f"{split}{suffix}").exists():
            return folder / f"{split}{suffix}"
    return None


def _local_pool(card: TaskCard, folder: Path) -> list[dict]:
    split = card.dataset.fewshot_split
    if not split or card.prompt.fewshot.sampler == "fixed" or card.prompt.fewshot.n == 0:
        return []
    path = _find_split_file(folder, split)
    if path is None:
        raise DatasetMissing(f"{card.name}: few-shot split {split!r} missing under {folder}; "
                             f"add {folder.name}/{split}.jsonl (the exemplars are drawn from it)")
    rows, _ = read_rows(path)
    return [r for r in rows if isinstance(r, dict) and _row_error(card, r) is None]


def _load_smoke(card: TaskCard) -> TaskData:
    folder = SMOKE_DIR / (card.dataset.local_dir or card.name)
    path = _find_split_file(folder, card.dataset.split)
    if path is None:
        raise DatasetMissing(f"{card.name}: no bundled smoke subset at {folder}; pass --data-dir DIR "
                             f"with {card.dataset.local_dir or card.name}/{card.dataset.split}.jsonl")
    rows, fingerprint = read_rows(path)
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


def hf_cached(hf_id: str) -> bool:
    """Cheap check that the HF caches may hold ``hf_id`` (avoids importing `datasets` for nothing)."""
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE", home / "datasets"))
    hub_cache = Path(os.environ.get("HF_HUB_CACHE", home / "hub"))
    return ((datasets_cache / hf_id.replace("/", "___")).exists()
            or (hub_cache / f"datasets--{hf_id.replace('/', '--')}").exists())


def _load_hf(card: TaskCard) -> Optional[TaskData]:
    ds = card.dataset
    if not hf_cached(ds.hf_id):
        return None
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import datasets  # datasets is slow to import: loaded only for the HF cache

        split = datasets.load_dataset(ds.hf_id, ds.hf_config, split=ds.split)
        if ds.image_field and ds.image_field in split.column_names:
            # keep the encoded bytes ({bytes, path}); images are decoded one at a time when generating
            split = split.cast_column(ds.image_field, datasets.Image(decode=False))
        pool = []
        if ds.fewshot_split and card.prompt.fewshot.sampler != "fixed" and card.prompt.fewshot.n:
            pool = list(datasets.load_dataset(ds.hf_id, ds.hf_config, split=ds.fewshot_split))
    except Exception as exc:  # noqa: BLE001 - any cache/offline failure means "not at hand"
        warnings.warn(f"{card.name}: could not load {ds.hf_id} from the local cache ({type(exc).__name__}: {exc})", stacklevel=3)
        return None
    rows = list(split)
    if ds.image_field:
        fingerprint = getattr(split, "_fingerprint", None) or hashlib.sha256(repr(rows).encode()).hexdigest()
        source = f"hf:{ds.hf_id}" + (f"/{ds.hf_config}" if ds.hf_config else "")
        return TaskData(_to_items(card, rows, ds.split, source), pool, source, ds.split, fingerprint)
    fingerprint = getattr(split, "_fingerprint", None) or hashlib.sha256(
        json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()
    source = f"hf:{ds.hf_id}" + (f"/{ds.hf_config}" if ds.hf_config else "")
    return TaskData(_to_items(card, rows, ds.split, source), pool, source, ds.split, fingerprint)
