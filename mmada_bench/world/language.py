"""The world's text: object phrases, captions, question templates and text-to-image prompts."""
from __future__ import annotations

import re
from typing import Optional, Sequence

import numpy as np

from .scene import CELLS, COLOURS, KINDS, SHAPES, Scene, WorldObject

NUMBER_WORDS = {1: "one", 2: "two", 3: "three"}
YES_NO_SUFFIX = " Please answer yes or no."
CAPTION_PROMPT = "Provide a one-sentence caption for the provided image."
CAPTION_QUESTIONS = (
    CAPTION_PROMPT,
    "Describe the image.",
    "What is in this image?",
    "Write a short caption for this picture.",
    "What shapes do you see?",
)


def plural(shape: str) -> str:
    return f"{shape}s"


def object_phrase(colour: str, shape: str, cell: Optional[str] = None) -> str:
    """``a red circle`` / ``a red circle in the top left``."""
    base = f"a {colour} {shape}"
    return f"{base} in the {cell}" if cell else base


def join_phrases(parts: Sequence[str]) -> str:
    """``x``, ``x and y``, ``x, y and z``."""
    parts = list(parts)
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def count_word(n: int, rng: Optional[np.random.Generator] = None) -> str:
    """``one``..``three`` or the digit (50/50 with ``rng``, the word without)."""
    if rng is not None and rng.integers(0, 2):
        return str(n)
    return NUMBER_WORDS[n]


def describe(objects: Sequence[WorldObject], with_cells: bool = True) -> str:
    """The objects as one phrase, e.g. ``a red circle in the top left and a blue square in the bottom right``."""
    return join_phrases([object_phrase(o.colour, o.shape, o.cell if with_cells else None) for o in objects])


_CAPTION_TEMPLATES = (
    "{full}",
    "{full} on a white background",
    "a white image with {full}",
    "there is {full}",
    "a picture of {bare}",
    "{count} on a white background: {bare}",
    "a simple drawing of {full}",
)


def captions(scene: Scene, rng: np.random.Generator, k: int = 5) -> list[str]:
    """``k`` distinct reference captions of ``scene`` (object order and templates vary)."""
    out: list[str] = []
    n = len(scene.objects)
    count = f"{NUMBER_WORDS[n]} shape" + ("s" if n > 1 else "")
    for template in [_CAPTION_TEMPLATES[i] for i in rng.permutation(len(_CAPTION_TEMPLATES))]:
        order = [scene.objects[i] for i in rng.permutation(n)]
        text = template.format(full=describe(order), bare=describe(order, with_cells=False), count=count)
        if text not in out:
            out.append(text)
        if len(out) == k:
            break
    return out


def scene_caption(scene: Scene) -> str:
    """The canonical caption: every object with its cell, in cell order (a t2i training caption)."""
    return describe(scene.objects)


CELL_LISTING_QUESTION = "What is in each cell?"


EMPTY_CELL = "empty"


def cell_contents(scene: Scene) -> list[tuple[str, str]]:
    """``(cell, "colour shape" or "empty")`` for every cell in reading order."""
    by_cell = {o.cell: f"{o.colour} {o.shape}" for o in scene.objects}
    return [(cell, by_cell.get(cell, EMPTY_CELL)) for cell in CELLS]


def cell_listing(scene: Scene) -> str:
    """Every cell in reading order with its object or ``empty`` (a grounding target fixed by the image alone),
    e.g. ``top left: red triangle, top right: empty, bottom left: red square, bottom right: empty``."""
    return ", ".join(f"{cell}: {content}" for cell, content in cell_contents(scene))


def seen_objects(scene: Scene) -> str:
    """Reasoning text for image questions: the objects seen, before the answer."""
    n = len(scene.objects)
    noun = "shape" if n == 1 else "shapes"
    return f"I see {NUMBER_WORDS[n]} {noun}: {describe(scene.objects)}."


# ------------------------------------------------------------------ questions (fixed forms of the spec)

def pope_question(colour: str, shape: str) -> str:
    return f"Is there a {colour} {shape} in the image?"


def mme_existence(colour: str, shape: str) -> str:
    return f"Is there a {colour} {shape} in this image?{YES_NO_SUFFIX}"


def mme_count(n: str) -> str:
    return f"Are there {n} shapes in this image?{YES_NO_SUFFIX}"


def mme_color(shape: str, colour: str) -> str:
    return f"Is the {shape} in this image {colour}?{YES_NO_SUFFIX}"


def mme_position(colour: str, shape: str, cell: str) -> str:
    return f"Is the {colour} {shape} in the {cell} of the image?{YES_NO_SUFFIX}"


def _form(template, **fields) -> re.Pattern:
    """A question template as a regex: each field's placeholder becomes a named group."""
    text = re.escape(template(**{k: f"@{k}@" for k in fields}).removesuffix(YES_NO_SUFFIX))
    for name, group in fields.items():
        text = text.replace(f"@{name}@", f"(?P<{name}>{group})")
    return re.compile(text)


_WORD, _CELL = r"\w+", r"\w+ \w+"
_OBJECT_FORMS = (_form(pope_question, colour=_WORD, shape=_WORD), _form(mme_existence, colour=_WORD, shape=_WORD),
                 _form(mme_color, shape=_WORD, colour=_WORD))
_POSITION_FORM = _form(mme_position, colour=_WORD, shape=_WORD, cell=_CELL)
_COUNT_FORM = _form(mme_count, n=_WORD)
_COUNTS = {**{w: n for n, w in NUMBER_WORDS.items()}, **{str(n): n for n in NUMBER_WORDS}}


def yes_no_trace(question: str, scene: Scene) -> tuple[str, bool]:
    """The reasoning of a yes / no question about ``scene`` and its answer (True = yes).

    The question's object (and cell) is copied first, then each cell in reading order with its content and a
    verdict: ``looking for a red square. top left: red triangle no, ..., bottom left: red square yes, ...``;
    counting questions keep a running count (``counting to 2. top left: red square 1, top right: empty 1, ...``).
    Every verdict compares two phrases that stand side by side, so the answer never needs the question and the
    image matched in one step (the tiny model learns neither that nor matching against a plain listing).
    Raises ValueError on a question of none of the world's yes / no forms."""
    contents = cell_contents(scene)
    count = _COUNT_FORM.match(question)
    if count:
        target, seen, parts = _COUNTS[count["n"]], 0, []
        for cell, content in contents:
            seen += content != EMPTY_CELL
            parts.append(f"{cell}: {content} {seen}")
        return f"counting to {target}. " + ", ".join(parts) + ".", seen == target
    at = _POSITION_FORM.match(question)
    match = at or next((m for m in (form.match(question) for form in _OBJECT_FORMS) if m), None)
    if match is None:
        raise ValueError(f"not a yes / no question of the shapes world: {question!r}")
    wanted = f"{match['colour']} {match['shape']}"
    hits = [content == wanted and (not at or cell == at["cell"]) for cell, content in contents]
    head = f"looking for a {wanted}" + (f" in the {at['cell']}" if at else "") + ". "
    verdicts = ", ".join(f"{cell}: {content} {'yes' if hit else 'no'}" for (cell, content), hit in zip(contents, hits))
    return head + verdicts + ".", any(hits)


# ------------------------------------------------------------------ text-to-image prompts

def t2i_prompt(rng: np.random.Generator, n_objects: Optional[int] = None, with_cells: Optional[bool] = None
               ) -> tuple[str, str]:
    """A prompt naming one or two distinct objects, optionally with distinct cells; returns (prompt, category)."""
    n = int(n_objects or rng.integers(1, 3))
    cells = bool(rng.integers(0, 2)) if with_cells is None else with_cells
    kinds = [KINDS[int(i)] for i in rng.permutation(len(KINDS))[:n]]
    where = [list(CELLS)[int(i)] for i in rng.permutation(len(CELLS))[:n]]
    parts = [object_phrase(c, s, cell if cells else None) for (c, s), cell in zip(kinds, where)]
    category = ("single" if n == 1 else "pair") + ("_position" if cells else "")
    return join_phrases(parts), category


def vocabulary() -> list[str]:
    """Every content word of the world (colours, shapes and plurals, cells, counts)."""
    words = list(COLOURS) + list(SHAPES) + [plural(s) for s in SHAPES] + list(CELLS)
    return words + list(NUMBER_WORDS.values()) + [str(n) for n in NUMBER_WORDS]
