"""Evaluation items of every task format of the spec, written in the harness's canonical file schemas.

``write_tasks(out, seed, n)`` writes ``<out>/<task>/test.{parquet,jsonl}`` (the file name the task cards
read for their ``test`` split; the content is split ``world``) for pope, mme, flickr30k, gsm8k (+ the
few-shot pool ``train.jsonl`` from the training seeds), math500, the text-to-image prompt set
``t2i/world.jsonl`` (use with ``--prompts``), ``<task>/scenes.jsonl`` (the drawn scene of every image, for
the oracle) and ``manifest.json``. ``n`` counts images (image tasks), problems or prompts.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import language as L
from .problems import gsm8k_problem, math_problem
from .scene import CELLS, COLOURS, KINDS, SHAPES, Scene, draw, png_bytes, sample_scene
from .schemas import JSONL, PARQUET
from .seeds import (
    DEFAULT_EVAL_SEED,
    DEFAULT_TRAIN_SEED,
    EVAL_SPLIT,
    SPLIT_CODES,
    TRAIN_SPLIT,
    item_rng,
)

POPE_CATEGORIES = ("adversarial", "popular", "random")
MME_CATEGORIES = ("existence", "count", "color", "position")
POPULAR_TOP_K = 3
TASK_FILE = "test"  # the split file name the task cards read


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(0, len(seq)))]


def _image(name: str, scene: Scene) -> dict:
    return {"bytes": png_bytes(draw(scene)), "path": name}


# ------------------------------------------------------------------ POPE

def pope_absent(rng: np.random.Generator, scene: Scene, category: str, ranking: list) -> tuple:
    """The absent kind of a ``no`` question: uniform (random), among the ``POPULAR_TOP_K`` most frequent absent
    kinds of ``ranking`` (popular), or sharing the shape or colour of a present object (adversarial)."""
    present = set(scene.kinds())
    absent = [k for k in KINDS if k not in present]
    if category == "random":
        return _pick(rng, absent)
    if category == "popular":
        return _pick(rng, [k for k in ranking if k not in present][:POPULAR_TOP_K])
    if category == "adversarial":
        near = [k for k in absent if any(k[0] == c or k[1] == s for c, s in present)]
        return _pick(rng, near)
    raise ValueError(f"POPE category must be one of {POPE_CATEGORIES}, not {category!r}")


def kind_ranking(scenes: Iterable[Scene]) -> list:
    """Kinds from most to least frequent over ``scenes`` (ties in kind order)."""
    counts = Counter(k for s in scenes for k in s.kinds())
    return sorted(KINDS, key=lambda k: (-counts[k], KINDS.index(k)))


def pope_rows(seed: int, n: int, split: str = EVAL_SPLIT) -> tuple[list[dict], list[dict]]:
    """POPE rows (per image and category one ``yes`` and one ``no`` question) and the scenes."""
    rngs = [item_rng(seed, split, "pope", i) for i in range(n)]
    scenes = [sample_scene(rng) for rng in rngs]
    ranking = kind_ranking(scenes)
    rows, meta, qid = [], [], 0
    for i, (rng, scene) in enumerate(zip(rngs, scenes)):
        name = f"world_{i:05d}.png"
        image = _image(name, scene)
        meta.append({"image": name, **scene.to_dict()})
        for category in POPE_CATEGORIES:
            pairs = [(_pick(rng, scene.kinds()), "yes"), (pope_absent(rng, scene, category, ranking), "no")]
            for (colour, shape), answer in pairs:
                qid += 1
                rows.append({"id": str(qid), "question_id": str(qid), "question": L.pope_question(colour, shape),
                             "answer": answer, "image_source": name, "image": image, "category": category})
    return rows, meta


# ------------------------------------------------------------------ MME

def mme_pair(rng: np.random.Generator, category: str) -> tuple[Scene, list[tuple[str, str]]]:
    """A scene and its two questions ``[(question, "Yes"), (question, "No")]`` of one MME category."""
    if category == "existence":
        scene = sample_scene(rng)
        present = set(scene.kinds())
        yes, no = _pick(rng, scene.kinds()), _pick(rng, [k for k in KINDS if k not in present])
        return scene, [(L.mme_existence(*yes), "Yes"), (L.mme_existence(*no), "No")]
    if category == "count":
        scene = sample_scene(rng, allow_repeats=True)
        n = len(scene.objects)
        wrong = _pick(rng, [m for m in L.NUMBER_WORDS if m != n])
        return scene, [(L.mme_count(L.count_word(n, rng)), "Yes"), (L.mme_count(L.count_word(wrong, rng)), "No")]
    if category == "color":
        while True:  # needs a shape that appears exactly once
            scene = sample_scene(rng)
            single = [s for s in SHAPES if sum(o.shape == s for o in scene.objects) == 1]
            if single:
                break
        shape = _pick(rng, single)
        colour = next(o.colour for o in scene.objects if o.shape == shape)
        other = _pick(rng, [c for c in COLOURS if c != colour])
        return scene, [(L.mme_color(shape, colour), "Yes"), (L.mme_color(shape, other), "No")]
    if category == "position":
        scene = sample_scene(rng)
        obj = _pick(rng, scene.objects)
        other = _pick(rng, [c for c in CELLS if c != obj.cell])
        return scene, [(L.mme_position(obj.colour, obj.shape, obj.cell), "Yes"),
                       (L.mme_position(obj.colour, obj.shape, other), "No")]
    raise ValueError(f"MME category must be one of {MME_CATEGORIES}, not {category!r}")


def mme_rows(seed: int, n: int, split: str = EVAL_SPLIT) -> tuple[list[dict], list[dict]]:
    """MME rows: image ``i`` has category ``i mod 4`` and two questions (Yes and No, random order)."""
    rows, meta = [], []
    for i in range(n):
        rng = item_rng(seed, split, "mme", i)
        category = MME_CATEGORIES[i % len(MME_CATEGORIES)]
        scene, pair = mme_pair(rng, category)
        name = f"{category}/world_{i:05d}.png"
        image = _image(name, scene)
        meta.append({"image": name, **scene.to_dict()})
        for question, answer in [pair[int(j)] for j in rng.permutation(2)]:
            rows.append({"question_id": name, "image": image, "question": question, "answer": answer,
                         "category": category})
    return rows, meta


# ------------------------------------------------------------------ Flickr30k

def flickr30k_rows(seed: int, n: int, split: str = EVAL_SPLIT) -> tuple[list[dict], list[dict]]:
    """Captioning rows: five reference captions per image."""
    rows, meta = [], []
    for i in range(n):
        rng = item_rng(seed, split, "flickr30k", i)
        scene = sample_scene(rng)
        img_id = str(SPLIT_CODES[split] * 10_000_000 + i)
        name = f"{img_id}.png"
        meta.append({"image": name, **scene.to_dict()})
        rows.append({"image": _image(name, scene), "caption": L.captions(scene, rng),
                     "sentids": [str(int(img_id) * 5 + k) for k in range(5)], "img_id": img_id, "filename": name})
    return rows, meta


# ------------------------------------------------------------------ text tasks

def gsm8k_rows(seed: int, n: int, split: str = EVAL_SPLIT) -> list[dict]:
    return [gsm8k_problem(item_rng(seed, split, "gsm8k", i)) for i in range(n)]


def math500_rows(seed: int, n: int, split: str = EVAL_SPLIT) -> list[dict]:
    rows = []
    for i in range(n):
        row = math_problem(item_rng(seed, split, "math500", i))
        row["unique_id"] = f"{split}/{row['subject'].lower()}/{i}.json"
        rows.append({k: row[k] for k in JSONL["math500"]})
    return rows


def t2i_rows(seed: int, n: int, split: str = EVAL_SPLIT) -> list[dict]:
    """Text-to-image prompts (one or two objects, cells optional), scored with the world oracle."""
    rows = []
    for i in range(n):
        prompt, category = L.t2i_prompt(item_rng(seed, split, "t2i", i))
        rows.append({"id": f"w{i:05d}", "prompt": prompt, "category": category})
    return rows


# ------------------------------------------------------------------ writing

def write_parquet(rows: list[dict], task: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=PARQUET[task]), path)
    return path


def write_jsonl(rows: Iterable[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def write_tasks(out: str | Path, seed: int = DEFAULT_EVAL_SEED, n: int = 100, split: str = EVAL_SPLIT,
                fewshot_seed: int = DEFAULT_TRAIN_SEED, fewshot_n: int = 20) -> dict:
    """Write every task file under ``out``; returns the manifest (also written as ``manifest.json``)."""
    out = Path(out)
    files = {}
    for task, build in (("pope", pope_rows), ("mme", mme_rows), ("flickr30k", flickr30k_rows)):
        rows, meta = build(seed, n, split)
        files[task] = str(write_parquet(rows, task, out / task / f"{TASK_FILE}.parquet").relative_to(out))
        write_jsonl(meta, out / task / "scenes.jsonl")
    files["gsm8k"] = str(write_jsonl(gsm8k_rows(seed, n, split), out / "gsm8k" / f"{TASK_FILE}.jsonl").relative_to(out))
    write_jsonl(gsm8k_rows(fewshot_seed, fewshot_n, TRAIN_SPLIT), out / "gsm8k" / "train.jsonl")
    files["math500"] = str(write_jsonl(math500_rows(seed, n, split), out / "math500" / f"{TASK_FILE}.jsonl")
                           .relative_to(out))
    files["t2i"] = str(write_jsonl(t2i_rows(seed, n, split), out / "t2i" / "world.jsonl").relative_to(out))
    manifest = {"world": "shapes world v1 (spec/shapes_world.md)", "split": split, "seed": seed, "n": n,
                "fewshot": {"split": TRAIN_SPLIT, "seed": fewshot_seed, "n": fewshot_n}, "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
