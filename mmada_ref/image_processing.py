"""Image pre/post-processing for the MAGVIT-v2 tokenizer (official ``training/utils.py``).

* ``image_transform``: Resize(res, BICUBIC) on the short side -> CenterCrop(res) -> ToTensor
  (/255) -> Normalize(0.5, 0.5), i.e. pixels in [-1, 1].
* ``image_transform_squash``: Resize((res, res), BICUBIC) without crop (used by the official
  MMU inference for diagram-like datasets such as ai2d / clevr / docvqa / geo / llava).
* ``to_pil``: decoded tensor -> ``clamp((x + 1) / 2, 0, 1) * 255`` -> uint8 (truncated, as the
  official ``astype(np.uint8)``) -> PIL RGB images.

torchvision / PIL do the resampling so numbers match the official pipeline bit for bit.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

ImageSource = Union[Image.Image, str, Path, bytes, bytearray, io.IOBase]
RESIZE_MODES = ("crop", "squash")


class ImageLoadError(ValueError):
    """An image source (path, bytes, file object) could not be opened or decoded."""


def describe_source(source: object) -> str:
    """Short human-readable name of an image source for error messages."""
    if isinstance(source, (str, Path)):
        return f"file {str(source)!r}"
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes starting {bytes(source[:8])!r}>"
    name = getattr(source, "name", None)
    return f"file object {name!r}" if name else f"<{type(source).__name__}>"


def load_image(source: ImageSource) -> Image.Image:
    """Open and fully decode ``source`` as an RGB PIL image.

    Accepts a PIL image, a path, raw encoded bytes or a binary file object. Missing files and
    corrupt / truncated / non-image data raise :class:`ImageLoadError` naming the source.
    """
    if isinstance(source, Image.Image):
        image = source
    else:
        where = describe_source(source)
        if isinstance(source, (str, Path)):
            if not Path(source).is_file():
                raise ImageLoadError(f"cannot load image from {where}: no such file")
            stream = source
        elif isinstance(source, (bytes, bytearray)):
            stream = io.BytesIO(bytes(source))
        elif hasattr(source, "read"):
            stream = source
        else:
            raise ImageLoadError(f"cannot load image from {where}: expected a PIL image, a path, "
                                 "bytes or a binary file object")
        try:
            image = Image.open(stream)
            image.load()  # decode now so truncated data fails here, not later
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise ImageLoadError(f"cannot load image from {where}: {type(err).__name__}: {err}") from err
    return image if image.mode == "RGB" else image.convert("RGB")


def _check_resolution(resolution: int) -> int:
    if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution <= 0:
        raise ValueError(f"resolution must be a positive int, got {resolution!r}")
    return resolution


def _transforms():
    """torchvision's transforms, imported on first use (torchvision adds ~1.4 s to every start-up otherwise)."""
    from torchvision import transforms

    return transforms


def _to_tensor(image, normalize: bool) -> torch.Tensor:
    transforms = _transforms()
    tensor = transforms.ToTensor()(image)
    return transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])(tensor) if normalize else tensor


def image_transform(image: ImageSource, resolution: int = 512, normalize: bool = True) -> torch.Tensor:
    """Short-side bicubic resize + center crop -> float ``[3, res, res]`` (in [-1, 1] if normalize)."""
    resolution = _check_resolution(resolution)
    image = load_image(image)
    transforms = _transforms()
    image = transforms.Resize(resolution, interpolation=transforms.InterpolationMode.BICUBIC)(image)
    image = transforms.CenterCrop((resolution, resolution))(image)
    return _to_tensor(image, normalize)


def image_transform_squash(image: ImageSource, resolution: int = 512, normalize: bool = True) -> torch.Tensor:
    """Bicubic resize to ``(res, res)`` ignoring the aspect ratio (no crop)."""
    resolution = _check_resolution(resolution)
    image = load_image(image)
    transforms = _transforms()
    image = transforms.Resize((resolution, resolution), interpolation=transforms.InterpolationMode.BICUBIC)(image)
    return _to_tensor(image, normalize)


def preprocess_images(images: Union[ImageSource, Iterable[ImageSource]], resolution: int = 512,
                      mode: str = "crop") -> torch.Tensor:
    """Batch of images -> float32 ``[B, 3, res, res]`` in [-1, 1]; ``mode`` is "crop" or "squash"."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"mode must be one of {RESIZE_MODES}, got {mode!r}")
    if isinstance(images, (Image.Image, str, Path, bytes, bytearray, io.IOBase)):
        images = [images]
    transform = image_transform if mode == "crop" else image_transform_squash
    batch = [transform(image, resolution) for image in images]
    if not batch:
        raise ValueError("preprocess_images needs at least one image")
    return torch.stack(batch)


def to_uint8(decoded: torch.Tensor) -> np.ndarray:
    """Decoded pixels ``[B, 3, H, W]`` (or ``[3, H, W]``) around [-1, 1] -> uint8 ``[B, H, W, 3]``."""
    if decoded.dim() == 3:
        decoded = decoded.unsqueeze(0)
    if decoded.dim() != 4 or decoded.shape[1] != 3:
        raise ValueError(f"expected decoded pixels [batch, 3, H, W], got {tuple(decoded.shape)}")
    scaled = torch.clamp((decoded.detach().float() + 1.0) / 2.0, min=0.0, max=1.0) * 255.0
    return scaled.permute(0, 2, 3, 1).cpu().numpy().astype(np.uint8)


def to_pil(decoded: torch.Tensor) -> list[Image.Image]:
    """Decoded pixels -> list of RGB PIL images (official clamp / scale / truncate to uint8)."""
    return [Image.fromarray(array) for array in to_uint8(decoded)]
