"""Cached parallel decoding (Fast-dLLM style) against the vanilla sampler, and sampler plumbing."""
import dataclasses

import pytest
import torch

from mmada_ref import MMaDAModelLM
from mmada_ref.config import tiny_config
from mmada_ref.sampling import TextSamplerSettings, get_preset
from mmada_ref.sampling.text import generate_text

CONFIG = tiny_config(n_layers=2)
MASK = CONFIG.mask_token_id


@pytest.fixture(scope="module")
def model(on_gemm):
    torch.manual_seed(0)
    return on_gemm(MMaDAModelLM(CONFIG).eval())


@pytest.fixture(scope="module")
def prompt():
    # ordinary word ids: the tiny layout puts its special tokens from bos upwards
    return torch.randint(0, CONFIG.bos_token_id, (2, 12), generator=torch.Generator().manual_seed(3))


BASE = TextSamplerSettings(gen_length=16, steps=16, block_length=8)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_refresh_every_step_reproduces_vanilla(model, prompt, cache):
    vanilla = generate_text(model, prompt, BASE, MASK)
    cached = generate_text(model, prompt, dataclasses.replace(BASE, cache=cache), MASK, refresh_every=1)
    assert torch.equal(vanilla.sequences, cached.sequences)


@pytest.mark.parametrize("cache", ["none", "prefix", "dual"])
def test_threshold_one_unmasks_one_token_per_step(model, prompt, cache):
    s = dataclasses.replace(BASE, cache=cache, threshold=1.0)
    out = generate_text(model, prompt, s, MASK)
    assert out.stats.tokens_per_step == [prompt.shape[0]] * BASE.gen_length  # one per row per step
    assert out.stats.nfe == BASE.gen_length
    assert not (out.generated == MASK).all(dim=1).any()


def test_threshold_one_without_cache_equals_vanilla_one_token_per_step(model, prompt):
    vanilla = generate_text(model, prompt, BASE, MASK)  # steps == gen_length: one token per step
    parallel = generate_text(model, prompt, dataclasses.replace(BASE, threshold=1.0), MASK)
    assert torch.equal(vanilla.sequences, parallel.sequences)


def test_cached_steps_run_fewer_positions(model, prompt):
    runs = {c: generate_text(model, prompt, dataclasses.replace(BASE, cache=c), MASK) for c in ("none", "prefix", "dual")}
    work = {c: sum(r.stats.positions_per_call) for c, r in runs.items()}
    assert work["dual"] < work["prefix"] < work["none"]
    assert all(r.stats.nfe == BASE.steps for r in runs.values())


def test_low_threshold_takes_fewer_steps(model, prompt):
    out = generate_text(model, prompt, dataclasses.replace(BASE, threshold=0.0, cache="dual"), MASK)
    assert out.stats.nfe == 2  # everything above 0 confidence: one step per block
    assert (out.generated != MASK).all()


def test_factor_rule_accepts_at_least_one(model, prompt):
    out = generate_text(model, prompt, dataclasses.replace(BASE, factor=1e-9), MASK)
    assert all(t >= 1 for t in out.stats.tokens_per_step)


def test_early_stop_on_stop_token_and_string(model, prompt):
    first = generate_text(model, prompt, BASE, MASK)
    stop_tok = int(first.generated[0, 0])
    out = generate_text(model, prompt[:1], BASE, MASK, stop_token_ids=[stop_tok])
    assert out.stopped_early and out.stats.nfe == BASE.steps // 2
    assert (out.generated[0, BASE.block_length:] == MASK).all()
    out = generate_text(model, prompt[:1], BASE, MASK, should_stop=lambda row: True)
    assert out.stopped_early


@pytest.mark.parametrize("cache", ["none", "dual"])
def test_finished_rows_leave_the_batch_and_equal_their_single_runs(model, prompt, cache):
    s = dataclasses.replace(BASE, cache=cache)
    alone = [generate_text(model, prompt[i:i + 1], s, MASK).generated[0].tolist() for i in range(2)]
    first = alone[0][:BASE.block_length]
    assert first != alone[1][:BASE.block_length]

    def stop(ids):  # row 0 stops after block 0, row 1 never
        return ids[:BASE.block_length] == first

    both = generate_text(model, prompt, s, MASK, should_stop=stop)
    for i in range(2):
        single = generate_text(model, prompt[i:i + 1], s, MASK, should_stop=stop)
        assert torch.equal(both.sequences[i], single.sequences[0])
    per_block = BASE.steps // (BASE.gen_length // BASE.block_length)
    assert both.stats.row_nfe == [per_block, BASE.steps] and both.stats.nfe == BASE.steps
    assert both.stats.rows_per_call == [2] * per_block + [1] * per_block
    assert (both.generated[0, BASE.block_length:] == MASK).all() and not both.stopped_early


def test_left_padding_is_masked(model, prompt):
    padded = torch.cat([torch.full((2, 3), CONFIG.pad_token_id), prompt], dim=1)
    mask = torch.cat([torch.zeros(2, 3, dtype=torch.long), torch.ones_like(prompt)], dim=1)
    a = generate_text(model, padded, BASE, MASK, attention_mask=mask)
    padded2 = padded.clone()
    padded2[:, :3] = 5
    b = generate_text(model, padded2, BASE, MASK, attention_mask=mask)
    assert torch.equal(a.generated, b.generated)


def test_bad_settings_are_named(model, prompt):
    with pytest.raises(ValueError, match="multiple of block_length"):
        generate_text(model, prompt, dataclasses.replace(BASE, gen_length=10), MASK)
    with pytest.raises(ValueError, match="not supported with a K/V cache"):
        generate_text(model, prompt, dataclasses.replace(BASE, cache="dual", cfg_scale=1.0), MASK)


def test_presets_are_labelled():
    assert get_preset("fast").settings.cache == "dual" and get_preset("fast").label == "fast"
    assert get_preset("ci").label == "ci"
    assert get_preset("gsm8k-paper", gen_length=32).settings.gen_length == 32
    with pytest.raises(KeyError, match="unknown sampler preset"):
        get_preset("nope")
