"""Does a batch of a given size fit? Run the largest single call a sampler makes with that many rows."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..modeling import KVCache

#: a probe that fits but leaves less than this share of the device free counts as not fitting
HEADROOM = 0.1


def rows_fit(model, rows: int, prompt_length: int, preset, mask_id: int) -> bool:
    """True when the largest call of a ``rows``-row batch runs without running out of memory (CUDA: and leaves
    :data:`HEADROOM` of the device free). Everything the probe allocates is released before it returns."""
    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    try:
        _largest_call(model, rows, prompt_length, preset, mask_id, device)
        ok = True
    except torch.cuda.OutOfMemoryError:
        ok = False
    if cuda:  # the failed call's tensors are gone with its exception
        torch.cuda.empty_cache()
        ok = ok and torch.cuda.max_memory_allocated(device) <= (1 - HEADROOM) * torch.cuda.mem_get_info(device)[1]
    return ok


@torch.no_grad()
def _largest_call(model, rows, prompt_length, preset, mask_id, device) -> None:
    """A full forward over every position (rows doubled with CFG), the K/V cache write of a cached text preset and
    the float64 softmax of the decoded window."""
    s = preset.settings
    if preset.kind == "image":
        window = int(model.config.num_vq_tokens)
        length, cfg, cache = prompt_length + window + 2, s.guidance_scale > 0, None
    else:
        window = s.block_length if s.cache != "none" else s.gen_length
        length, cfg = prompt_length + s.gen_length, s.cfg_scale > 0
        cache = KVCache() if s.cache != "none" else None
    ids = torch.full((rows * (2 if cfg else 1), length), mask_id, dtype=torch.long, device=device)
    logits = model(ids, kv_cache=cache, cache_write=cache is not None,
                   logits_slice=slice(length - window, length)).logits
    F.softmax(logits.double(), dim=-1).amax().item()
