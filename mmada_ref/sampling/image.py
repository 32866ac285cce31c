"""The MaskGIT text-to-image sampler (official ``MMadaModelLM.t2i_generate``), plus a decode helper.

Algorithm per step (``timesteps`` model calls in all; a CFG call on ``2B`` rows counts once):

1. one forward on ``cat([cond, uncond])`` where the unconditional rows are the unconditional text
   prefix followed by the *current* image canvas ``<|soi|> img×N <|eoi|>``;
2. logits of the image positions ``[-(N+1), -1)`` x codebook columns ``[offset, offset+K)``,
   combined as ``(1+g)·cond - g·uncond`` (MUSE form), float32 softmax;
3. ``torch.multinomial(probs.reshape(-1, K), 1, generator)`` proposes a code everywhere, already
   committed positions keep theirs (confidence ``finfo(float32).max``);
4. ``mask_len = max(1, min(#unknown - 1, floor(N · schedule((step+1)/T))))`` positions are re-masked
   by :func:`~.primitives.mask_by_random_topk` (log p + temperature·Gumbel, same generator).

RNG order per step is the official one: the multinomial draws, then the ``uniform_`` of the Gumbel
noise, both on ``generator``; on CPU in float32 the codes equal the official ones exactly.

Temperature annealing (trap 7) is reproduced as the official code does it: the variable is
re-assigned ``temperature = temperature * (1 - ratio)`` every step, so step ``s`` uses
``T0 · Π_{j=1..s+1} (1 - j/T)`` — it decays much faster than MaskGIT's ``T0 · (1 - ratio)``
(pass ``compounding_temperature=False`` for the latter; it breaks parity).

Deliberate differences (see docs/deliberate_differences.md):

* trap 6: the official code cuts the unconditional prefix at a ``resolution`` argument that must equal
  ``max_text_len``; here both prefixes are read from the sequences themselves (everything before
  ``<|soi|>``) and aligned by their left padding, so any text length (and ``pad_to_longest``) works;
* the attention mask is our key-padding mask (the official square boolean bias only differs on padded
  query rows, whose outputs are never read);
* only the image positions go through the LM head (``logits_slice``), logits are cast to float32 before
  the CFG combination (identical for float32 models), and ``input_ids`` is not mutated in place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import torch

from ..image_processing import to_pil
from ..tokens import SpecialTokens
from .presets import ImageSamplerSettings
from .primitives import get_mask_schedule, mask_by_random_topk
from .stats import SamplerStats


@dataclass
class ImageSample:
    """Result of :func:`generate_image_codes`."""

    codes: torch.Tensor  # [B, N] codes 0..K-1 of the last step (complete, no mask left)
    input_ids: torch.Tensor  # [B, L] final canvas (one position per row is still [MASK], as officially)
    stats: SamplerStats
    trace: list = field(default_factory=list)  # model input before each call ([2B, L] with CFG)
    first_call_logits: Optional[torch.Tensor] = None  # raw sliced logits of call 1 [rows, N, K] (cond, uncond)


@dataclass
class GeneratedImages:
    """Result of :func:`generate_images`: PIL images, their codes and the sampler accounting."""

    images: list
    codes: torch.Tensor
    stats: SamplerStats
    prompts: list
    sample: ImageSample


def annealed_temperature(t0: float, step: int, timesteps: int, compounding: bool = True) -> float:
    """Gumbel temperature used at ``step`` (0-based): official compounding ``T0·Π(1-j/T)`` or MaskGIT ``T0·(1-r)``."""
    if not compounding:
        return t0 * (1.0 - (step + 1) / timesteps)
    temperature = t0
    for s in range(step + 1):
        temperature = temperature * (1.0 - 1.0 * (s + 1) / timesteps)
    return temperature


@torch.no_grad()
def generate_image_codes(model, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor],
                         uncond_input_ids: Optional[torch.Tensor], uncond_attention_mask: Optional[torch.Tensor],
                         tokens: SpecialTokens, settings: ImageSamplerSettings, num_vq_tokens: int,
                         generator: Optional[Union[torch.Generator, Sequence[torch.Generator]]] = None,
                         record_trace: bool = False, compounding_temperature: bool = True) -> ImageSample:
    """Fill the ``[MASK]`` image positions of t2i sequences with MaskGIT decoding.

    Args:
        input_ids: ``[B, L]`` t2i rows ``... <|soi|> img×N <|eoi|>`` (``Prompting.t2i``); image positions
            hold ``[MASK]`` to generate, or image ids to keep.
        attention_mask: ``[B, L]`` key-padding mask (1 = real token) or ``None``.
        uncond_input_ids / uncond_attention_mask: unconditional rows (``Prompting.t2i_uncond``), needed when
            ``settings.guidance_scale > 0``; one row is broadcast to the batch. Only their text prefix is used.
        tokens: special ids (mask, soi/eoi, image offset, codebook size).
        num_vq_tokens: ``N``, image tokens per row.
        generator: torch generator for the multinomial and Gumbel draws (same device as the model), or one
            generator per row: row ``b`` then draws only from ``generator[b]``, so its codes do not depend on
            the other rows of the batch (per-item seeds; a one-row batch draws exactly as with one generator).
        record_trace: keep the model input of every call and the raw sliced logits of the first call.
        compounding_temperature: the official compounding annealing (default; see the module docstring).
    """
    s, n, k = settings, int(num_vq_tokens), tokens.codebook_size
    _check_settings(s)
    ids = _check_rows(input_ids, tokens, n, "input_ids").clone()
    batch, length = ids.shape
    device = ids.device
    mask = _padding_mask(attention_mask, ids, "attention_mask")
    row_generators = _row_generators(generator, batch, device)
    guided = s.guidance_scale > 0
    if guided:
        if uncond_input_ids is None:
            raise ValueError("guidance_scale > 0 needs uncond_input_ids (Prompting.t2i_uncond); "
                             "pass them or set guidance_scale=0")
        uncond_prefix, uncond_mask = _uncond_prefix(uncond_input_ids, uncond_attention_mask, tokens, n, batch)
        cond_prefix_len = length - (n + 2)
        uncond_prefix, uncond_mask = _align_prefix(uncond_prefix, uncond_mask, cond_prefix_len, tokens.ipad)
        full_mask = torch.cat([mask, torch.cat([uncond_mask, mask[:, cond_prefix_len:]], dim=1)])
    else:
        full_mask = mask
    if bool(full_mask.all()):
        full_mask = None  # nothing padded: plain bidirectional attention

    schedule = get_mask_schedule(s.schedule)
    offset = tokens.image_offset
    image = slice(length - (n + 1), length - 1)
    codes_now = _to_codes(ids[:, image], tokens)  # mask id where unknown, code elsewhere
    stats = SamplerStats(batch_size=batch)
    trace, first_logits = [], None
    temperature = float(s.temperature)
    sampled = codes_now.clone()
    for step in range(s.timesteps):
        if guided:
            uncond = torch.cat([uncond_prefix, ids[:, length - (n + 2):]], dim=1)
            model_input = torch.cat([ids, uncond])
        else:
            model_input = ids
        if record_trace:
            trace.append(model_input.clone())
        with stats.timed_call(device, positions=model_input.numel()):
            raw = model(model_input, attention_mask=full_mask, logits_slice=image).logits
        raw = raw[..., offset: offset + k].float()
        if record_trace and first_logits is None:
            first_logits = raw.detach().cpu().clone()
        if guided:
            cond_logits, uncond_logits = raw.chunk(2, dim=0)
            logits = (1 + s.guidance_scale) * cond_logits - s.guidance_scale * uncond_logits
        else:
            logits = raw
        probs = logits.softmax(dim=-1)
        if row_generators is None:
            sampled = torch.multinomial(probs.reshape(-1, k), 1, generator=generator)[:, 0].view(batch, n)
        else:
            sampled = torch.stack([torch.multinomial(probs[b], 1, generator=g)[:, 0] for b, g in enumerate(row_generators)])
        unknown = codes_now == tokens.mask
        sampled = torch.where(unknown, sampled, codes_now)
        ratio = 1.0 * (step + 1) / s.timesteps
        mask_ratio = schedule(torch.tensor(ratio))
        selected = torch.gather(probs, -1, sampled.long()[..., None]).squeeze(-1)
        selected = torch.where(unknown, selected, torch.finfo(selected.dtype).max)
        mask_len = torch.floor(n * mask_ratio).unsqueeze(0).to(device)
        mask_len = torch.max(torch.tensor([1], device=device),
                             torch.min(unknown.sum(dim=-1, keepdim=True) - 1, mask_len))
        temperature = (temperature * (1.0 - ratio) if compounding_temperature
                       else float(s.temperature) * (1.0 - ratio))
        if row_generators is None:
            masking = mask_by_random_topk(mask_len, selected, temperature, generator=generator)
        else:
            masking = torch.cat([mask_by_random_topk(mask_len[b: b + 1], selected[b: b + 1], temperature, generator=g)
                                 for b, g in enumerate(row_generators)])
        ids[:, image] = torch.where(masking, tokens.mask, sampled + offset)
        codes_now = torch.where(masking, tokens.mask, sampled)
        stats.tokens_per_step.append(int(unknown.sum()) - int((codes_now == tokens.mask).sum()))
    return ImageSample(codes=sampled, input_ids=ids, stats=stats, trace=trace, first_call_logits=first_logits)


@torch.no_grad()
def generate_images(model, magvit, prompting, prompts: Sequence[Union[str, Sequence[int]]],
                    settings: ImageSamplerSettings, tokenizer=None,
                    generator: Optional[Union[torch.Generator, Sequence[torch.Generator]]] = None,
                    num_vq_tokens: int = 1024, decode_shape: Optional[Sequence[int]] = None) -> GeneratedImages:
    """Text prompts (strings with ``tokenizer``, or text-id lists) -> PIL images through MAGVIT.

    Builds the t2i rows (``settings.pad_to_longest`` pads the text only to the batch's longest prompt)
    and the unconditional rows, samples with :func:`generate_image_codes`, clamps the codes to
    ``[0, K-1]`` (as the official callers do) and decodes them with ``magvit.decode_code``.
    ``num_vq_tokens`` is 1024 for the 512 px model (a 32×32 grid).
    """
    tokens = prompting.tokens
    if not prompts:
        raise ValueError("generate_images needs at least one prompt")
    if magvit.codebook_size != tokens.codebook_size:
        raise ValueError(f"MAGVIT codebook size {magvit.codebook_size} does not match the model's "
                         f"codebook_size {tokens.codebook_size}")
    text_ids = [_encode_prompt(p, tokenizer) for p in prompts]
    device = next(model.parameters()).device
    canvas = torch.full((len(text_ids), num_vq_tokens), tokens.mask, dtype=torch.long)
    ids, mask = prompting.t2i(text_ids, canvas, pad_to_longest=settings.pad_to_longest)
    uncond_ids = uncond_mask = None
    if settings.guidance_scale > 0:
        uncond_ids, uncond_mask = prompting.t2i_uncond(len(text_ids), canvas)
    sample = generate_image_codes(
        model, ids.to(device), mask.to(device), None if uncond_ids is None else uncond_ids.to(device),
        None if uncond_mask is None else uncond_mask.to(device), tokens, settings, num_vq_tokens,
        generator=generator)
    codes = sample.codes.clamp(0, tokens.codebook_size - 1)
    pixels = magvit.decode_code(codes, decode_shape)
    return GeneratedImages(images=to_pil(pixels), codes=codes.cpu(), stats=sample.stats,
                           prompts=list(prompts), sample=sample)


# ---------------------------------------------------------------------------------------------
# input checks and prefix handling


def _row_generators(generator, batch: int, device: torch.device) -> Optional[list]:
    """``None`` for one shared generator (checked for its device), else the list of per-row generators."""
    shared = generator is None or isinstance(generator, torch.Generator)
    generators = [generator] if shared else list(generator)
    if not shared and len(generators) != batch:
        raise ValueError(f"got {len(generators)} generators for a batch of {batch} rows; pass one per row or one in all")
    for g in generators:
        if g is not None and g.device.type != device.type:
            raise ValueError(f"generator is on {g.device} but the ids are on {device}: create it with "
                             f"torch.Generator(device={str(device)!r}).manual_seed(seed)")
    return None if shared else generators


def _check_settings(s: ImageSamplerSettings) -> None:
    if int(s.timesteps) < 1:
        raise ValueError(f"timesteps must be >= 1, got {s.timesteps}")
    if s.guidance_scale < 0:
        raise ValueError(f"guidance_scale must be >= 0, got {s.guidance_scale}")
    if s.temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {s.temperature}")


def _check_rows(ids: torch.Tensor, tokens: SpecialTokens, n: int, name: str) -> torch.Tensor:
    """``ids`` must be ``[B, L]`` ending in ``<|soi|> img×N <|eoi|>``."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        raise ValueError(f"{name} must be a [batch, length] tensor of token ids")
    if n < 1 or ids.shape[1] < n + 2:
        raise ValueError(f"{name} of length {ids.shape[1]} cannot hold num_vq_tokens={n} image tokens "
                         "plus <|soi|>/<|eoi|>")
    if not bool((ids[:, -(n + 2)] == tokens.soi).all()) or not bool((ids[:, -1] == tokens.eoi).all()):
        raise ValueError(f"{name} rows must end with <|soi|> + {n} image tokens + <|eoi|> (Prompting.t2i); "
                         "check num_vq_tokens")
    img = ids[:, -(n + 1):-1]
    codes = img - tokens.image_offset
    bad = (img != tokens.mask) & ((codes < 0) | (codes >= tokens.codebook_size))
    if bool(bad.any()):
        raise ValueError(f"{name} image positions must hold [MASK] ({tokens.mask}) or image ids "
                         f"[{tokens.image_offset}, {tokens.image_offset + tokens.codebook_size})")
    return ids


def _padding_mask(mask: Optional[torch.Tensor], ids: torch.Tensor, name: str) -> torch.Tensor:
    if mask is None:
        return torch.ones_like(ids, dtype=torch.bool)
    if tuple(mask.shape) != tuple(ids.shape):
        raise ValueError(f"{name} must have the shape of its ids {tuple(ids.shape)}, got {tuple(mask.shape)}")
    return mask.to(ids.device).bool()


def _to_codes(image_ids: torch.Tensor, tokens: SpecialTokens) -> torch.Tensor:
    return torch.where(image_ids == tokens.mask, tokens.mask, image_ids - tokens.image_offset)


def _uncond_prefix(uncond_ids, uncond_mask, tokens, n, batch):
    """Text prefix (everything before ``<|soi|>``) of the unconditional rows, broadcast to ``batch``."""
    uncond_ids = _check_rows(uncond_ids, tokens, n, "uncond_input_ids")
    mask = _padding_mask(uncond_mask, uncond_ids, "uncond_attention_mask")
    if uncond_ids.shape[0] not in (1, batch):
        raise ValueError(f"uncond_input_ids has {uncond_ids.shape[0]} rows; expected 1 or {batch}")
    cut = uncond_ids.shape[1] - (n + 2)
    prefix, mask = uncond_ids[:, :cut], mask[:, :cut]
    return prefix.expand(batch, -1), mask.expand(batch, -1)


def _align_prefix(prefix: torch.Tensor, mask: torch.Tensor, width: int, pad_id: int):
    """Left-pad (with ``pad_id``, mask 0) or drop leading all-padding columns to reach ``width``."""
    have = prefix.shape[1]
    if have < width:
        extra = width - have
        prefix = torch.cat([prefix.new_full((prefix.shape[0], extra), pad_id), prefix], dim=1)
        mask = torch.cat([mask.new_zeros((mask.shape[0], extra)), mask], dim=1)
    elif have > width:
        drop = have - width
        if bool(mask[:, :drop].any()):
            raise ValueError(f"the unconditional text prefix is longer than the conditional one ({width} "
                             "tokens): build both with the same Prompting (t2i_uncond(prefix_len=...))")
        prefix, mask = prefix[:, drop:], mask[:, drop:]
    return prefix, mask


def _encode_prompt(prompt, tokenizer) -> list[int]:
    if isinstance(prompt, str):
        if tokenizer is None:
            raise ValueError("string prompts need a tokenizer (generate_images(..., tokenizer=...)); "
                             "or pass text-id lists")
        return list(tokenizer(prompt)["input_ids"])
    return [int(i) for i in prompt]
