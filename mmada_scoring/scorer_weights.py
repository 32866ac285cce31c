"""Shared error type and input helpers for the model-based scorers (CLIP score, ImageReward).

Public API:
    ScorerWeightsMissing        raised when a scorer's weights / tokenizer / config are not on disk
    require_file(path, what, flag) -> Path
    to_pil_image(image) -> PIL.Image.Image   (PIL image, file path, HWC uint8 array, CHW uint8 tensor)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


class ScorerWeightsMissing(FileNotFoundError):
    """A scorer's weights, tokenizer or config are not available locally (nothing is downloaded)."""


def require_file(path: str | Path, what: str, flag: str) -> Path:
    """Return ``path`` as a Path if it is an existing file, else raise ScorerWeightsMissing naming ``flag``."""
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise ScorerWeightsMissing(
            f"{what} not found at {resolved}. Put the file there or point {flag} at a local copy "
            "(scorers never download weights)."
        )
    return resolved


def to_pil_image(image: Any) -> Image.Image:
    """Turn a PIL image, an image file path, an HWC uint8 array or a CHW uint8 tensor into a PIL image.

    PIL images are returned unchanged (their mode is kept: some scorers convert to RGB only after resizing).
    """
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {path}")
        with Image.open(path) as opened:
            opened.load()
            return opened.copy()
    array = image
    if hasattr(array, "detach"):  # torch tensor, CHW
        array = array.detach().cpu().numpy()
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
            array = np.transpose(array, (1, 2, 0))
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(
            f"image arrays must be uint8 (0..255), got dtype {array.dtype}; convert floats with "
            "(x * 255).round().clip(0, 255).astype(np.uint8) first"
        )
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise ValueError(f"image array must be HW, HWC or CHW, got shape {array.shape}")
    return Image.fromarray(array)
