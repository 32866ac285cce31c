"""The image of a dataset item: where it is, a cheap digest for prompt hashes, and decoding.

An item's image field may hold (as the Hugging Face ``Image`` feature and its Parquet export do)
``{"bytes": b"...", "path": "name.jpg"}``, raw encoded ``bytes``, a PIL image, or a path string
(relative paths are looked up in the task's image folder, e.g. COCO val2014 for the original
POPE files). Problems become :class:`ItemImageError` with a message naming the item's image.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Optional

from mmada_ref.image_processing import ImageLoadError, load_image


class ItemImageError(ValueError):
    """An item's image is missing or cannot be read."""


def image_source(doc: dict, field: str, image_dir: Optional[Path] = None) -> Any:
    """The loadable source (bytes, PIL image or path) of ``doc[field]``; ItemImageError if there is none."""
    value = doc.get(field)
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        value = value.get("path")
    if value is None or (isinstance(value, (bytes, str)) and not value):
        raise ItemImageError(f"image missing: field {field!r} holds no image bytes or path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_absolute() and image_dir is not None:
            path = Path(image_dir) / path
        if not path.is_file():
            raise ItemImageError(f"image file {str(path)!r} not found (field {field!r}); "
                                 "pass --image-dir with the folder that holds it")
        return path
    if hasattr(value, "mode") and hasattr(value, "size"):  # a PIL image
        return value
    raise ItemImageError(f"field {field!r} holds a {type(value).__name__}, not image bytes, a path or an image")


def image_digest(source: Any) -> str:
    """sha256 of the image's bytes (paths: of name and size, so planning does not read every file)."""
    digest = hashlib.sha256()
    if isinstance(source, bytes):
        digest.update(source)
    elif isinstance(source, Path):
        digest.update(f"{source.name}:{source.stat().st_size}".encode())
    else:
        digest.update(source.tobytes())
        digest.update(f"{source.mode}{source.size}".encode())
    return digest.hexdigest()


def open_image(source: Any):
    """Decode ``source`` to an RGB PIL image; ItemImageError (naming the cause) if it is corrupt."""
    try:
        return load_image(source)
    except ImageLoadError as exc:
        raise ItemImageError(f"corrupt image: {exc}") from None
