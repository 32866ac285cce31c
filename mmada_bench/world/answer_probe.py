"""Teacher-forced yes / no probe of a world checkpoint: does its answer depend on the image and the question?

Each row (the trainer's ``mmu`` schema: ``image_codes``, ``question``, optional ``reasoning``, ``answer`` Yes / No,
optional ``chat_eot``) is laid out exactly as in training (``Prompting.mmu_train`` of ``TextFormatter.row_chat_ids``).
The answer token is the first position where the row and the same row with the other answer differ, and
``P(Yes)`` is the model's probability of the Yes row's token there against the No row's. Two views:

* ``trace visible``: only the answer token is masked (does the answer follow the gold reasoning?);
* ``hidden``: every response token is masked (the one-step answer from the image and the question alone).

Rows: :func:`.sft.yes_no_rows` (any of its layouts) of images never trained on. The result is the accuracy of
``P(Yes) > P(No)`` at the answer token per group (``category``), and the mean ``P(Yes)`` on gold-yes and gold-no
rows: equal means are a model whose answer ignores its input.
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
            group = row.get("category", "all")
            correct[group].append((p > 0.5) == (row["answer"] == "Yes"))
            p_yes[row["answer"]].append(p)
    mean = lambda v: round(sum(v) / len(v), 4) if v else None  # noqa: E731
    return {"groups": {g: {"accuracy": mean([float(c) for c in v]), "n": len(v)} for g, v in sorted(correct.items())},
            "p_yes_on_yes": mean(p_yes["Yes"]), "p_yes_on_no": mean(p_yes["No"]), "n": len(rows)}
