"""Training corpora per stage, in the row formats ``mmada_ref.training.data`` reads (all from ``train`` seeds).

``write_corpora(out, seed, n)`` writes, each file with ``n`` rows:

* ``stage1/``: ``text.jsonl`` ``{"text"}`` (captions, GSM8K ``Question: ... Answer:`` and MATH ``Problem: ...
  Solution:`` texts), ``mmu.jsonl`` ``{"image", "question", "answer"}`` (captioning), ``t2i.jsonl``
  ``{"caption", "image"}``;
* ``stage2/`` (:mod:`.sft`: every prompt in the harness's layout for an MMaDA checkpoint): ``text_cot.jsonl``
  (GSM8K chat rows ``{"prompt", "reasoning", "answer"}`` + MATH500 Minerva rows ``{"text"}``, ``n / 2`` each),
  ``mmu_cot.jsonl`` (POPE / MME yes-no and Flickr30k caption rows of ``n / 8`` images each, a quarter of the
  yes-no questions with the thinking prompt and the objects seen), ``t2i.jsonl``, ``mmu_direct.jsonl`` (the
  yes-no rows without thinking), ``mmu_cells.jsonl`` (grounding: what is in each cell, :func:`grounding_rows`),
  ``mmu_think.jsonl`` (POPE / MME yes-no rows of ``n / 4`` images each in the thinking variant the world model
  answers in, reasoning = the question's object and a verdict per cell, :func:`.sft.yes_no_rows`, layout ``think``),
  ``mmu_captions.jsonl`` (the Flickr30k caption rows of ``mmu_cot.jsonl``, rehearsed in ``stage2_rehearse``);
* ``stage3/``: ``text_prompts.jsonl`` / ``mmu_prompts.jsonl`` ``{..., "answer"}``: the stage-2 prompts (GSM8K
  chat, the direct POPE / MME yes-no questions) with gold answers for the correctness reward
  (:func:`.sft.grpo_prompts`),
  ``t2i_prompts.jsonl`` ``{"caption"}`` (world-oracle reward);
* ``images/<stream>/<i>.png`` (rows name them by absolute path; with ``magvit`` also ``image_codes``);
* ``stage{1,2,3}.yaml``: stage configs listing these sources (model paths are placeholders).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from . import language as L
from . import sft
from .problems import gsm8k_problem, math_problem
from .scene import Scene, draw, sample_scene
from .seeds import DEFAULT_TRAIN_SEED, TRAIN_SPLIT, item_rng
from .tasks import (
    write_jsonl,
)


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(0, len(seq)))]


class ImageStore:
    """Saves scene images as PNG under ``root/<stream>/`` and remembers them for optional MAGVIT encoding."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.saved: list[tuple[str, Scene]] = []

    def save(self, stream: str, index: int, scene: Scene) -> str:
        path = self.root / stream / f"{index:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        draw(scene).save(path)
        self.saved.append((str(path), scene))
        return str(path)


def _rng(seed: int, stream: str, i: int) -> np.random.Generator:
    return item_rng(seed, TRAIN_SPLIT, stream, i)


def t2i_caption(rng: np.random.Generator, scene: Scene) -> str:
    """Every object of the scene, in random order, with cells (3 in 4) or without."""
    order = [scene.objects[int(i)] for i in rng.permutation(len(scene.objects))]
    return L.describe(order, with_cells=bool(rng.integers(0, 4)))


def gsm8k_text(problem: dict) -> str:
    return f"Question: {problem['question']}\nAnswer: {problem['answer']}"


def math_text(problem: dict) -> str:
    return f"Problem:\n{problem['problem']}\n\nSolution: {problem['solution']}"


# ------------------------------------------------------------------ stage 1

def stage1_text(seed: int, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        rng = _rng(seed, "stage1/text", i)
        kind = int(rng.integers(0, 3))
        if kind == 0:
            text = L.captions(sample_scene(rng), rng, k=1)[0].capitalize() + "."
        elif kind == 1:
            text = gsm8k_text(gsm8k_problem(rng))
        else:
            text = math_text(math_problem(rng))
        rows.append({"text": text})
    return rows


def stage1_mmu(seed: int, n: int, images: ImageStore) -> list[dict]:
    rows = []
    for i in range(n):
        rng = _rng(seed, "stage1/mmu", i)
        scene = sample_scene(rng)
        rows.append({"image": images.save("stage1_mmu", i, scene), "question": _pick(rng, L.CAPTION_QUESTIONS),
                     "answer": L.captions(scene, rng, k=1)[0]})
    return rows


def grounding_rows(captioned: list[dict], images: ImageStore, chat_eot: Optional[str] = None) -> list[dict]:
    """The images of the ``captioned`` rows (:func:`stage1_mmu`, drawn by ``images``) again, each asked
    :data:`~.language.CELL_LISTING_QUESTION` with the
    :func:`~.language.cell_listing` answer: every answer token is fixed by the image, so the loss cannot be
    lowered without reading it (captions and yes / no answers leave most of their loss to templates).
    ``chat_eot``: the end-of-turn of the harness's image yes / no layout, so the rows share that layout."""
    scenes = dict(images.saved)
    return [{"image": row["image"], "question": L.CELL_LISTING_QUESTION, "answer": L.cell_listing(scenes[row["image"]]),
             **({"chat_eot": chat_eot} if chat_eot else {})} for row in captioned]


def t2i_pairs(seed: int, n: int, images: ImageStore, stream: str) -> list[dict]:
    rows = []
    for i in range(n):
        rng = _rng(seed, stream, i)
        scene = sample_scene(rng)
        rows.append({"caption": t2i_caption(rng, scene), "image": images.save(stream.replace("/", "_"), i, scene)})
    return rows


# ------------------------------------------------------------------ stage 2 (rows: world/sft.py)

def text_problem(rng: np.random.Generator) -> tuple[str, str, str]:
    """(question, reasoning, answer) of a GSM8K- or MATH-format problem; answer is the gold value."""
    if rng.integers(0, 2):
        p = gsm8k_problem(rng)
        lines = p["answer"].split("\n")
        return p["question"], "\n".join(lines[:-1]), lines[-1].removeprefix("#### ").strip()
    p = math_problem(rng)
    return p["problem"], p["solution"], p["answer"]


# ------------------------------------------------------------------ stage 3

def stage3_t2i(seed: int, n: int) -> list[dict]:
    return [{"caption": L.t2i_prompt(_rng(seed, "stage3/t2i", i))[0]} for i in range(n)]


# ------------------------------------------------------------------ writing

STAGE_FILES = {
    "stage1": [("text.jsonl", "text"), ("mmu.jsonl", "mmu"), ("t2i.jsonl", "t2i")],
    "stage2": [("text_cot.jsonl", "text"), ("mmu_cot.jsonl", "mmu"), ("t2i.jsonl", "t2i"),
               ("mmu_direct.jsonl", "mmu"), ("mmu_cells.jsonl", "mmu"), ("mmu_think.jsonl", "mmu"),
               ("mmu_captions.jsonl", "mmu")],
    "stage3": [("text_prompts.jsonl", "text"), ("mmu_prompts.jsonl", "mmu"), ("t2i_prompts.jsonl", "t2i")],
}


def encode_images(images: ImageStore, magvit_dir: str | Path, batch: int = 256) -> dict:
    """MAGVIT codes of every saved image: ``{path: [codes]}``."""
    from mmada_ref.magvit import MAGVITv2

    from .train_magvit import scene_codes

    vq = MAGVITv2.from_pretrained(magvit_dir).eval()
    if not images.saved:
        return {}
    ids = scene_codes(vq, [scene for _, scene in images.saved], batch)
    return {path: row for (path, _), row in zip(images.saved, ids.tolist())}


def write_corpora(out: str | Path, seed: int = DEFAULT_TRAIN_SEED, n: int = 1000,
                  magvit: Optional[str | Path] = None) -> dict:
    """Write every stage corpus under ``out`` (see the module docstring); returns the manifest."""
    out = Path(out)
    images = ImageStore(out / "images")
    sft_text = sft.text_rows(seed, max(1, n // 2))
    image_fields = sft.png_codes(magvit) if magvit else sft.png_files(out / "images")
    sft_mmu = sft.mmu_rows(seed, max(1, n // 8), image_fields)
    sft_direct = sft.direct(sft_mmu)
    sft_think = sft.yes_no_rows(seed, max(1, n // 4), image_fields, "think")
    captioned = stage1_mmu(seed, n, images)
    files = {
        "stage1": [stage1_text(seed, n), captioned, t2i_pairs(seed, n, images, "stage1/t2i")],
        "stage2": [sft_text, sft_mmu, t2i_pairs(seed, n, images, "stage2/t2i"), sft_direct,
                   grounding_rows(captioned, images, next((r.get("chat_eot") for r in sft_direct), None)),
                   sft_think, sft.captions(sft_mmu)],
        "stage3": [sft.grpo_prompts(sft_text, "text"), sft.grpo_prompts(sft_direct, "mmu"), stage3_t2i(seed, n)],
    }
    codes = encode_images(images, magvit) if magvit else {}
    for stage, tables in files.items():
        for (name, _), rows in zip(STAGE_FILES[stage], tables):
            if codes:
                rows = [{**r, "image_codes": codes[r["image"]]} if "image" in r else r for r in rows]
            write_jsonl(rows, out / stage / name)
    from .stage_configs import write_stage_configs

    configs = write_stage_configs(out, magvit)
    manifest = {"split": TRAIN_SPLIT, "seed": seed, "rows_per_file": n, "images": len(images.saved),
                "image_codes": bool(codes), "magvit": str(magvit) if magvit else None,
                "files": {s: [name for name, _ in STAGE_FILES[s]] for s in STAGE_FILES}, "configs": configs}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
