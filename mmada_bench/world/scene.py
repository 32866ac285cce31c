"""Scenes of the shapes world (spec/shapes_world.md): sampling and drawing, deterministic by seed.

A :class:`Scene` is a list of :class:`WorldObject` (colour, shape, cell, size, jitter). :func:`draw`
renders it on a 32 x 32 white canvas with PIL ``ImageDraw`` (solid fills, no anti-aliasing, no outline).
"""
from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

CANVAS = 32
CELL = 16
BACKGROUND = (255, 255, 255)
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 190, 30),
}
SHAPES = ("circle", "square", "triangle")
#: Cell name -> (x0, y0) of its top-left pixel.
CELLS = {
    "top left": (0, 0),
    "top right": (CELL, 0),
    "bottom left": (0, CELL),
    "bottom right": (CELL, CELL),
}
KINDS = tuple((c, s) for c in COLOURS for s in SHAPES)  # the 12 (colour, shape) kinds
JITTER = 1
#: Inclusive size ranges in px: circle diameter, square side, triangle (base, height).
CIRCLE_DIAMETER = (9, 13)
SQUARE_SIDE = (8, 12)
TRIANGLE_BASE = (10, 13)
TRIANGLE_HEIGHT = (9, 12)
MAX_OBJECTS = 3


@dataclass(frozen=True)
class WorldObject:
    """One shape: its kind, cell, bounding-box size ``(w, h)`` in px and jitter ``(dx, dy)``."""

    colour: str
    shape: str
    cell: str
    size: tuple = (10, 10)
    jitter: tuple = (0, 0)

    @property
    def kind(self) -> tuple:
        return (self.colour, self.shape)

    @property
    def phrase(self) -> str:
        return f"{self.colour} {self.shape}"

    def box(self) -> tuple:
        """Inclusive pixel box ``(left, top, right, bottom)``, centred in the cell plus jitter."""
        x0, y0 = CELLS[self.cell]
        w, h = self.size
        left = x0 + (CELL - w) // 2 + self.jitter[0]
        top = y0 + (CELL - h) // 2 + self.jitter[1]
        return (left, top, left + w - 1, top + h - 1)


@dataclass(frozen=True)
class Scene:
    """The objects of one image (each in a different cell)."""

    objects: tuple = field(default_factory=tuple)

    def kinds(self) -> list:
        return [o.kind for o in self.objects]

    def to_dict(self) -> dict:
        return {"objects": [asdict(o) for o in self.objects]}

    @classmethod
    def from_dict(cls, data: dict) -> "Scene":
        return cls(tuple(WorldObject(o["colour"], o["shape"], o["cell"], tuple(o["size"]), tuple(o["jitter"]))
                         for o in data["objects"]))


def sample_size(rng: np.random.Generator, shape: str) -> tuple:
    """A random bounding-box size ``(w, h)`` within the spec's ranges."""
    if shape == "circle":
        d = int(rng.integers(CIRCLE_DIAMETER[0], CIRCLE_DIAMETER[1] + 1))
        return (d, d)
    if shape == "square":
        s = int(rng.integers(SQUARE_SIDE[0], SQUARE_SIDE[1] + 1))
        return (s, s)
    if shape == "triangle":
        return (int(rng.integers(TRIANGLE_BASE[0], TRIANGLE_BASE[1] + 1)),
                int(rng.integers(TRIANGLE_HEIGHT[0], TRIANGLE_HEIGHT[1] + 1)))
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")


def make_object(rng: np.random.Generator, colour: str, shape: str, cell: str, jitter: int = JITTER) -> WorldObject:
    """An object of the given kind and cell with random size and jitter in ``-jitter..+jitter``."""
    dx, dy = (int(v) for v in rng.integers(-jitter, jitter + 1, size=2))
    return WorldObject(colour, shape, cell, sample_size(rng, shape), (dx, dy))


def sample_scene(rng: np.random.Generator, n_objects: Optional[int] = None, allow_repeats: bool = False,
                 jitter: int = JITTER, kinds: Optional[Sequence[tuple]] = None) -> Scene:
    """A random scene of 1..3 objects in distinct cells.

    Kinds are distinct unless ``allow_repeats`` (counting items only); ``kinds`` fixes them.
    """
    if kinds is not None:
        n_objects = len(kinds)
    if n_objects is None:
        n_objects = int(rng.integers(1, MAX_OBJECTS + 1))
    if not 1 <= n_objects <= len(CELLS):
        raise ValueError(f"a scene holds 1..{len(CELLS)} objects, not {n_objects}")
    cells = [list(CELLS)[i] for i in rng.permutation(len(CELLS))[:n_objects]]
    if kinds is None:
        idx = rng.integers(0, len(KINDS), size=n_objects) if allow_repeats else \
            rng.permutation(len(KINDS))[:n_objects]
        kinds = [KINDS[int(i)] for i in idx]
    objects = [make_object(rng, c, s, cell, jitter) for (c, s), cell in zip(kinds, cells)]
    return Scene(tuple(sorted(objects, key=lambda o: list(CELLS).index(o.cell))))


def draw(scene: Scene) -> Image.Image:
    """Render ``scene`` as a 32 x 32 RGB image (white background, solid shapes)."""
    image = Image.new("RGB", (CANVAS, CANVAS), BACKGROUND)
    pen = ImageDraw.Draw(image)
    for obj in scene.objects:
        left, top, right, bottom = obj.box()
        fill = COLOURS[obj.colour]
        if obj.shape == "circle":
            pen.ellipse((left, top, right, bottom), fill=fill)
        elif obj.shape == "square":
            pen.rectangle((left, top, right, bottom), fill=fill)
        elif obj.shape == "triangle":
            apex = (left + right) // 2
            pen.polygon([(left, bottom), (right, bottom), (apex, top)], fill=fill)
        else:
            raise ValueError(f"unknown shape {obj.shape!r}")
    return image


def png_bytes(image: Image.Image) -> bytes:
    """Lossless PNG encoding of ``image``."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
