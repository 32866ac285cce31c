"""Small sampling primitives shared by the text and image samplers (same RNG calls as the official code)."""
from __future__ import annotations

import math
from typing import Optional

import torch


def num_transfer_tokens(block_mask: torch.Tensor, steps: int) -> torch.Tensor:
    """Tokens to unmask per step ``[B, steps]``: ``n // steps`` each, the first ``n % steps`` steps get one more."""
    n = block_mask.sum(dim=1, keepdim=True)
    base, remainder = n // steps, n % steps
    out = base.expand(-1, steps).clone()
    out += (torch.arange(steps, device=block_mask.device)[None, :] < remainder).long()
    return out


def gumbel_argmax(logits: torch.Tensor, temperature: float, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
    """argmax of ``exp(logits) / (-log U)^T`` in float64 (= argmax of logits + T·Gumbel); T=0 is plain argmax.

    ``U`` is ``torch.rand_like(logits.double())`` unless ``noise`` (same shape) is given.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.double()
    u = torch.rand_like(logits) if noise is None else noise
    return (logits.exp() / (-torch.log(u)) ** temperature).argmax(dim=-1)


def cosine_schedule(t: torch.Tensor | float) -> torch.Tensor:
    """MaskGIT cosine mask ratio ``cos(t·π/2)``."""
    return torch.cos(torch.as_tensor(t) * math.pi * 0.5)


def get_mask_schedule(name: str):
    """Mask-ratio schedules by name: cosine, linear, powX (e.g. pow2), sigmoid.

    As the official ``models/sampling.py``: linear, powX and sigmoid are clamped to ``[1e-6, 1]``;
    cosine is not clamped (``cos(π/2)`` is ``-4.4e-8`` in float32).
    """
    if name in ("cosine", "cosine_schedule"):
        return cosine_schedule
    if name == "linear":
        return lambda t: (1 - torch.as_tensor(t)).clamp(min=1e-6, max=1.0)
    if name.startswith("pow"):
        try:
            exp = float(name[3:])
        except ValueError:
            raise ValueError(f"bad mask schedule {name!r}: powX needs a number, e.g. pow2 or pow0.5") from None
        return lambda t: (1.0 - torch.as_tensor(t) ** exp).clamp(min=1e-6, max=1.0)
    if name == "sigmoid":
        def sigmoid(t, start=-3.0, end=3.0, tau=1.0, clip_min=1e-6):
            t = torch.as_tensor(t)
            lo, hi = torch.sigmoid(torch.tensor(start / tau)), torch.sigmoid(torch.tensor(end / tau))
            return torch.clip((hi - torch.sigmoid((t * (end - start) + start) / tau)) / (hi - lo), clip_min, 1.0)
        return sigmoid
    raise ValueError(f"unknown mask schedule {name!r}; use cosine, linear, powX or sigmoid")


def _log(t: torch.Tensor, eps: float = 1e-20) -> torch.Tensor:
    return torch.log(t.clamp(min=eps))


def gumbel_noise(like: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``-log(-log U)`` with ``U = zeros_like(like).uniform_(0, 1, generator)`` (official ``gumbel_noise``)."""
    u = torch.zeros_like(like).uniform_(0, 1, generator=generator)
    return -_log(-_log(u))


def mask_by_random_topk(mask_len: torch.Tensor, probs: torch.Tensor, temperature: float = 1.0,
                        generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Re-mask the ``mask_len`` least confident positions, confidence = log p + T·Gumbel (MaskGIT)."""
    confidence = _log(probs) + temperature * gumbel_noise(probs, generator=generator)
    cut_off = torch.sort(confidence, dim=-1).values.gather(1, mask_len.long())
    return confidence < cut_off
