"""The native AVX-512 kernels of the cached-window step (mmada_ref/cpu_native): each kernel against torch, the
native step against the torch path (logits, caches, tokens), and the fallbacks."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from mmada_ref import KVCache, MMaDAModelLM, cpu_native
from mmada_ref.config import tiny_config
from mmada_ref.cpu_gemm import gemm_in_use
from mmada_ref.cpu_native.step import NativeStep
from mmada_ref.sampling import TextSamplerSettings
from mmada_ref.sampling.text import generate_text

MASK = 296
RTOL = 1e-5  # float32 products of a few hundred terms in another order


@pytest.fixture(scope="module")
def kernels():
    module = cpu_native.load_kernels()
    if module is None:
        pytest.skip(cpu_native.unavailable_reason())
    return module


def _close(got, want, rtol=RTOL):
    scale = want.abs().max().clamp_min(1.0)
    assert (got - want).abs().max() <= rtol * scale, float((got - want).abs().max() / scale)


def _model(**kw):
    torch.manual_seed(0)
    return MMaDAModelLM(tiny_config(**kw)).eval()


@pytest.mark.parametrize("rows,out,inner", [(32, 96, 64), (1, 50, 40), (37, 33, 16), (13, 512, 300)])
def test_linear_equals_torch(kernels, rows, out, inner):
    torch.manual_seed(rows)
    x, w = torch.randn(2, rows, inner), torch.randn(out, inner)
    _close(kernels.linear(x, kernels.pack_weight(w), out), x @ w.t())


@pytest.mark.parametrize("heads,kv_heads,q_len,keys,head_dim,masked", [
    (4, 4, 32, 96, 64, False), (4, 2, 7, 50, 16, True), (2, 1, 40, 33, 24, True), (8, 8, 1, 5, 8, False)])
def test_attention_equals_sdpa(kernels, heads, kv_heads, q_len, keys, head_dim, masked):
    torch.manual_seed(q_len)
    batch = 2
    q = torch.randn(batch, q_len, heads, head_dim).transpose(1, 2)  # the strided view the block passes
    k, v = torch.randn(batch, kv_heads, keys, head_dim), torch.randn(batch, kv_heads, keys, head_dim)
    keep = torch.ones(batch, keys, dtype=torch.bool)
    if masked:
        keep[1, :keys // 3] = False
    rep = heads // kv_heads
    want = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1),
                                          attn_mask=keep[:, None, None, :] if masked else None)
    got = kernels.attention(q, k, v, keep if masked else None, head_dim ** -0.5)
    _close(got, want.transpose(1, 2))


def _cached_window(model, ids, mask, lo, hi, select):
    cache = KVCache()
    with torch.no_grad():
        model(ids, attention_mask=mask, kv_cache=cache, cache_write=True)
        logits = model(ids[:, lo:hi], attention_mask=mask, kv_cache=cache, cache_start=lo,
                       logits_positions=select).logits
    return logits, cache


@pytest.mark.parametrize("select", [slice(0, 8), torch.tensor([0, 3, 5]), "bool"])
def test_native_window_equals_the_torch_path(kernels, monkeypatch, select):
    model = _model(n_kv_heads=2)
    ids = torch.randint(0, 280, (2, 24), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    lo, hi = 8, 16
    if isinstance(select, str):
        select = torch.zeros(2, hi - lo, dtype=torch.bool)
        select[0, 2], select[1, 5:] = True, True
    want, want_cache = _cached_window(model, ids, mask, lo, hi, select)
    assert model.prepare_native_step() and gemm_in_use(model) == "native"
    calls, native_call = [], NativeStep.__call__
    monkeypatch.setattr(NativeStep, "__call__", lambda self, *a: calls.append(1) or native_call(self, *a))
    got, got_cache = _cached_window(model, ids, mask, lo, hi, select)
    assert calls, "the native step did not run"
    _close(got, want)
    for a, b in zip(got_cache.keys + got_cache.values, want_cache.keys + want_cache.values):
        _close(a, b)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_native_generation_gives_the_torch_paths_tokens(kernels, cache):
    model = _model(n_kv_heads=2)
    prompt = torch.randint(0, 280, (3, 10), generator=torch.Generator().manual_seed(4))
    settings = TextSamplerSettings(gen_length=16, steps=16, block_length=8, cache=cache)
    want = generate_text(model, prompt, settings, MASK)
    model.pack_cpu_weights()
    onednn = generate_text(model, prompt, settings, MASK)
    assert model.prepare_native_step()
    native = generate_text(model, prompt, settings, MASK)
    assert torch.equal(native.sequences, want.sequences) and torch.equal(native.sequences, onednn.sequences)
    threshold = dataclasses.replace(settings, threshold=0.5)
    native = generate_text(model, prompt, threshold, MASK)
    model.unpack_cpu_weights()
    assert torch.equal(native.sequences, generate_text(model, prompt, threshold, MASK).sequences)


def test_the_native_step_stands_aside_for_grad_edited_weights_and_other_dtypes(kernels):
    model = _model()
    ids = torch.randint(0, 280, (1, 16), generator=torch.Generator().manual_seed(2))
    assert model.prepare_native_step()
    step = model.__dict__["_native_step"]
    cache = KVCache()
    with torch.no_grad():
        model(ids, kv_cache=cache, cache_write=True)
        assert step.applies(ids[:, 8:], cache, 8)
        assert not step.applies(ids[:, 8:], cache, 9)  # window past the cache's end
    assert not step.applies(ids[:, 8:], cache, 8)  # autograd on
    with torch.no_grad():
        model.transformer.blocks[0].q_proj.weight.add_(1.0)  # edited after packing: version counter bumped
        assert not step.applies(ids[:, 8:], cache, 8)
        edited = model(ids[:, 8:], kv_cache=cache, cache_start=8).logits
        model.unpack_cpu_weights()
        assert not model.uses_native_step and gemm_in_use(model) == "default"
        assert torch.equal(edited, model(ids[:, 8:], kv_cache=cache, cache_start=8).logits)
    assert not model.to(torch.float64).prepare_native_step()


def test_unavailable_kernels_leave_the_model_on_the_torch_path(monkeypatch):
    cpu_native._load.cache_clear()
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    try:
        assert cpu_native.load_kernels() is None
        assert "AVX-512" in cpu_native.unavailable_reason() and "AVX2" in cpu_native.unavailable_reason()
        model = _model()
        assert not model.prepare_native_step() and not model.uses_native_step
    finally:
        cpu_native._load.cache_clear()
