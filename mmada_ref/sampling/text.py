"""The semi-autoregressive masked-diffusion text sampler (plain text and image understanding alike).

One implementation of LLaDA's ``generate`` / MMaDA's ``mmu_generate``, with Fast-dLLM-style
options:

* vanilla: every step runs the whole sequence (official algorithm, token-exact with the goldens);
* ``cache="prefix"``: at each block start one full forward refreshes the K/V cache and decodes; the
  following steps run the active block and everything after it, reading the prefix from the cache;
* ``cache="dual"``: the following steps run only the active block, reading prefix *and* suffix K/V;
* ``threshold``: unmask every masked position of the block whose confidence exceeds it (at least one);
  ``factor``: accept the n best while the n-th confidence is >= 1 - factor/(n+1).

Per call, the K/V cache buffers, the prepared padding mask and the RoPE tables are built once and
reused by every step; at temperature 0 the float64 softmax runs only on the still-masked rows.
``compile_step=True`` runs the fixed-shape dual-cache block step through ``torch.compile``.

Early stop is per row: after each block, a row that has produced a stop id (or satisfies
``should_stop``) leaves the running batch (its canvas is final, as if it had run alone), the others
go on with the same columns, so the batch shrinks and no work is spent on finished rows.

Confidence and top-k are computed over the active block only (the official code runs a float64
softmax over the whole sequence; masks outside the active block never compete there either, except
masks placed inside the prompt, which this sampler leaves alone: a deliberate difference).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from ..modeling import KVCache
from .presets import TextSamplerSettings
from .primitives import gumbel_argmax, num_transfer_tokens
from .stats import SamplerStats


@dataclass
class TextSample:
    """Result of :func:`generate_text`."""

    sequences: torch.Tensor  # [B, L + gen_length] prompt + generation (unfinished positions stay MASK)
    prompt_length: int
    stats: SamplerStats
    stopped_early: bool = False
    trace: list = field(default_factory=list)  # canvas fed to the model before each call (record_trace=True)

    @property
    def generated(self) -> torch.Tensor:
        return self.sequences[:, self.prompt_length:]


@torch.no_grad()
def generate_text(model, prompt_ids: torch.Tensor, settings: TextSamplerSettings, mask_id: int,
                  attention_mask: Optional[torch.Tensor] = None, stop_token_ids: Sequence[int] = (),
                  should_stop: Optional[Callable[[list[int]], bool]] = None, official_rng: bool = False,
                  record_trace: bool = False, refresh_every: Optional[int] = None,
                  compile_step: bool = False) -> TextSample:
    """Generate ``settings.gen_length`` tokens after left-padded ``prompt_ids`` ``[B, L]``.

    Args:
        mask_id: the ``<|mdm_mask|>`` id (``SpecialTokens.mask``).
        attention_mask: ``[B, L]`` or ``[B, L + gen_length]`` padding mask (1 = real); extended with ones.
        stop_token_ids: after a block, a row that has produced one of these (EOS / EoT) stops and leaves the batch.
        should_stop: per-row predicate on the generated ids (e.g. a decoded stop string), checked after a block.
        official_rng: draw Gumbel noise for the whole logits tensor like the official code (exact RNG parity;
            costly for a real vocabulary), instead of for the active block only.
        record_trace: keep the canvas fed to the model before every call (``[x]`` or ``[x, un_x]`` with CFG).
        refresh_every: with a cache, run a full refreshing forward every this many steps (1 = vanilla).
        compile_step: with ``cache="dual"``, run the block steps through ``torch.compile`` (the model's
            ``compiled_step``; off by default, the first step of each shape compiles).
    """
    s = settings
    _check(s)
    device = prompt_ids.device
    batch, prompt_len = prompt_ids.shape
    total = prompt_len + s.gen_length
    x = torch.full((batch, total), mask_id, dtype=torch.long, device=device)
    x[:, :prompt_len] = prompt_ids
    key_mask = _full_mask(attention_mask, batch, total, device)
    prepare = getattr(model, "prepare_attention_mask", None)
    if key_mask is not None and prepare is not None:
        key_mask = prepare(key_mask, batch)  # converted once, not at every step
    prompt_index = x != mask_id
    stats = SamplerStats(batch_size=batch)
    trace: list = []
    num_blocks = s.gen_length // s.block_length
    steps_per_block = s.steps // num_blocks
    parallel = s.threshold is not None or s.factor is not None
    stop_ids = torch.tensor(sorted(set(stop_token_ids)), device=device, dtype=torch.long)
    stopped = False
    canvas, rows = x, torch.arange(batch)  # the full result; original index of each running row (CPU)
    rows_here = rows.to(device)
    row_calls = torch.zeros(batch, dtype=torch.long)
    nonfinite = torch.zeros(batch, dtype=torch.bool, device=device)  # rows whose logits were ever NaN / inf
    cache = KVCache() if s.cache != "none" else None  # buffers allocated once, refreshed in place
    compiled = bool(compile_step) and s.cache == "dual"
    for b in range(num_blocks):
        start, end = prompt_len + b * s.block_length, prompt_len + (b + 1) * s.block_length
        schedule = None if parallel else num_transfer_tokens(x[:, start:end] == mask_id, steps_per_block)
        step = 0
        while True:
            if parallel and (step >= s.block_length or not (x[:, start:end] == mask_id).any()):
                break
            if not parallel and step >= steps_per_block:
                break
            refresh = cache is None or step == 0 or (refresh_every is not None and step % refresh_every == 0)
            # candidates: masks of the active block, plus (uncached, as the official code) earlier masks
            lo = _first_mask(x[:, :end], mask_id, start) if refresh else start
            masked = x[:, lo:end] == mask_id
            logits = _window_logits(model, x, key_mask, prompt_index, mask_id, s.cfg_scale, lo, end,
                                    cache, refresh, s.cache, stats, trace if record_trace else None, compiled)
            nonfinite[rows_here] |= ~torch.isfinite(logits).flatten(1).all(1)
            x0, conf = _propose(logits, s, x.shape, lo, end, official_rng, masked)
            conf = torch.where(masked, conf, torch.full_like(conf, -torch.inf))
            x0 = torch.where(masked, x0, x[:, lo:end])
            if parallel:
                transfer = _parallel_select(conf, masked, s.threshold, s.factor)
            else:
                transfer = _topk_select(conf, schedule[:, step])
            x[:, lo:end] = torch.where(transfer, x0, x[:, lo:end])
            stats.tokens_per_step.append(int(transfer.sum()))
            stats.rows_per_call.append(x.shape[0])
            step += 1
        row_calls[rows] += step
        if b == num_blocks - 1:
            break
        done = _stopped_rows(x[:, prompt_len:end], stop_ids, should_stop)
        if done.any():
            if x is not canvas:
                canvas[rows_here] = x
            if done.all():
                stopped = True
                break
            keep = (~done).nonzero().squeeze(1)  # finished rows leave the batch; the columns stay as they are
            rows, on_device = rows[keep], keep.to(device)
            rows_here = rows.to(device)
            x, prompt_index = x[on_device], prompt_index[on_device]
            key_mask = None if key_mask is None else key_mask[on_device]
    if x is not canvas:
        canvas[rows_here] = x
    stats.row_nfe, stats.nonfinite_rows = row_calls.tolist(), nonfinite.tolist()
    return TextSample(sequences=canvas, prompt_length=prompt_len, stats=stats, stopped_early=stopped, trace=trace)


# ---------------------------------------------------------------------------------------------
def _check(s: TextSamplerSettings) -> None:
    if s.gen_length % s.block_length:
        raise ValueError(f"gen_length {s.gen_length} must be a multiple of block_length {s.block_length}")
    num_blocks = s.gen_length // s.block_length
    if s.threshold is None and s.factor is None and (s.steps % num_blocks or s.steps < num_blocks):
        raise ValueError(f"steps {s.steps} must be a positive multiple of the number of blocks {num_blocks}")
    if s.cache not in ("none", "prefix", "dual"):
        raise ValueError(f"cache must be none, prefix or dual, not {s.cache!r}")
    if s.cache != "none" and s.cfg_scale > 0:
        raise ValueError("classifier-free guidance is not supported with a K/V cache; use cache='none'")
    if (s.threshold is not None or s.factor is not None) and s.remasking != "low_confidence":
        raise ValueError("threshold/factor parallel decoding needs remasking='low_confidence'")


def _full_mask(attention_mask, batch, total, device):
    if attention_mask is None:
        return None
    mask = attention_mask.to(device)
    if mask.shape[1] < total:
        mask = torch.cat([mask, torch.ones(batch, total - mask.shape[1], dtype=mask.dtype, device=device)], dim=1)
    return None if bool(mask.bool().all()) else mask


def _first_mask(prefix: torch.Tensor, mask_id: int, start: int) -> int:
    """First position before ``start`` that still holds a mask (the model may predict the mask id), else ``start``."""
    stray = (prefix[:, :start] == mask_id).any(dim=0).nonzero()
    return int(stray[0]) if len(stray) else start


def _window_logits(model, x, key_mask, prompt_index, mask_id, cfg_scale, start, end, cache, refresh, cache_mode,
                   stats, trace, compiled=False):
    """Logits ``[B, end-start, V]`` (CFG-combined), using or refreshing the cache."""
    device = x.device
    if cfg_scale > 0:
        un_x = x.clone()
        un_x[prompt_index] = mask_id
        both = torch.cat([x, un_x])
        mask2 = None if key_mask is None else torch.cat([key_mask, key_mask])
        if trace is not None:
            trace.append([x.clone(), un_x])
        with stats.timed_call(device, both.numel()):
            out = model(both, attention_mask=mask2, logits_slice=slice(start, end)).logits
        cond, uncond = out.chunk(2)
        return uncond + (cfg_scale + 1) * (cond - uncond)
    if trace is not None:
        trace.append([x.clone()])
    if cache is None or refresh:
        with stats.timed_call(device, x.numel()):
            return model(x, attention_mask=key_mask, kv_cache=cache, cache_write=cache is not None,
                         logits_slice=slice(start, end)).logits
    window_end = end if cache_mode == "dual" else x.shape[1]
    window = x[:, start:window_end]
    extra = {"compiled_step": True} if compiled else {}
    with stats.timed_call(device, window.numel()):
        out = model(window, attention_mask=key_mask, kv_cache=cache, cache_start=start,
                    logits_slice=slice(0, end - start), **extra).logits
    return out


def _propose(logits, s: TextSamplerSettings, full_shape, start, end, official_rng, masked=None):
    """Candidate tokens and their confidence for the active block.

    At temperature 0 with low-confidence remasking only the ``masked`` rows are scored (row-wise argmax
    and float64 softmax give the same values as on the whole block; the other rows are discarded).
    """
    if masked is not None and s.temperature == 0 and s.remasking == "low_confidence":
        x0 = torch.zeros(masked.shape, dtype=torch.long, device=logits.device)
        conf = torch.zeros(masked.shape, dtype=torch.float64, device=logits.device)
        rows = logits[masked]
        if rows.shape[0]:
            best = rows.argmax(dim=-1)
            x0[masked] = best
            conf[masked] = F.softmax(rows.double(), dim=-1).gather(-1, best.unsqueeze(-1)).squeeze(-1)
        return x0, conf
    noise = None
    if s.temperature > 0 and official_rng:  # same RNG draw as torch.rand_like(full logits, float64)
        noise = torch.rand((*full_shape, logits.shape[-1]), dtype=torch.float64, device=logits.device)[:, start:end]
    x0 = gumbel_argmax(logits, s.temperature, noise)
    if s.remasking == "low_confidence":
        probs = F.softmax(logits.double(), dim=-1)
        conf = probs.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    elif s.remasking == "random":
        conf = torch.rand(full_shape, device=logits.device)[:, start:end].double()
    else:
        raise ValueError(f"remasking must be low_confidence or random, not {s.remasking!r}")
    return x0, conf


def _topk_select(conf: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    transfer = torch.zeros_like(conf, dtype=torch.bool)
    for row in range(conf.shape[0]):
        n = int(k[row])
        if n > 0:
            transfer[row, torch.topk(conf[row], k=n).indices] = True
    return transfer


def _parallel_select(conf, masked, threshold, factor):
    """Fast-dLLM parallel unmasking: threshold or factor rule, always at least the best position."""
    transfer = torch.zeros_like(masked)
    for row in range(conf.shape[0]):
        n_masked = int(masked[row].sum())
        if n_masked == 0:
            continue
        values, order = torch.sort(conf[row], descending=True)
        values = values[:n_masked]
        if threshold is not None:
            n = int((values > threshold).sum())
        else:
            ranks = torch.arange(1, n_masked + 1, device=conf.device, dtype=values.dtype)
            ok = values >= 1 - factor / (ranks + 1)
            n = int(torch.cumprod(ok.long(), 0).sum())
        transfer[row, order[:max(1, n)]] = True
    return transfer


def _stopped_rows(generated, stop_ids, should_stop) -> torch.Tensor:
    """``[B]`` bool: rows whose generated ids hold a stop id or satisfy ``should_stop``."""
    done = torch.zeros(generated.shape[0], dtype=torch.bool)
    if stop_ids.numel() == 0 and should_stop is None:
        return done
    if stop_ids.numel():
        done |= torch.isin(generated, stop_ids).any(dim=1).cpu()
    if should_stop is not None:
        for i in (~done).nonzero().squeeze(1).tolist():
            done[i] = bool(should_stop(generated[i].tolist()))
    return done
