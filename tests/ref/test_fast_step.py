"""The fast sampler step (issue 16): in-place K/V cache, SDPA grouped-query attention, restricted
logits, cached RoPE tables / prepared masks, and the optional compiled dual-cache step."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from mmada_ref import KVCache, MMaDAModelLM, cpu_gemm, modeling
from mmada_ref.config import tiny_config
from mmada_ref.cpu_gemm import PackedLinear, grouped_linear, onednn_linear_available, pack_group
from mmada_ref.modeling import grouped_attention, prepare_attention_mask, rope_sin_cos
from mmada_ref.sampling import TextSamplerSettings
from mmada_ref.sampling.text import _propose, generate_text

MASK = 296


def _model(**kw):
    torch.manual_seed(0)
    return MMaDAModelLM(tiny_config(**kw)).eval()


def _ids(batch=2, length=24, seed=1):
    return torch.randint(0, 280, (batch, length), generator=torch.Generator().manual_seed(seed))


def _cat_update(self, layer, start, k, v):
    """The former read path: concatenate cached prefix, new window and cached suffix (no mutation)."""
    ck, cv = self.keys[layer], self.values[layer]
    end = start + k.shape[2]
    return (torch.cat((ck[:, :, :start], k, ck[:, :, end:]), dim=2),
            torch.cat((cv[:, :, :start], v, cv[:, :, end:]), dim=2))


def test_in_place_update_equals_concatenation_and_keeps_buffers():
    torch.manual_seed(0)
    cache = KVCache()
    k, v = torch.randn(2, 3, 20, 8), torch.randn(2, 3, 20, 8).transpose(1, 2).contiguous().transpose(1, 2)
    cache.write(0, k, v)
    ptr = cache.keys[0].data_ptr()
    kw, vw = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 8)
    expect_k, expect_v = _cat_update(cache, 0, 6, kw, vw)
    got_k, got_v = cache.update(0, 6, kw, vw)
    assert torch.equal(got_k, expect_k) and torch.equal(got_v, expect_v)
    assert got_k.data_ptr() == ptr  # written in place, no new sequence-length tensor
    idx_k, _ = cache.update(0, torch.arange(6, 11), kw * 2, vw)  # index form (compiled step)
    assert torch.equal(idx_k[:, :, 6:11], kw * 2) and torch.equal(idx_k[:, :, :6], k[:, :, :6])
    cache.write(0, k + 1, v)  # a refresh of the same shape reuses the buffer
    assert cache.keys[0].data_ptr() == ptr and torch.equal(cache.keys[0], k + 1)
    cache.write(0, torch.randn(2, 3, 21, 8), v[:, :, :1].expand(2, 3, 21, 8))  # new length: new buffers
    assert len(cache) == 21 and len(cache.keys) == 1


@pytest.mark.parametrize("window", [(8, 16), (8, 24)])  # dual (block only) and prefix (block + suffix)
def test_in_place_cached_forward_equals_concatenation_path(monkeypatch, window):
    model = _model(n_kv_heads=2)
    ids, (lo, hi) = _ids(), window
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    runs = []
    for patched in (False, True):
        if patched:
            monkeypatch.setattr(KVCache, "update", _cat_update)
        cache = KVCache()
        with torch.no_grad():
            model(ids, attention_mask=mask, kv_cache=cache, cache_write=True)
            step = ids[:, lo:hi].flip(0)  # different tokens than cached
            runs.append(model(step, attention_mask=mask, kv_cache=cache, cache_start=lo).logits)
    assert torch.equal(runs[0], runs[1])


@pytest.mark.skipif(not modeling.SDPA_GQA, reason="this torch has no enable_gqa in SDPA")
def test_gqa_path_equals_repeat_path(monkeypatch):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 8, 6, 16), torch.randn(2, 2, 10, 16), torch.randn(2, 2, 10, 16)
    mask = torch.ones(2, 1, 1, 10, dtype=torch.bool)
    mask[0, ..., :2] = False
    for m in (None, mask):
        assert torch.allclose(grouped_attention(q, k, v, m, use_gqa=True),
                              grouped_attention(q, k, v, m, use_gqa=False), atol=1e-6)
    model, prompt = _model(n_kv_heads=2), _ids(length=12)
    s = TextSamplerSettings(gen_length=16, steps=16, block_length=8, cache="dual")
    gqa = generate_text(model, prompt, s, MASK).sequences
    monkeypatch.setattr(modeling, "SDPA_GQA", False)
    assert torch.equal(gqa, generate_text(model, prompt, s, MASK).sequences)


def test_restricted_logits_equal_full_logits():
    model, ids = _model(), _ids()
    with torch.no_grad():
        full = model(ids).logits
        assert torch.equal(model(ids, logits_positions=slice(5, 9)).logits, full[:, 5:9])
        pos = torch.tensor([0, 7, 23])
        assert torch.allclose(model(ids, logits_positions=pos).logits, full[:, pos], atol=1e-5)
        sel = ids % 3 == 0
        assert torch.allclose(model(ids, logits_positions=sel).logits, full[sel], atol=1e-5)
        cache = KVCache()
        model(ids, kv_cache=cache, cache_write=True)
        window = model(ids[:, 8:16], kv_cache=cache, cache_start=8, logits_slice=slice(2, 6)).logits
    assert window.shape == (2, 4, full.shape[-1]) and torch.allclose(window, full[:, 10:14], atol=1e-5)


def test_cached_rope_tables_and_prepared_mask_match_per_step_ones():
    model, ids = _model(), _ids()
    for start, n in ((0, 24), (8, 8), (100, 60)):  # the last one grows past max_sequence_length
        sin, cos = model.rope_tables(start, n, ids.device)
        ref_sin, ref_cos = rope_sin_cos(torch.arange(start, start + n), model.config.head_dim, model.config.rope_theta)
        assert torch.equal(sin, ref_sin) and torch.equal(cos, ref_cos)
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    prepared = prepare_attention_mask(mask, 2)
    assert prepared.shape == (2, 1, 1, 24) and prepare_attention_mask(prepared, 2) is prepared
    with torch.no_grad():
        assert torch.equal(model(ids, attention_mask=prepared).logits, model(ids, attention_mask=mask).logits)


def test_masked_row_scoring_equals_full_block_scoring():
    torch.manual_seed(0)
    logits = torch.randn(3, 8, 50)
    masked = torch.rand(3, 8) < 0.5
    masked[2] = False  # a finished row
    s = TextSamplerSettings()
    x0, conf = _propose(logits, s, (3, 20), 4, 12, False, masked)
    ref_x0, ref_conf = _propose(logits, s, (3, 20), 4, 12, False)
    assert torch.equal(x0[masked], ref_x0[masked]) and torch.equal(conf[masked], ref_conf[masked])


def test_generate_text_disables_autograd():
    model, seen = _model(), []
    model.register_forward_hook(lambda *_: seen.append(torch.is_grad_enabled()))
    generate_text(model, _ids(length=12), TextSamplerSettings(gen_length=8, steps=8, block_length=8, cache="dual"), MASK)
    assert seen and not any(seen)


def _compile_works() -> bool:
    try:
        return bool(torch.compile(lambda t: t * 2 + 1)(torch.ones(2)).eq(3).all())
    except Exception:  # no compiler / backend on this machine
        return False


@pytest.mark.slow
def test_compiled_dual_step_is_token_equal():
    if not _compile_works():
        pytest.skip("torch.compile does not work on this machine")
    model, prompt = _model(), _ids(length=12)
    for threshold in (None, 0.05):
        s = TextSamplerSettings(gen_length=16, steps=16, block_length=8, cache="dual", threshold=threshold)
        eager = generate_text(model, prompt, s, MASK)
        compiled = generate_text(model, prompt, s, MASK, compile_step=True)
        assert "_compiled_run" in model.__dict__  # the compiled path really ran
        assert torch.equal(eager.sequences, compiled.sequences)
        assert eager.stats.nfe == compiled.stats.nfe
    if model.pack_cpu_weights():  # traced code runs the dense weights: the same compiled tokens as unpacked
        assert torch.equal(generate_text(model, prompt, s, MASK, compile_step=True).sequences, compiled.sequences)
    vanilla = generate_text(model, prompt, dataclasses.replace(s, cache="none"), MASK, compile_step=True)
    assert vanilla.sequences.shape == eager.sequences.shape  # compile_step is ignored without a dual cache


# --- oneDNN-prepacked GEMMs (mmada_ref/cpu_gemm.py) --------------------------------------------------------
needs_onednn = pytest.mark.skipif(not onednn_linear_available(), reason="no usable oneDNN linear operators")


@needs_onednn
def test_packed_model_uses_onednn_and_stays_close_to_the_dense_path(monkeypatch):
    dense, packed = _model(n_kv_heads=2), _model(n_kv_heads=2)
    n_linear = sum(isinstance(m, PackedLinear) for m in packed.modules())
    assert packed.pack_cpu_weights() == n_linear == 7 * packed.config.n_layers + 1
    assert list(packed.state_dict()) == list(dense.state_dict())  # checkpoints and keys are unchanged
    calls = []
    real = cpu_gemm._onednn_linear
    monkeypatch.setattr(cpu_gemm, "_onednn_linear", lambda *a: calls.append(1) or real(*a))
    ids = _ids()
    with torch.no_grad():
        a, b = dense(ids).logits, packed(ids).logits
    assert len(calls) == n_linear - 3 * packed.config.n_layers  # q/k/v and gate/up run as one product each
    assert torch.allclose(a, b, atol=1e-5)


@needs_onednn
def test_grouped_product_equals_the_separate_packed_layers():
    torch.manual_seed(0)
    layers = [PackedLinear(16, n, bias=False) for n in (24, 8, 8)]
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        for layer in layers:
            layer.pack()
        separate = [layer(x) for layer in layers]
        assert pack_group(layers) and all(layer.is_packed for layer in layers)
        grouped = grouped_linear(layers, x)
        assert all(torch.equal(g, s) for g, s in zip(grouped, separate))  # bitwise, not just close
        assert [g.shape[-1] for g in grouped] == [24, 8, 8]
        layers[1].weight.mul_(2)  # an edited member: every layer runs on its dense weight again
        assert all(torch.equal(g, F.linear(x, layer.weight)) for g, layer in zip(grouped_linear(layers, x), layers))
        layers[1].weight = torch.nn.Parameter(torch.randn(8, 16))  # a replaced member
        assert torch.equal(grouped_linear(layers, x)[1], F.linear(x, layers[1].weight))
        assert torch.equal(grouped_linear(layers[::-1], x)[0], F.linear(x, layers[2].weight))  # other layers
    with torch.enable_grad():  # training: autograd through the dense weights
        out = grouped_linear(layers, x)
        sum(o.sum() for o in out).backward()
    assert all(layer.weight.grad is not None for layer in layers)
    assert not pack_group([PackedLinear(16, 4, bias=True), layers[0]])  # biased layers are not grouped
    layers[0].unpack()
    assert not layers[0].is_packed


@needs_onednn
def test_packed_linear_falls_back_to_the_dense_weight():
    torch.manual_seed(0)
    layer, x = PackedLinear(16, 24, bias=False), torch.randn(3, 16)
    assert layer.pack() and layer.is_packed
    with torch.enable_grad():  # training: autograd through the dense weight
        y = layer(x)
        y.sum().backward()
    assert layer.weight.grad is not None and torch.equal(y, F.linear(x, layer.weight))
    with torch.no_grad():
        layer.weight.mul_(2)  # edited after packing: the stale packed copy is never used
        assert torch.equal(layer(x), F.linear(x, layer.weight))
        layer.weight = torch.nn.Parameter(torch.randn(24, 16))  # replaced
        assert torch.equal(layer(x), F.linear(x, layer.weight))
    assert not _model().to(torch.bfloat16).pack_cpu_weights()  # only float32 is packed
    layer.unpack()
    assert not layer.is_packed


@needs_onednn
def test_packed_rows_do_not_depend_on_the_batch():
    model = _model()
    model.pack_cpu_weights()
    ids = _ids(batch=3)
    with torch.no_grad():
        full = model(ids).logits
        for row in range(3):
            assert torch.equal(model(ids[row:row + 1]).logits[0], full[row])
