"""The world oracle: a deterministic object detector for world images, and a GenEval-style prompt score.

Detection (spec "The world oracle"): each pixel -> nearest of the five colours (background included);
8-connected components per colour; components under :data:`MIN_COMPONENT_PX` dropped; shape from the fill
ratio within the bounding box (square ~1.0, circle ~0.785, triangle ~0.5); cell from the centroid.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import permutations
from typing import Optional, Sequence

import numpy as np
from PIL import Image
from scipy import ndimage

from .scene import BACKGROUND, CELL, CELLS, COLOURS, SHAPES

MIN_COMPONENT_PX = 12
#: Fill-ratio decision boundaries: >= SQUARE_MIN -> square, >= CIRCLE_MIN -> circle, else triangle.
SQUARE_MIN_FILL = 0.9
CIRCLE_MIN_FILL = 0.66
PALETTE_NAMES = ("background",) + tuple(COLOURS)
PALETTE = np.array([BACKGROUND] + [COLOURS[c] for c in COLOURS], dtype=np.float32)
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Detection:
    """One detected object."""

    colour: str
    shape: str
    cell: str
    pixels: int
    fill: float
    centroid: tuple

    @property
    def kind(self) -> tuple:
        return (self.colour, self.shape)


@dataclass(frozen=True)
class Request:
    """One object a prompt asks for; ``cell`` is None when the prompt names no position."""

    colour: str
    shape: str
    cell: Optional[str] = None

    @property
    def kind(self) -> tuple:
        return (self.colour, self.shape)


def classify_pixels(image) -> np.ndarray:
    """``[H, W]`` index into :data:`PALETTE_NAMES` of the nearest palette colour of each pixel."""
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32)
    dist = ((pixels[:, :, None, :] - PALETTE[None, None]) ** 2).sum(-1)
    return dist.argmin(-1)


def shape_from_fill(fill: float) -> str:
    """Shape name from the fill ratio of a component within its bounding box."""
    if fill >= SQUARE_MIN_FILL:
        return "square"
    if fill >= CIRCLE_MIN_FILL:
        return "circle"
    return "triangle"


def cell_of(x: float, y: float) -> str:
    """Cell name of a point in pixel coordinates (pixel centres at integers)."""
    half = CELL - 0.5
    return f"{'top' if y < half else 'bottom'} {'left' if x < half else 'right'}"


def detect(image) -> list[Detection]:
    """Every object of ``image`` (a PIL image or an ``[H, W, 3]`` array), sorted by cell then colour."""
    labels = classify_pixels(image)
    found = []
    for index, colour in enumerate(PALETTE_NAMES):
        if colour == "background":
            continue
        components, count = ndimage.label(labels == index, structure=EIGHT_CONNECTED)
        for k in range(1, count + 1):
            ys, xs = np.nonzero(components == k)
            if len(xs) < MIN_COMPONENT_PX:
                continue
            box = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
            fill = len(xs) / box
            cx, cy = float(xs.mean()), float(ys.mean())
            found.append(Detection(colour, shape_from_fill(fill), cell_of(cx, cy), int(len(xs)), float(fill),
                                   (cx, cy)))
    order = list(CELLS)
    return sorted(found, key=lambda d: (order.index(d.cell), d.colour, d.shape))


_COLOUR_RE = "|".join(COLOURS)
_SHAPE_RE = "|".join(SHAPES)
_CELL_RE = "|".join(CELLS)
_OBJECT = re.compile(rf"\b({_COLOUR_RE})\s+({_SHAPE_RE})s?\b(?:\s+(?:in|at)\s+the\s+({_CELL_RE})\b)?",
                     re.IGNORECASE)


def parse_prompt(prompt: str) -> list[Request]:
    """The objects (and cells, when named) of a world text-to-image prompt, in order.

    ``"a blue triangle in the top right and a red circle"`` -> ``[Request(blue, triangle, top right),
    Request(red, circle, None)]``. Raises ``ValueError`` when the prompt names no world object.
    """
    found = [Request(m.group(1).lower(), m.group(2).lower(), m.group(3).lower() if m.group(3) else None)
             for m in _OBJECT.finditer(prompt)]
    if not found:
        raise ValueError(f"prompt {prompt!r} names no world object ('{{colour}} {{shape}}')")
    return found


def _matches(request: Request, det: Detection) -> bool:
    return request.kind == det.kind and (request.cell is None or request.cell == det.cell)


def satisfies(requests: Sequence[Request], detections: Sequence[Detection]) -> bool:
    """GenEval-style: every request matched by a distinct detection, and no detection beyond the requests."""
    if len(detections) != len(requests):
        return False
    return any(all(_matches(r, d) for r, d in zip(requests, perm)) for perm in permutations(detections))


def score_prompt(prompt: str, image) -> float:
    """1.0 when ``image`` satisfies ``prompt`` (see :func:`satisfies`), else 0.0."""
    return 1.0 if satisfies(parse_prompt(prompt), detect(image)) else 0.0


def scene_found(scene, image) -> bool:
    """True when the oracle finds exactly the objects (kind and cell) of ``scene`` in ``image``."""
    requests = [Request(o.colour, o.shape, o.cell) for o in scene.objects]
    return satisfies(requests, detect(image))
