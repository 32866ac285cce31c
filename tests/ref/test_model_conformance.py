"""Parity of MMaDAModelLM with the official code on the conformance fixture (MMADA_CONFORMANCE_DIR)."""
import json

import pytest
import torch

from mmada_ref import MMaDAConfig, MMaDAModelLM
from mmada_ref.config import DEFAULTS

pytestmark = pytest.mark.conformance
ATOL = 1e-3  # logits / hidden states (conformance README section 4), used when golden.json states none
LOW_PRECISION_REL = 0.05  # bf16 has ~3 significant digits; a wrong op would give O(1)


@pytest.fixture(scope="module")
def atol(golden, tolerance):
    return tolerance(golden, "logits_atol", ATOL)


@pytest.fixture(scope="module")
def model(conformance_dir, on_gemm):
    return on_gemm(MMaDAModelLM.from_pretrained(conformance_dir, torch_dtype=torch.float32))


def test_config_reads_every_official_field(conformance_dir):
    raw = json.loads((conformance_dir / "config.json").read_text())
    cfg = MMaDAConfig.from_pretrained(conformance_dir)
    for key, value in raw.items():
        if key in ("architectures", "transformers_version", "torch_dtype", "use_cache"):
            continue
        assert getattr(cfg, key) == value, key


def test_config_fills_documented_defaults_for_missing_fields(conformance_dir, tmp_path):
    raw = json.loads((conformance_dir / "config.json").read_text())
    for key in ("precision", "rope_full_precision", "init_fn", "block_group_size"):
        raw.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(raw))
    cfg = MMaDAConfig.from_pretrained(tmp_path)
    assert cfg.precision == DEFAULTS["precision"] and cfg.rope_full_precision is True
    assert cfg.d_model == raw["d_model"]


def _padded(golden):
    rec = golden["forward"]["bool_bias_padded"]
    return torch.tensor(rec["input_ids"]), torch.tensor(rec["attention_mask"])


def test_forward_plain_logits_and_hidden_states(model, golden, golden_array, atol):
    rec = golden["forward"]["plain"]
    with torch.no_grad():
        out = model(torch.tensor(rec["input_ids"]), output_hidden_states=True)
    logits_diff = (out.logits - torch.tensor(golden_array(rec["logits"]))).abs().max().item()
    hidden_diff = (torch.stack(out.hidden_states) - torch.tensor(golden_array(rec["hidden_states"]))).abs().max().item()
    assert logits_diff <= atol and hidden_diff <= atol, (logits_diff, hidden_diff)


def test_forward_boolean_padding_matches_real_rows(model, golden, golden_array, atol):
    ids, am = _padded(golden)
    with torch.no_grad():
        logits = model(ids, attention_mask=am).logits
    expected = torch.tensor(golden_array(golden["forward"]["bool_bias_padded"]["logits"]))
    diff = (logits - expected).abs().amax(-1)[am.bool()].max().item()
    assert diff <= atol, diff


def test_padding_is_really_masked(model, golden):
    ids, am = _padded(golden)
    other = ids.clone()
    other[~am.bool()] = 7  # change what sits under the padding
    with torch.no_grad():
        a, b, unmasked = model(ids, attention_mask=am).logits, model(other, attention_mask=am).logits, model(other).logits
    real = am.bool()
    assert torch.equal(a[real], b[real])
    assert (unmasked[real] - a[real]).abs().max() > 1e-3  # without the mask the pads would leak in


def test_attention_mask_is_never_causal(model, golden, golden_array):
    """Official trap: an attention_mask argument turned attention causal. Ours stays bidirectional."""
    ids, am = _padded(golden)
    with torch.no_grad():
        ours = model(ids, attention_mask=am).logits
        plain_ids = torch.tensor(golden["forward"]["plain"]["input_ids"])
        ones = model(plain_ids, attention_mask=torch.ones_like(plain_ids)).logits
        plain = model(plain_ids).logits
    causal = torch.tensor(golden_array(golden["forward"]["attention_mask_arg_trap"]["logits"]))
    assert (ours - causal).abs().amax(-1)[am.bool()].max() > 1e-2
    assert golden["forward"]["all_ones_attention_mask_equals_plain"] and torch.equal(ones, plain)


def test_8b_config_on_meta_device_has_the_official_keys(conformance_root):
    expected = json.loads((conformance_root / "keys_8b.json").read_text())
    config = MMaDAConfig(**expected["config_used"])
    with torch.device("meta"):
        model = MMaDAModelLM(config)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == [(k["key"], k["shape"]) for k in expected["keys"]]  # same keys, shapes and order
    assert sum(p.numel() for p in model.parameters()) == int(expected["total_params"])
    defaults = MMaDAConfig()  # the documented defaults are the 8B values
    assert all(getattr(defaults, k) == v for k, v in expected["config_used"].items()
               if k not in ("architectures", "use_cache", "model_type"))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_forward(conformance_dir, golden, tolerance, dtype):
    """A low-precision forward against the float32 forward of the same rounded weights.

    The reference is the fixture's float32 model with every weight rounded to ``dtype`` and cast back
    to float32, so the comparison measures the low-precision arithmetic only, not the rounding of
    the weights themselves.
    """
    model = MMaDAModelLM.from_pretrained(conformance_dir, torch_dtype=dtype)
    assert model.transformer.wte.weight.dtype == dtype
    reference = MMaDAModelLM.from_pretrained(conformance_dir, torch_dtype=torch.float32)
    with torch.no_grad():
        for param in reference.parameters():
            param.copy_(param.to(dtype).float())
    low, rounded = model.state_dict(), reference.state_dict()
    assert low.keys() == rounded.keys()
    assert all(torch.equal(low[k].float(), rounded[k]) for k in low if low[k].is_floating_point())
    ids = torch.tensor(golden["forward"]["plain"]["input_ids"])
    with torch.no_grad():
        logits = model(ids).logits
        ref = reference(ids).logits
    assert logits.dtype == dtype and torch.isfinite(logits).all()
    rel = ((logits.float() - ref).norm() / ref.norm()).item()
    assert rel < tolerance(golden, "low_precision_rel", LOW_PRECISION_REL), rel
