"""The unified MMaDA training objective (spec section 4.1): noising of text and image tokens, and the losses.

One batch holds ``[t2i rows | lm rows | mmu rows]``.

* text rows (lm, lm_chat, mmu): per row ``t ~ U(0, 1)``, ``p = (1 - eps) t + eps``, every position masked
  independently with probability ``p``; prompt positions (chat / mmu) are restored afterwards;
* t2i rows: per image ``t ~ U(0, 1)``, ``mask_prob = cos(pi t / 2)`` (clipped below at
  ``min_masking_rate``), exactly ``round(N * mask_prob)`` (>= 1) image tokens masked;
* ``loss_t2i`` = mean CE over the labelled positions after the text prefix (masked image tokens plus
  ``<|soi|>`` / ``<|eoi|>``), no 1/p weighting;
* ``loss_lm`` = sum of masked CE / p, divided by ``B_lm * L`` (stages 1.1 / 1.2) or, with answer lengths,
  sum of masked CE / (p * answer_len) divided by ``B_lm``;
* ``loss_mmu`` = sum of masked CE / (p * answer_len) divided by ``B_mmu``.

Deliberate difference: the official ``forward_process`` adds a *float* 0/1 attention bias (the t2i padding
is only down-weighted, not masked). Here the t2i rows' padding mask is a real key mask. ``loss_lm`` and
``loss_mmu`` are unaffected (their rows are never masked); ``loss_t2i`` differs slightly from the official
value and no longer depends on the padding tokens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Optional

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
TEXT_EPS = 1e-3


# ---------------------------------------------------------------------------------------------
# noising
# ---------------------------------------------------------------------------------------------
@dataclass
class TextNoise:
    """Masked text rows: ``noisy`` ids, per-position mask probability ``p_mask`` and ``answer_lengths``."""

    noisy: torch.Tensor            # [B, L]
    p_mask: torch.Tensor           # [B, L] (the row's p repeated)
    answer_lengths: Optional[torch.Tensor]  # [B, L] number of non-prompt positions, or None (no prompt mask)


def mask_text(input_ids: torch.Tensor, mask_id: int, eps: float = TEXT_EPS, prompt_mask: Optional[torch.Tensor] = None,
              t: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None) -> TextNoise:
    """LLaDA text noising: mask each position with ``p = (1 - eps) t + eps`` (prompt positions restored)."""
    B, L = input_ids.shape
    device = input_ids.device
    if t is None:
        t = torch.rand(B, generator=generator, device=device)
    p = ((1 - eps) * t.to(device).float() + eps)[:, None].expand(B, L)
    masked = torch.rand((B, L), generator=generator, device=device) < p
    noisy = torch.where(masked, torch.full_like(input_ids, mask_id), input_ids)
    answer_lengths = None
    if prompt_mask is not None:
        prompt = prompt_mask.to(device).bool()
        noisy = torch.where(prompt, input_ids, noisy)
        answer_lengths = (~prompt).sum(-1, keepdim=True).expand(B, L)
    return TextNoise(noisy=noisy, p_mask=p.contiguous(), answer_lengths=answer_lengths)


def target_weights(labels: torch.Tensor, weight_by_target: dict) -> Optional[torch.Tensor]:
    """Per-target text-loss weights: a key is a token id (every target with that id) or a tuple of ids (each
    target of every whole occurrence of that sequence); 1 elsewhere. ``None`` when every weight is 1 (the official
    objective, unchanged). Later keys win where occurrences overlap."""
    by_sequence = {(key,) if isinstance(key, int) else tuple(key): float(w) for key, w in weight_by_target.items()
                   if float(w) != 1.0}
    if not by_sequence:
        return None
    weights = torch.ones(labels.shape, device=labels.device)
    for sequence, weight in by_sequence.items():
        weights = torch.where(_occurrences(labels, sequence), weight, weights)
    return weights


def _occurrences(labels: torch.Tensor, sequence: tuple[int, ...]) -> torch.Tensor:
    """Boolean ``labels``-shaped mask of the positions covered by whole occurrences of ``sequence``."""
    n, length = len(sequence), labels.shape[-1]
    covered = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    if n > length:
        return covered
    starts = (labels.unfold(-1, n, 1) == torch.tensor(sequence, device=labels.device)).all(-1)
    for offset in range(n):
        covered[..., offset:offset + starts.shape[-1]] |= starts
    return covered


def cosine_mask_prob(t: torch.Tensor) -> torch.Tensor:
    """MaskGIT cosine schedule ``cos(pi t / 2)``."""
    return torch.cos(t * math.pi * 0.5)


def mask_image(image_ids: torch.Tensor, mask_id: int, min_masking_rate: float = 0.0,
               t: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None):
    """Mask exactly ``max(1, round(N cos(pi t / 2)))`` image tokens per row.

    Returns ``(noisy_ids, labels, mask_prob)``; labels are the clean ids at masked positions, -100 elsewhere.
    """
    B, N = image_ids.shape
    device = image_ids.device
    if t is None:
        t = torch.rand(B, generator=generator, device=device)
    mask_prob = cosine_mask_prob(t.to(device).float()).clip(min=min_masking_rate)
    num_masked = (N * mask_prob).round().clamp(min=1)
    ranks = torch.rand((B, N), generator=generator, device=device).argsort(dim=-1)
    masked = ranks < num_masked[:, None]
    noisy = torch.where(masked, torch.full_like(image_ids, mask_id), image_ids)
    labels = torch.where(masked, image_ids, torch.full_like(image_ids, IGNORE_INDEX))
    return noisy, labels, mask_prob


def condition_dropout(batch: int, prob: float, generator: Optional[torch.Generator] = None) -> list[bool]:
    """Which t2i rows lose their caption (replaced by the empty, unconditional prompt)."""
    if prob <= 0:
        return [False] * batch
    return (torch.rand(batch, generator=generator) < prob).tolist()


# ---------------------------------------------------------------------------------------------
# the batch and its losses
# ---------------------------------------------------------------------------------------------
@dataclass
class LossCoefficients:
    """Per-stage weights of the three losses (``t2i_coeff``, ``lm_coeff``, ``mmu_coeff`` of the official yamls)."""

    t2i: float = 1.0
    lm: float = 1.0
    mmu: float = 1.0


@dataclass
class UnifiedBatch:
    """Already-noised rows of one step, grouped ``[t2i | lm | mmu]`` (each group may be empty).

    ``attention_mask`` is the key-padding mask (t2i prefix padding = 0, everything else 1). Groups may have
    different sequence lengths; rows of one group share one length.
    """

    t2i_ids: Optional[torch.Tensor] = None
    t2i_labels: Optional[torch.Tensor] = None
    t2i_mask: Optional[torch.Tensor] = None
    t2i_prefix_len: int = 0            # max_seq_length + 1 (logits from here on are scored)
    lm_ids: Optional[torch.Tensor] = None
    lm_labels: Optional[torch.Tensor] = None
    lm_p_mask: Optional[torch.Tensor] = None
    lm_answer_lengths: Optional[torch.Tensor] = None  # None -> normalise by B * L
    mmu_ids: Optional[torch.Tensor] = None
    mmu_labels: Optional[torch.Tensor] = None
    mmu_p_mask: Optional[torch.Tensor] = None
    mmu_answer_lengths: Optional[torch.Tensor] = None
    lm_loss_weights: Optional[torch.Tensor] = None   # [B, L] per-target weights (None = all 1, the official loss)
    mmu_loss_weights: Optional[torch.Tensor] = None
    extras: dict = field(default_factory=dict)

    def to(self, device) -> "UnifiedBatch":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return replace(self, **moved)

    def sizes(self) -> tuple[int, int, int]:
        return tuple(0 if x is None else int(x.shape[0]) for x in (self.t2i_ids, self.lm_ids, self.mmu_ids))


def _group_logits(model, batch: UnifiedBatch, pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Logits per group from ONE forward (DDP-safe); shorter groups are right-padded with masked keys.

    Right padding leaves RoPE positions and, with the key mask, every real position's output unchanged.
    """
    groups = [(name, ids, mask) for name, ids, mask in (
        ("t2i", batch.t2i_ids, batch.t2i_mask), ("lm", batch.lm_ids, None), ("mmu", batch.mmu_ids, None))
        if ids is not None and ids.shape[0] > 0]
    if not groups:
        raise ValueError("the batch has no rows: set data.batch_size for at least one of t2i, lm, mmu")
    width = max(ids.shape[1] for _, ids, _ in groups)
    all_ids, all_masks = [], []
    for _, ids, mask in groups:
        mask = torch.ones_like(ids) if mask is None else mask.to(ids.device).long()
        extra = width - ids.shape[1]
        all_ids.append(F.pad(ids, (0, extra), value=pad_id))
        all_masks.append(F.pad(mask, (0, extra), value=0))
    logits = model(torch.cat(all_ids), attention_mask=torch.cat(all_masks)).logits
    parts = logits.split([ids.shape[0] for _, ids, _ in groups])
    return {name: part[:, : ids.shape[1]] for (name, ids, _), part in zip(groups, parts)}


def _text_loss(logits, noisy, labels, p_mask, answer_lengths, mask_id, weights=None) -> torch.Tensor:
    """Sum over masked positions of CE / p (/ answer length), normalised as in the official code; ``weights``
    ``[B, L]`` scale each target's term (see :func:`target_weights`)."""
    B, L = noisy.shape
    masked = noisy == mask_id
    ce = F.cross_entropy(logits[masked].float(), labels[masked], ignore_index=IGNORE_INDEX, reduction="none")
    ce = ce / p_mask[masked]
    if weights is not None:
        ce = ce * weights[masked]
    if answer_lengths is None:
        return ce.sum() / (B * L)
    return (ce / answer_lengths[masked]).sum() / B


def unified_losses(model, batch: UnifiedBatch, mask_id: int) -> dict[str, torch.Tensor]:
    """``loss_t2i``, ``loss_lm``, ``loss_mmu`` of one batch (an empty group gives a zero loss)."""
    logits = _group_logits(model, batch)
    anchor = next(iter(logits.values()))
    zero = anchor.new_zeros((), dtype=torch.float32)
    out = {"loss_t2i": zero, "loss_lm": zero, "loss_mmu": zero}
    if "t2i" in logits:
        start = batch.t2i_prefix_len
        lg, lab = logits["t2i"][:, start:], batch.t2i_labels[:, start:]
        out["loss_t2i"] = F.cross_entropy(lg.reshape(-1, lg.shape[-1]).float(), lab.reshape(-1), ignore_index=IGNORE_INDEX)
    if "lm" in logits:
        out["loss_lm"] = _text_loss(logits["lm"], batch.lm_ids, batch.lm_labels, batch.lm_p_mask,
                                    batch.lm_answer_lengths, mask_id, batch.lm_loss_weights)
    if "mmu" in logits:
        out["loss_mmu"] = _text_loss(logits["mmu"], batch.mmu_ids, batch.mmu_labels, batch.mmu_p_mask,
                                     batch.mmu_answer_lengths, mask_id, batch.mmu_loss_weights)
    return out


def total_loss(losses: dict[str, torch.Tensor], coeffs: LossCoefficients) -> torch.Tensor:
    """``t2i·loss_t2i + lm·loss_lm + mmu·loss_mmu``."""
    return coeffs.t2i * losses["loss_t2i"] + coeffs.lm * losses["loss_lm"] + coeffs.mmu * losses["loss_mmu"]


def forward_process_losses(model, input_ids, labels, batch_size_t2i: int, batch_size_lm: int, batch_size_mmu: int,
                           max_seq_length: int, p_mask_lm, p_mask_mmu, answer_lengths, t2i_masks,
                           answer_lengths_lm=None, mask_id: Optional[int] = None) -> dict[str, torch.Tensor]:
    """The official ``MMadaModelLM.forward_process`` signature on already-noised inputs.

    Splits the concatenated ``[t2i | lm | mmu]`` batch into a :class:`UnifiedBatch` and returns its losses
    (t2i padding masked, see the module docstring). ``mask_id`` defaults to ``model.config.mask_token_id``.
    """
    mask_id = model.config.mask_token_id if mask_id is None else mask_id
    t = lambda x: None if x is None else torch.as_tensor(x)  # noqa: E731
    ids, lab = torch.as_tensor(input_ids).long(), torch.as_tensor(labels).long()
    a, b = batch_size_t2i, batch_size_t2i + batch_size_lm
    if ids.shape[0] != b + batch_size_mmu:
        raise ValueError(f"input_ids has {ids.shape[0]} rows, expected {a}+{batch_size_lm}+{batch_size_mmu}")
    batch = UnifiedBatch(
        t2i_ids=ids[:a], t2i_labels=lab[:a], t2i_mask=None if t2i_masks is None else t(t2i_masks).long(),
        t2i_prefix_len=max_seq_length + 1,
        lm_ids=ids[a:b], lm_labels=lab[a:b], lm_p_mask=t(p_mask_lm), lm_answer_lengths=t(answer_lengths_lm),
        mmu_ids=ids[b:], mmu_labels=lab[b:], mmu_p_mask=t(p_mask_mmu), mmu_answer_lengths=t(answer_lengths))
    return unified_losses(model, batch, mask_id)
