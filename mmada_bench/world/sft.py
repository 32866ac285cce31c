"""Stage-2 rows in the harness's own prompt layouts.

Every evaluation format is trained in exactly the prompt the harness builds for an MMaDA checkpoint: the
row's user turn is rendered by :func:`mmada_bench.cards.prompts.build_prompt` from the task card's default
variant for the ``mmada`` family (0-shot), with that variant's end-of-turn string (``chat_eot``; the
VLMEvalKit layout of POPE / MME closes the turn with the literal text ``<eot_id>``). Items come from the
task builders of :mod:`.tasks` on the ``train`` split, so training and evaluation share schemas, never seeds.
"""
from __future__ import annotations

import functools
import io
from typing import Callable, Optional

from mmada_bench.cards.discovery import get_task
from mmada_bench.cards.prompts import build_prompt
from mmada_ref.text_tokenizer import THINK_SYSTEM_PROMPT

from . import language as L
from .scene import Scene
from .seeds import TRAIN_SPLIT, item_rng
from .tasks import flickr30k_rows, gsm8k_rows, math500_rows, mme_rows, pope_rows

MODEL_FAMILY = "mmada"
THINK_SHARE = 0.25  # image questions asked with the thinking system prompt (objects seen, then the answer)
THINK_VARIANT = "mmada-app-think"  # the POPE / MME variant the world model answers in (app.py's thinking mode)


@functools.lru_cache(maxsize=None)
def _card_and_variant(task: str, variant: Optional[str] = None):
    card = get_task(task)
    return card, card.variant(variant or card.default_variant_for(MODEL_FAMILY))


def harness_turn(task: str, doc: dict, variant: Optional[str] = None) -> tuple[str, Optional[str], bool]:
    """(prompt text or user turn, end-of-turn string, chat?) of a 0-shot item as the harness asks it (the card's
    default variant for MMaDA, or ``variant``)."""
    card, variant = _card_and_variant(task, variant)
    prompt, messages = build_prompt(card, variant, doc, [])
    if messages is None:
        return prompt, None, False
    return messages[-1]["content"], variant.chat_eot, True


def direct_chat_eot() -> str:
    """The end-of-turn string closing the direct (answer-first) POPE / MME turns (``<|eot_id|>`` when the
    variant keeps the template's own)."""
    return _card_and_variant("pope")[1].chat_eot or "<|eot_id|>"


def direct_preset() -> str:
    """The sampler preset the harness answers a direct POPE / MME question with (the card's default variant)."""
    card, variant = _card_and_variant("pope")
    return variant.preset or card.preset


def text_rows(seed: int, n: int) -> list[dict]:
    """GSM8K-format rows in the chat layout (``<think>`` steps, then ``#### N``) and MATH500-format rows in
    Minerva's plain layout (``Problem: ... Solution: ... \\boxed{}``), ``n`` of each."""
    rows = []
    for doc in gsm8k_rows(seed, n, TRAIN_SPLIT):
        turn, eot, _ = harness_turn("gsm8k", doc)
        *steps, final = doc["answer"].split("\n")
        rows.append({"prompt": turn, "reasoning": "\n".join(steps), "answer": final,
                     **({"chat_eot": eot} if eot else {})})
    for doc in math500_rows(seed, n, TRAIN_SPLIT):
        prompt, _, chat = harness_turn("math500", doc)
        if chat:
            raise ValueError("the math500 card's MMaDA variant became a chat layout: update world/sft.py")
        rows.append({"text": f"{prompt} {doc['solution']}"})
    return rows


ImageFields = Callable[[list[bytes], str], list[dict]]


def _yes_no_items(seed: int, n: int, image_fields: ImageFields, stream: str):
    """``(task, doc, scene, image row fields)`` of the POPE and MME items of ``n`` images each."""
    for task, build in (("pope", pope_rows), ("mme", mme_rows)):
        docs, scenes = build(seed, n, TRAIN_SPLIT)
        scene_of = {m["image"]: Scene.from_dict(m) for m in scenes}
        firsts = _first_per_image(docs)
        fields = dict(zip((d["image"]["path"] for d in firsts),
                          image_fields([d["image"]["bytes"] for d in firsts], f"{stream}_{task}")))
        for doc in docs:
            yield task, doc, scene_of[doc["image"]["path"]], fields[doc["image"]["path"]]


def mmu_rows(seed: int, n: int, image_fields: ImageFields) -> list[dict]:
    """POPE / MME yes-no rows and Flickr30k caption rows (``n`` images each), ``THINK_SHARE`` of the yes-no
    questions asked with the thinking system prompt; ``image_fields(pngs, stream)`` gives each image's row
    fields (``{"image_codes"}`` or ``{"image": path}``)."""
    rng = item_rng(seed, TRAIN_SPLIT, "sft/think", 0)
    rows = []
    for task, doc, scene, fields in _yes_no_items(seed, n, image_fields, "stage2"):
        turn, eot, _ = harness_turn(task, {**doc, "image": None})
        row = {**fields, "question": turn, "answer": doc["answer"].capitalize(), "chat_eot": eot}
        if rng.random() < THINK_SHARE:
            row.update(question=f"{THINK_SYSTEM_PROMPT}\n\n{turn}", reasoning=L.seen_objects(scene))
        rows.append({k: v for k, v in row.items() if v is not None})
    docs, _ = flickr30k_rows(seed, n, TRAIN_SPLIT)
    for doc, image in zip(docs, image_fields([d["image"]["bytes"] for d in docs], "stage2_flickr30k")):
        turn, eot, _ = harness_turn("flickr30k", {**doc, "image": None})
        for caption in doc["caption"]:
            rows.append({**image, "question": turn, "answer": caption,
                         **({"chat_eot": eot} if eot else {})})
    return rows


#: yes / no row layouts: the official direct answer (the card's default MMaDA variant, VLMEvalKit's turn), and the
#: :data:`THINK_VARIANT` with the verdict trace (:func:`~.language.yes_no_trace`) or the plain cell listing
#: (:func:`~.language.cell_listing`) as reasoning
YES_NO_LAYOUTS = ("direct", "think", "think-listing")


def yes_no_rows(seed: int, n: int, image_fields: ImageFields, layout: str = "direct") -> list[dict]:
    """POPE / MME yes-no rows (``n`` images each, train split) in ``layout`` (:data:`YES_NO_LAYOUTS`), answer
    ``Yes`` / ``No``, each tagged with its ``category`` (``pope`` or the MME category)."""
    if layout not in YES_NO_LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: choose one of {', '.join(YES_NO_LAYOUTS)}")
    rows = []
    for task, doc, scene, fields in _yes_no_items(seed, n, image_fields, f"stage2_{layout}"):
        turn, eot, _ = harness_turn(task, {**doc, "image": None}, None if layout == "direct" else THINK_VARIANT)
        row = {**fields, "question": turn, "answer": doc["answer"].capitalize(),
               "category": "pope" if task == "pope" else doc["category"], **({"chat_eot": eot} if eot else {})}
        if layout == "think":
            row["reasoning"] = L.yes_no_trace(doc["question"], scene)[0]
        elif layout == "think-listing":
            row["reasoning"] = L.cell_listing(scene)
        rows.append(row)
    return rows


def _first_per_image(docs: list[dict]) -> list[dict]:
    seen, first = set(), []
    for doc in docs:
        if doc["image"]["path"] not in seen:
            seen.add(doc["image"]["path"])
            first.append(doc)
    return first


def png_codes(magvit_dir, batch: int = 256) -> ImageFields:
    """``image_fields`` giving ``{"image_codes"}``: MAGVIT codes of images preprocessed as the harness does."""
    import torch
    from PIL import Image

    from mmada_ref.image_processing import preprocess_images
    from mmada_ref.magvit import MAGVITv2

    vq = MAGVITv2.from_pretrained(magvit_dir).eval()

    def encode(pngs: list[bytes], stream: str = "") -> list[dict]:
        out = []
        with torch.no_grad():
            for start in range(0, len(pngs), batch):
                images = [Image.open(io.BytesIO(b)).convert("RGB") for b in pngs[start:start + batch]]
                side = images[0].size[0]
                out.extend({"image_codes": c} for c in vq.get_code(preprocess_images(images, side)).tolist())
        return out

    return encode


def png_files(root) -> ImageFields:
    """``image_fields`` giving ``{"image"}``: the PNG saved under ``root/<stream>/`` (absolute path)."""
    from pathlib import Path

    root = Path(root).resolve()

    def save(pngs: list[bytes], stream: str) -> list[dict]:
        (root / stream).mkdir(parents=True, exist_ok=True)
        out = []
        for i, png in enumerate(pngs):
            path = root / stream / f"{i:06d}.png"
            path.write_bytes(png)
            out.append({"image": str(path)})
        return out

    return save


def grpo_prompts(sft_rows: list[dict], kind: str) -> list[dict]:
    """Stage-3 prompt rows from stage-2 rows: the same harness-layout prompts with the gold answer only
    (``text``: GSM8K chat rows, answer = the number; ``mmu``: the yes/no questions, reasoning dropped)."""
    out = []
    for row in sft_rows:
        if kind == "text" and row.get("prompt") is not None:
            out.append({"prompt": row["prompt"], "answer": row["answer"].removeprefix("#### ").strip(),
                        **({"chat_eot": row["chat_eot"]} if row.get("chat_eot") else {})})
        elif kind == "mmu" and row["answer"] in ("Yes", "No"):
            out.append({k: v for k, v in row.items() if k != "reasoning"})
    return out


def captions(mmu: list[dict]) -> list[dict]:
    """The Flickr30k caption rows of ``mmu`` (answers of many tokens, decoded over many steps)."""
    return [row for row in mmu if not row.get("reasoning") and row["answer"] not in ("Yes", "No")]


def direct(mmu: list[dict]) -> list[dict]:
    """The rows of ``mmu`` asked without the thinking prompt (answer first): stage ``stage2_mmu``'s data."""
    return [row for row in mmu if not row.get("reasoning")]
