"""Hugging Face ``datasets`` layouts, read through ``datasets`` itself (never by guessing cache folder names).

* :func:`load_cached`: a dataset id from the offline cache (``HF_DATASETS_OFFLINE=1``); ``None`` when it is not
  there, so the caller can fall back;
* :func:`load_saved`: a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``.

Image columns keep their encoded bytes (``{bytes, path}``); images are decoded one at a time when generating.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Optional

# what `datasets` raises for "this id / config / split is not in the offline cache"
_NOT_CACHED = ("couldn't find", "could not find", "offline", "doesn't exist", "does not exist", "not found",
               "unknown split", "bad split", "connection", "couldn't reach", "localentrynotfound")


def is_saved_dataset(folder: Path) -> bool:
    """True for a ``save_to_disk`` folder (a Dataset: ``state.json``; a DatasetDict: ``dataset_dict.json``)."""
    return (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()


def _offline_datasets():
    """``datasets`` with every Hub lookup offline. ``huggingface_hub`` and ``datasets`` read the offline variables
    once, at import, and another library (transformers) may have imported them first, so the module constants are
    set too: without them a cache miss waits on the Hub with retries instead of failing at once."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets  # datasets is slow to import: loaded only when a dataset id is looked up
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = True
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if hasattr(datasets.config, name):
            setattr(datasets.config, name, True)
    return datasets


def load_cached(hf_id: str, config: Optional[str], split: str, image_field: Optional[str] = None):
    """``(rows, fingerprint)`` of ``hf_id`` from the offline cache, or ``None`` when it is not cached there."""
    datasets = _offline_datasets()

    try:
        loaded = datasets.load_dataset(hf_id, config, split=split)
    except Exception as exc:  # noqa: BLE001 - any cache miss means "not at hand"; other failures are warned about
        if not any(marker in f"{type(exc).__name__} {exc}".lower() for marker in _NOT_CACHED):
            warnings.warn(f"could not load {hf_id} from the local cache ({type(exc).__name__}: {exc})", stacklevel=3)
        return None
    return _rows(loaded, image_field)


def load_saved(folder: Path, split: str, image_field: Optional[str] = None):
    """``(rows, fingerprint)`` of a ``save_to_disk`` folder (split ``split`` of a saved DatasetDict)."""
    import datasets  # datasets is slow to import: loaded only for this layout

    loaded = datasets.load_from_disk(str(folder))
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise KeyError(f"{folder} is a saved DatasetDict without split {split!r} (splits: {', '.join(loaded)})")
        loaded = loaded[split]
    return _rows(loaded, image_field)


def _rows(dataset, image_field: Optional[str]):
    import datasets  # already loaded by the caller

    if image_field and image_field in dataset.column_names:
        dataset = dataset.cast_column(image_field, datasets.Image(decode=False))
    rows = list(dataset)
    fingerprint = getattr(dataset, "_fingerprint", None) or hashlib.sha256(
        json.dumps(rows, sort_keys=True, default=repr).encode()).hexdigest()
    return rows, fingerprint
