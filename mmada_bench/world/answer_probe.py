"""Teacher-forced yes / no probe of a world checkpoint: does its answer depend on the image and the question?

Each row (the trainer's ``mmu`` schema: ``image_codes``, ``question``, optional ``reasoning``, ``answer`` Yes / No,
optional ``chat_eot``) is laid out exactly as in training (``Prompting.mmu_train`` of ``TextFormatter.row_chat_ids``).
The answer token is the first position where the row and the same row with the other answer differ, and
``P(Yes)`` is the model's probability of the Yes row's token there against the No row's. Two views:

* ``trace visible``: only the answer token is masked (does the answer follow the gold reasoning?);
* ``hidden``: every response token is masked (the one-step answer from the image and the question alone).

The result is the accuracy of ``P(Yes) > P(No)`` at the answer token per group (``task`` / MME category), and the
mean ``P(Yes)`` on gold-yes and gold-no rows: equal means are a model whose answer ignores its input.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

ANSWERS = ("Yes", "No")


def _other(row: dict) -> dict:
    return {**row, "answer": ANSWERS[1 - ANSWERS.index(row["answer"])]}


def answer_probe(model, tokenizer, rows: Sequence[dict], hide_response: bool = False, batch: int = 32,
                 max_text_len: int = 256) -> dict:
    """``{"groups": {group: {"accuracy", "n"}}, "p_yes_on_yes", "p_yes_on_no", "n"}`` of ``rows`` (see module)."""
    import torch

    from mmada_ref.prompting import Prompting
    from mmada_ref.tokens import SpecialTokens
    from mmada_ref.training.data import TextFormatter

    tokens = SpecialTokens.from_tokenizer(tokenizer, model.config)
    fmt, layout = TextFormatter(tokenizer), Prompting(tokens, max_text_len)
    correct, p_yes = defaultdict(list), {"Yes": [], "No": []}
    for start in range(0, len(rows), batch):
        chunk = list(rows[start:start + batch])
        texts, answer_at, pairs = [], [], []
        for row in chunk:
            if row.get("answer") not in ANSWERS:
                raise ValueError(f"probe rows need answer Yes or No, got {row.get('answer')!r}")
            own, other = fmt.row_chat_ids(row, "question"), fmt.row_chat_ids(_other(row), "question")
            at = next(i for i, (a, b) in enumerate(zip(own, other)) if a != b)
            texts.append(own)
            answer_at.append(at)
            pairs.append((own[at], other[at]) if row["answer"] == "Yes" else (other[at], own[at]))
        if max(len(t) for t in texts) + 1 > max_text_len:
            raise ValueError(f"a row is longer than max_text_len={max_text_len} tokens: raise it")
        images = torch.tensor([r["image_codes"] for r in chunk]) + tokens.image_offset
        ids, prompt, _ = layout.mmu_train(images, texts)
        rows_index, at = torch.arange(len(chunk)), torch.tensor(answer_at) + ids.shape[1] - max_text_len
        if not torch.equal(ids[rows_index, at], torch.tensor([t[a] for t, a in zip(texts, answer_at)])):
            raise ValueError("the answer tokens moved in the training layout (a text without <|startoftext|>?)")
        noisy = torch.where(prompt.bool(), ids, torch.full_like(ids, tokens.mask)) if hide_response else ids.clone()
        noisy[rows_index, at] = tokens.mask
        with torch.no_grad():
            logits = model(noisy.to(model.device)).logits.float().cpu()[rows_index, at]
        pair = logits.gather(1, torch.tensor(pairs)).softmax(-1)[:, 0]
        for row, p in zip(chunk, pair.tolist()):
            group = row.get("category") or row.get("task") or "all"
            correct[group].append((p > 0.5) == (row["answer"] == "Yes"))
            p_yes[row["answer"]].append(p)
    mean = lambda v: round(sum(v) / len(v), 4) if v else None  # noqa: E731
    return {"groups": {g: {"accuracy": mean([float(c) for c in v]), "n": len(v)} for g, v in sorted(correct.items())},
            "p_yes_on_yes": mean(p_yes["Yes"]), "p_yes_on_no": mean(p_yes["No"]), "n": len(rows)}


#: the yes / no layouts the probe builds: the official direct answer, and the thinking variant with the verdict
#: trace (``language.yes_no_trace``) or the plain cell listing (``language.cell_listing``) as reasoning
LAYOUTS = ("direct", "think", "think-listing")


def probe_rows(seed: int, n: int, image_fields, layout: str = "direct") -> list[dict]:
    """POPE / MME rows of ``n`` images each (train split, ``seed``: pick one never trained on) in ``layout``, each
    tagged with its ``category`` (``pope`` or the MME category)."""
    from . import language as L
    from .sft import THINK_VARIANT, _yes_no_items, harness_turn

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    rows = []
    for task, doc, scene, fields in _yes_no_items(seed, n, image_fields, f"probe_{layout}"):
        turn, eot, _ = harness_turn(task, {**doc, "image": None}, None if layout == "direct" else THINK_VARIANT)
        row = {**fields, "question": turn, "answer": doc["answer"].capitalize(),
               "category": "pope" if task == "pope" else doc["category"], **({"chat_eot": eot} if eot else {})}
        if layout == "think":
            row["reasoning"] = L.yes_no_trace(doc["question"], scene)[0]
        elif layout == "think-listing":
            row["reasoning"] = L.cell_listing(scene)
        rows.append(row)
    return rows
