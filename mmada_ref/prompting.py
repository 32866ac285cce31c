"""Sequence layouts of MMaDA (the official ``UniversalPrompting``), on token-id lists.

``max_text_len`` is the official argument (``config.dataset.preprocessing.max_seq_length``); the text
prefix of a t2i row is ``max_text_len + 1`` long, so t2i and mmu rows both have length
``max_text_len + 3 + N`` and can share a batch.

* t2i:   ``[iPAD]*P <|t2i|> <bos> text <eos> <|soi|> img*N <|eoi|>`` (left-padded, mask 0 on pads)
* uncond t2i: the same with empty text: ``[iPAD]*P <|t2i|> <bos> <eos> <|soi|> img <|eoi|>``
* mmu (training): ``<|mmu|> <|soi|> img*N <|eoi|> <bos> text <eos> <eos>*pad`` (text part = max_text_len)
* mmu (inference): ``<|mmu|> <|soi|> img*N <|eoi|>`` + chat-template ids, no padding
* lm:    ``<bos> text <eos> <eos>*pad`` (the official attention mask is all ones, padding included)
* chat:  same ids as lm; ``prompt_mask`` = 1 through the last ``<|end_header_id|>``
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from .tokens import SpecialTokens

IGNORE_INDEX = -100


@dataclass
class Prompting:
    """Builds the official token layouts for one special-token layout and text length."""

    tokens: SpecialTokens
    max_text_len: int

    # --- helpers ------------------------------------------------------------------------------
    def _with_bos(self, ids: Sequence[int]) -> list[int]:
        ids = [int(i) for i in ids]
        return ids if ids and ids[0] == self.tokens.bos else [self.tokens.bos] + ids

    def _t2i_prefix(self, text_ids: Sequence[int]) -> tuple[list[int], int]:
        """``[iPAD]*P <|t2i|> <bos> text <eos>`` of length max_text_len+1 and its pad count."""
        tok, width = self.tokens, self.max_text_len + 1
        ids = [tok.t2i] + self._with_bos(text_ids) + [tok.eos]
        if len(ids) > width:
            ids = ids[: width - 1] + [tok.eos]
        pads = width - len(ids)
        return [tok.ipad] * pads + ids, pads

    # --- text-to-image --------------------------------------------------------------------------
    def t2i(self, text_ids: Sequence[Sequence[int]], image_ids: torch.Tensor,
            pad_to_longest: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Generation layout: returns ``(input_ids, attention_mask)``, both ``[B, prefix + N + 2]``.

        ``image_ids`` ``[B, N]`` holds image token ids (or the mask id to generate). With
        ``pad_to_longest`` the text prefix is padded only to the batch's longest prompt (a faster
        deviation from the official fixed ``max_text_len + 1``).
        """
        tok = self.tokens
        prefixes = [self._t2i_prefix(t) for t in text_ids]
        if pad_to_longest:
            cut = min(p for _, p in prefixes)
            prefixes = [(ids[cut:], pads - cut) for ids, pads in prefixes]
        rows, masks = [], []
        for (prefix, pads), img in zip(prefixes, image_ids.tolist()):
            rows.append(prefix + [tok.soi] + img + [tok.eoi])
            masks.append([0] * pads + [1] * (len(rows[-1]) - pads))
        return torch.tensor(rows, dtype=torch.long), torch.tensor(masks, dtype=torch.long)

    def t2i_uncond(self, batch: int, image_ids: torch.Tensor, prefix_len: Optional[int] = None):
        """Unconditional (CFG) rows: ``t2i`` of empty texts."""
        ids, mask = self.t2i([[] for _ in range(batch)], image_ids)
        if prefix_len is not None:  # same width as a pad_to_longest conditional batch
            cut = ids.shape[1] - (prefix_len + image_ids.shape[1] + 2)
            ids, mask = ids[:, cut:], mask[:, cut:]
        return ids, mask

    def t2i_train(self, text_ids: Sequence[Sequence[int]], image_ids: torch.Tensor, labels: torch.Tensor,
                  cond_dropout: Optional[Sequence[bool]] = None):
        """Training layout: ``(input_ids, attention_mask, labels)``; dropped rows get the empty prompt."""
        tok = self.tokens
        if cond_dropout is not None:
            text_ids = [[tok.bos] if drop else t for t, drop in zip(text_ids, cond_dropout)]
        ids, mask = self.t2i(text_ids, image_ids)
        width = self.max_text_len + 1
        prefix_labels = torch.where(ids[:, :width] == tok.ipad, IGNORE_INDEX, ids[:, :width])
        lab = torch.cat([prefix_labels, torch.full((len(ids), 1), tok.soi), labels.long(),
                         torch.full((len(ids), 1), tok.eoi)], dim=1)
        return ids, mask, lab

    # --- understanding --------------------------------------------------------------------------
    def mmu_train(self, image_ids: torch.Tensor, text_ids: Sequence[Sequence[int]]):
        """Training layout: ``(input_ids, prompt_mask, labels)`` of length ``3 + N + max_text_len``."""
        tok, width = self.tokens, self.max_text_len
        rows, prompt_masks, labels = [], [], []
        for img, text in zip(image_ids.tolist(), text_ids):
            body = self._with_bos(text) + [tok.eos]
            body = body[: width - 1] + [tok.eos] if len(body) > width else body + [tok.eos] * (width - len(body))
            head = [tok.mmu, tok.soi] + img + [tok.eoi]
            rows.append(head + body)
            prompt_masks.append([1] * len(head) + _through_last(body, tok.end_header))
            labels.append([IGNORE_INDEX] * len(head) + body)
        return (torch.tensor(rows), torch.tensor(prompt_masks), torch.tensor(labels))

    def mmu_inference(self, image_ids: Sequence[int], prompt_ids: Sequence[int]) -> list[int]:
        """Inference layout: ``<|mmu|> <|soi|> img <|eoi|>`` + chat-template ids (no padding)."""
        tok = self.tokens
        return [tok.mmu, tok.soi] + [int(i) for i in image_ids] + [tok.eoi] + [int(i) for i in prompt_ids]

    # --- text ------------------------------------------------------------------------------------
    def lm(self, text_ids: Sequence[Sequence[int]], max_seq_len: int):
        """``(input_ids, attention_mask, labels)``; mask is all ones as in the official code."""
        rows = [self._lm_row(t, max_seq_len) for t in text_ids]
        ids = torch.tensor(rows)
        return ids, torch.ones_like(ids), ids.clone()

    def lm_chat(self, text_ids: Sequence[Sequence[int]], max_seq_len: int):
        """``(input_ids, prompt_mask, labels)``: prompt = through the last ``<|end_header_id|>``."""
        rows = [self._lm_row(t, max_seq_len) for t in text_ids]
        prompt = [_through_last(r, self.tokens.end_header) for r in rows]
        ids = torch.tensor(rows)
        return ids, torch.tensor(prompt), ids.clone()

    def _lm_row(self, text: Sequence[int], max_seq_len: int) -> list[int]:
        eos = self.tokens.eos
        row = self._with_bos(text) + [eos]
        if len(row) > max_seq_len:
            return row[: max_seq_len - 1] + [eos]
        return row + [eos] * (max_seq_len - len(row))


def _through_last(ids: Sequence[int], token: int) -> list[int]:
    """1 up to and including the last ``token`` in ``ids`` (all 0 when absent)."""
    last = max((i for i, t in enumerate(ids) if t == token), default=-1)
    return [1] * (last + 1) + [0] * (len(ids) - last - 1)


def left_pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token rows to one width: ``(ids [B, W], attention mask [B, W])`` with 1 on real tokens."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + list(r) for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return ids, mask
