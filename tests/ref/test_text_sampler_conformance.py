"""Token parity of the text sampler with the official ``generate`` / ``mmu_generate`` goldens."""
import pytest
import torch

from mmada_ref import MMaDAModelLM
from mmada_ref.sampling import TextSamplerSettings
from mmada_ref.sampling.text import generate_text

pytestmark = pytest.mark.conformance


@pytest.fixture(scope="module")
def model(conformance_dir, on_gemm):
    torch.set_num_threads(1)  # the goldens were produced single-threaded
    return on_gemm(MMaDAModelLM.from_pretrained(conformance_dir, torch_dtype=torch.float32))


def _settings(kw: dict) -> TextSamplerSettings:
    gen = kw.get("gen_length", kw.get("max_new_tokens"))
    return TextSamplerSettings(gen_length=gen, steps=kw["steps"], block_length=kw["block_length"],
                               temperature=kw.get("temperature", 0.0), cfg_scale=kw.get("cfg_scale", 0.0),
                               remasking=kw.get("remasking", "low_confidence"))


def _run(model, rec, prompt_key):
    kw = rec["kwargs"]
    if rec.get("torch_manual_seed_before_call") is not None:
        torch.manual_seed(rec["torch_manual_seed_before_call"])
    mask = torch.tensor(kw["attention_mask"]) if "attention_mask" in kw else None
    stop = [kw["eot_token"]] if "eot_token" in kw else ()
    return generate_text(model, torch.tensor(rec[prompt_key]), _settings(kw), mask_id=kw["mask_id"],
                         attention_mask=mask, stop_token_ids=stop, official_rng=True, record_trace=True)


def _check(sample, rec):
    assert sample.sequences.tolist() == rec["output"]
    assert sample.stats.nfe == rec["n_model_calls"]
    ours = [torch.cat(call).tolist() if len(call) > 1 else call[0].tolist() for call in sample.trace]
    assert ours == rec["canvas_before_each_call"]


@pytest.mark.golden_cases("llada_generate")  # every case but the one recording an official error
def test_llada_generate_parity(model, golden, tag):
    rec = next(r for r in golden["llada_generate"] if r["tag"] == tag)
    _check(_run(model, rec, "prompt"), rec)


@pytest.mark.golden_cases("mmu_generate")
def test_mmu_generate_parity(model, golden, tag):
    rec = next(r for r in golden["mmu_generate"] if r["tag"] == tag)
    _check(_run(model, rec, "input_ids"), rec)
