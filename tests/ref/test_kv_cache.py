"""The K/V cache hooks used by the cached samplers compute the same logits as a full forward."""
import torch

from mmada_ref import KVCache, MMaDAModelLM
from mmada_ref.config import tiny_config


def test_cached_window_equals_full_forward():
    torch.manual_seed(0)
    model = MMaDAModelLM(tiny_config(n_kv_heads=2)).eval()  # exercises grouped-query attention
    ids = torch.randint(0, 300, (2, 24))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding
    cache = KVCache()
    with torch.no_grad():
        full = model(ids, attention_mask=mask, kv_cache=cache, cache_write=True).logits
        assert len(cache) == 24 and len(cache.keys) == model.config.n_layers
        dual = model(ids[:, 8:16], attention_mask=mask, kv_cache=cache, cache_start=8).logits
        prefix = model(ids[:, 8:], attention_mask=mask, kv_cache=cache, cache_start=8).logits
    assert torch.allclose(dual, full[:, 8:16], atol=1e-5)
    assert torch.allclose(prefix, full[:, 8:], atol=1e-5)


def test_logits_slice_projects_only_requested_positions():
    torch.manual_seed(0)
    model = MMaDAModelLM(tiny_config()).eval()
    ids = torch.randint(0, 300, (1, 10))
    with torch.no_grad():
        full, part = model(ids).logits, model(ids, logits_slice=slice(4, 7)).logits
    assert torch.allclose(part, full[:, 4:7], atol=1e-6)
