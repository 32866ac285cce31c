"""Contact sheet: one PNG grid of generated images with their captions (PIL only)."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Optional, Sequence, Union

from PIL import Image, ImageDraw, ImageFont

#: Caption lines drawn under each tile (longer captions are cut with an ellipsis).
CAPTION_LINES = 3


def grid_shape(count: int, columns: Optional[int] = None) -> tuple[int, int]:
    """``(rows, columns)`` of the grid: ``columns`` given, or about square (``ceil(sqrt(count))``)."""
    if count < 1:
        raise ValueError("a contact sheet needs at least one image")
    cols = columns if columns is not None else math.ceil(math.sqrt(count))
    if cols < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    cols = min(cols, count)
    return math.ceil(count / cols), cols


def contact_sheet(images: Sequence[Image.Image], captions: Sequence[str], path: Union[str, Path],
                  columns: Optional[int] = None, tile_size: Optional[int] = None,
                  caption_lines: int = CAPTION_LINES, margin: int = 4) -> Path:
    """Write ``images`` as a grid PNG at ``path``, each tile with its caption below it; returns the path.

    Tiles are ``tile_size`` pixels square (default: the largest image side, at least 128); images are
    scaled to fit and centred. The sheet is ``columns * (tile + 2·margin)`` wide and
    ``rows * (tile + caption height + 2·margin)`` high.
    """
    images = list(images)
    captions = [str(c) for c in captions]
    if len(captions) != len(images):
        raise ValueError(f"contact_sheet got {len(images)} images but {len(captions)} captions")
    rows, cols = grid_shape(len(images), columns)
    tile = tile_size or max(128, max(max(im.size) for im in images))
    font = ImageFont.load_default()
    line_h = _line_height(font)
    chars = max(8, tile // max(1, _char_width(font)))
    cell_w, cell_h = tile + 2 * margin, tile + caption_lines * line_h + 2 * margin
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, caption) in enumerate(zip(images, captions)):
        x0, y0 = (i % cols) * cell_w + margin, (i // cols) * cell_h + margin
        thumb = _fit(image.convert("RGB"), tile)
        sheet.paste(thumb, (x0 + (tile - thumb.width) // 2, y0 + (tile - thumb.height) // 2))
        for j, line in enumerate(_wrap(caption, chars, caption_lines)):
            draw.text((x0, y0 + tile + j * line_h), line, fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path


def _fit(image: Image.Image, tile: int) -> Image.Image:
    """Shrink to fit ``tile`` (Lanczos), or enlarge small images by an integer factor without blurring."""
    side = max(image.size)
    if side > tile:
        image.thumbnail((tile, tile), Image.Resampling.LANCZOS)
    elif side < tile and tile // side > 1:
        scale = tile // side
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return image


def _wrap(caption: str, width: int, lines: int) -> list[str]:
    wrapped = textwrap.wrap(" ".join(caption.split()), width=width) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: max(0, width - 3)] + "..."
    return wrapped


def _line_height(font) -> int:
    left, top, right, bottom = font.getbbox("Ag")
    return int(bottom - top) + 4


def _char_width(font) -> int:
    left, top, right, bottom = font.getbbox("M" * 10)
    return max(1, int(math.ceil((right - left) / 10)))
