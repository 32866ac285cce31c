"""MaskGIT text-to-image sampler: parity with the official ``t2i_generate`` goldens, primitives, MAGVIT decode."""
import re

import numpy as np
import pytest
import torch

from mmada_ref import MMaDAModelLM
from mmada_ref.magvit import MAGVITv2
from mmada_ref.prompting import Prompting
from mmada_ref.sampling import ImageSamplerSettings
from mmada_ref.sampling.image import (
    annealed_temperature,
    generate_image_codes,
    generate_images,
)
from mmada_ref.sampling.primitives import (
    cosine_schedule,
    get_mask_schedule,
    gumbel_argmax,
    gumbel_noise,
    mask_by_random_topk,
    num_transfer_tokens,
)
from mmada_ref.tokens import SpecialTokens

pytestmark = pytest.mark.conformance

LOGITS_ATOL = 1e-3  # conformance README section 4, used when golden.json states no tolerance
MAGVIT_ATOL = 1e-4


@pytest.fixture(scope="module")
def model(conformance_dir, on_gemm):
    torch.set_num_threads(1)  # the goldens were produced single-threaded
    return on_gemm(MMaDAModelLM.from_pretrained(conformance_dir, torch_dtype=torch.float32))


@pytest.fixture(scope="module")
def magvit(conformance_dir):
    return MAGVITv2.from_pretrained(conformance_dir / "magvitv2")


@pytest.fixture(scope="module")
def tokens(golden):
    lay = golden["layout"]
    return SpecialTokens.from_ids(
        bos=lay["bos"], eos=lay["eos"], mask=lay["mask_token_id"], start_header=lay["start_header_id"],
        end_header=lay["end_header_id"], eot_id=lay["eot_id"], image_offset=lay["image_token_offset"],
        codebook_size=lay["codebook_size"])


@pytest.fixture(scope="module")
def prompting(tokens, golden):
    return Prompting(tokens, golden["layout"]["max_text_len"])


def _record(golden, tag):
    return next(r for r in golden["t2i_generate"] if r["tag"] == tag)


def _cfg_record(golden):
    """The first golden case with classifier-free guidance (it has an unconditional batch)."""
    return next(r for r in golden["t2i_generate"] if r["kwargs"]["guidance_scale"] > 0)


def _decoded_record(golden):
    """The case whose codes golden.json decodes with MAGVIT (``magvitv2.decode_t2i``)."""
    match = re.search(r"t2i_generate\['([^']+)'\]", golden["magvitv2"]["decode_t2i"])
    assert match, golden["magvitv2"]["decode_t2i"]
    return _record(golden, match.group(1))


def _seed(kwargs) -> int:
    match = re.fullmatch(r"torch\.Generator\(\)\.manual_seed\((\d+)\)", kwargs["generator"])
    assert match, f"unexpected generator description {kwargs['generator']!r}"
    return int(match.group(1))


def _settings(kwargs) -> ImageSamplerSettings:
    assert kwargs["noise_schedule"] == "cosine_schedule"
    return ImageSamplerSettings(timesteps=kwargs["timesteps"], guidance_scale=kwargs["guidance_scale"],
                                temperature=kwargs["temperature"], schedule="cosine")


def _tensor(value):
    return None if value is None else torch.tensor(value)


@pytest.fixture(scope="module")
def runs(model, golden, tokens):
    """Our sampler on every golden ``t2i_generate`` input, with the golden's generator seed."""
    out = {}
    for rec in golden["t2i_generate"]:
        kw = rec["kwargs"]
        out[rec["tag"]] = generate_image_codes(
            model, torch.tensor(rec["input_ids"]), torch.tensor(rec["attention_mask"]),
            _tensor(rec["uncond_input_ids"]), _tensor(rec["uncond_attention_mask"]), tokens, _settings(kw),
            kw["seq_len"], generator=torch.Generator().manual_seed(_seed(kw)), record_trace=True)
    return out


# --------------------------------------------------------------------------- official parity


@pytest.mark.golden_cases("t2i_generate")
def test_first_call_logits_match(runs, golden, golden_array, tolerance, tag):
    ref = golden_array(_record(golden, tag)["first_call_raw_logits"])
    ours = runs[tag].first_call_logits.numpy()
    assert ours.shape == ref.shape  # rows: cond, then uncond when guidance > 0
    assert np.abs(ours - ref).max() <= tolerance(golden, "logits_atol", LOGITS_ATOL)


@pytest.mark.golden_cases("t2i_generate")
def test_codes_canvas_and_trace_match_exactly(runs, golden, tag):
    rec, sample = _record(golden, tag), runs[tag]
    assert sample.codes.tolist() == rec["returned_sampled_ids"]
    assert sample.input_ids.tolist() == rec["input_ids_after_call"]
    assert [t.tolist() for t in sample.trace] == rec["canvas_before_each_call"]
    assert sample.stats.nfe == rec["n_model_calls"] == rec["kwargs"]["timesteps"]


@pytest.mark.golden_cases("t2i_generate")
def test_input_is_not_mutated_and_stats_add_up(golden, runs, tokens, tag):
    rec, sample = _record(golden, tag), runs[tag]
    n = rec["kwargs"]["seq_len"]
    assert torch.tensor(rec["input_ids"])[:, -(n + 1):-1].eq(tokens.mask).all()
    batch = sample.codes.shape[0]
    assert sample.stats.batch_size == batch
    left = int((sample.input_ids[:, -(n + 1):-1] == tokens.mask).sum())  # one [MASK] per row stays
    assert left == batch and sum(sample.stats.tokens_per_step) == batch * n - left
    rows = 2 * batch if rec["uncond_input_ids"] is not None else batch
    assert sample.stats.positions_per_call == [rows * len(rec["input_ids"][0])] * sample.stats.nfe


# --------------------------------------------------------------------------- primitives


def test_cosine_schedule_values(golden):
    for t, value in golden["sampling_primitives"]["cosine_schedule"].items():
        assert cosine_schedule(torch.tensor(float(t))).item() == value
    assert get_mask_schedule("cosine") is cosine_schedule


def test_num_transfer_tokens(golden):
    rec = golden["sampling_primitives"]["get_num_transfer_tokens"]
    assert num_transfer_tokens(torch.tensor(rec["mask_index"]), rec["steps"]).tolist() == rec["out"]


def test_mask_by_random_topk_and_gumbel_noise(golden, golden_array):
    rec = golden["sampling_primitives"]["mask_by_random_topk"]
    seed = _seed({"generator": rec["generator"]})
    probs = torch.from_numpy(golden_array(rec["probs"]))
    masking = mask_by_random_topk(torch.tensor(rec["mask_len"]), probs, rec["temperature"],
                                  generator=torch.Generator().manual_seed(seed))
    assert masking.tolist() == rec["masking"]
    noise = gumbel_noise(probs, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(noise, torch.from_numpy(golden_array(rec["gumbel_noise_same_generator_state"])))


def test_add_gumbel_noise_argmax(golden, golden_array):
    rec = golden["sampling_primitives"]["add_gumbel_noise"]
    logits = torch.from_numpy(golden_array(rec["logits"]))
    torch.manual_seed(rec["torch_manual_seed"])
    ours = gumbel_argmax(logits, rec["temperature"])
    assert ours.tolist() == rec["argmax"]
    assert ours.tolist() == golden_array(rec["out"]).argmax(-1).tolist()


def test_other_schedules_and_bad_names():
    t = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(get_mask_schedule("linear")(t), torch.tensor([1.0, 0.5, 1e-6]))
    assert torch.allclose(get_mask_schedule("pow2")(t), torch.tensor([1.0, 0.75, 1e-6]))
    sig = get_mask_schedule("sigmoid")(t)
    assert sig[0] == 1.0 and abs(sig[1] - 0.5) < 1e-6 and sig[2] == pytest.approx(1e-6)
    for bad in ("cosinus", "powx"):
        with pytest.raises(ValueError, match="schedule"):
            get_mask_schedule(bad)


def test_compounding_temperature_annealing():
    # official: temperature *= (1 - ratio) every step; MaskGIT: T0 * (1 - ratio)
    assert annealed_temperature(2.0, 0, 4) == pytest.approx(2.0 * 0.75)
    assert annealed_temperature(2.0, 1, 4) == pytest.approx(2.0 * 0.75 * 0.5)
    assert annealed_temperature(2.0, 1, 4, compounding=False) == pytest.approx(2.0 * 0.5)
    assert annealed_temperature(2.0, 3, 4) == 0.0


# --------------------------------------------------------------------------- MAGVIT, prompts, options


def test_magvit_decode_of_sampled_batch(runs, magvit, golden, golden_array, tokens, tolerance):
    codes = runs[_decoded_record(golden)["tag"]].codes.clamp(0, tokens.codebook_size - 1)
    pixels = magvit.decode_code(codes)
    ref = golden_array(golden["magvitv2"]["decode_t2i"])
    assert pixels.shape == ref.shape
    assert np.abs(pixels.detach().numpy() - ref).max() <= tolerance(golden, "magvit_atol", MAGVIT_ATOL)


def test_generate_images_end_to_end(model, magvit, prompting, golden, tokens):
    rec = _cfg_record(golden)
    resolution = golden["magvitv2"]["resolution"]
    settings = ImageSamplerSettings(timesteps=4, guidance_scale=2.0)
    out = generate_images(model, magvit, prompting, rec["text_ids"], settings,
                          generator=torch.Generator().manual_seed(0), num_vq_tokens=rec["kwargs"]["seq_len"])
    assert len(out.images) == len(rec["text_ids"])
    assert all(im.size == (resolution, resolution) and im.mode == "RGB" for im in out.images)
    assert out.codes.shape == (len(rec["text_ids"]), rec["kwargs"]["seq_len"])
    assert 0 <= int(out.codes.min()) and int(out.codes.max()) < tokens.codebook_size
    assert out.stats.nfe == settings.timesteps


def test_same_prompts_same_generator_reproduce_the_golden(model, magvit, prompting, golden):
    rec = _cfg_record(golden)
    kw = rec["kwargs"]
    out = generate_images(model, magvit, prompting, rec["text_ids"], _settings(kw),
                          generator=torch.Generator().manual_seed(_seed(kw)), num_vq_tokens=kw["seq_len"])
    assert out.codes.tolist() == rec["returned_sampled_ids"]


def test_pad_to_longest_is_shorter_and_valid(model, magvit, prompting, golden, tokens):
    rec = _cfg_record(golden)
    kw = rec["kwargs"]
    n = kw["seq_len"]
    full = _settings(kw)
    short = ImageSamplerSettings(**{**full.to_dict(), "pad_to_longest": True})
    canvas = torch.full((len(rec["text_ids"]), n), tokens.mask)
    ids_full, _ = prompting.t2i(rec["text_ids"], canvas)
    ids_short, _ = prompting.t2i(rec["text_ids"], canvas, pad_to_longest=True)
    assert ids_short.shape[1] < ids_full.shape[1]
    out = generate_images(model, magvit, prompting, rec["text_ids"], short,
                          generator=torch.Generator().manual_seed(_seed(kw)), num_vq_tokens=n)
    assert out.sample.input_ids.shape == ids_short.shape
    assert 0 <= int(out.codes.min()) and int(out.codes.max()) < tokens.codebook_size
    assert out.stats.nfe == full.timesteps
    assert out.stats.positions_per_call[0] < 2 * ids_full.numel()
    # RoPE is relative and padded keys are masked: dropping common left padding changes nothing here
    assert out.codes.tolist() == rec["returned_sampled_ids"]


def test_uncond_prefix_length_comes_from_the_sequences(model, prompting, golden, tokens):
    """Trap 6: a full-width unconditional batch beside a pad_to_longest conditional one is aligned."""
    rec = _cfg_record(golden)
    kw = rec["kwargs"]
    n = kw["seq_len"]
    canvas = torch.full((len(rec["text_ids"]), n), tokens.mask)
    ids, mask = prompting.t2i(rec["text_ids"], canvas, pad_to_longest=True)
    full_u, full_um = prompting.t2i_uncond(1, canvas[:1])  # one full-width row, broadcast
    cut_u, cut_um = prompting.t2i_uncond(len(ids), canvas, prefix_len=ids.shape[1] - n - 2)
    a = generate_image_codes(model, ids, mask, full_u, full_um, tokens, _settings(kw), n,
                             generator=torch.Generator().manual_seed(1))
    b = generate_image_codes(model, ids, mask, cut_u, cut_um, tokens, _settings(kw), n,
                             generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.codes, b.codes) and torch.equal(a.input_ids, b.input_ids)
    # a different text length (max_text_len 10 instead of the fixture's 24) also works
    small = Prompting(tokens, 10)
    ids10, mask10 = small.t2i(rec["text_ids"], canvas)
    u10, um10 = small.t2i_uncond(len(ids10), canvas)
    c = generate_image_codes(model, ids10, mask10, u10, um10, tokens, _settings(kw), n,
                             generator=torch.Generator().manual_seed(1))
    assert c.codes.shape == (len(ids10), n) and c.stats.nfe == kw["timesteps"]


def test_bad_input_is_reported(model, golden, tokens):
    rec = _cfg_record(golden)
    kw = rec["kwargs"]
    ids, mask = torch.tensor(rec["input_ids"]), torch.tensor(rec["attention_mask"])
    with pytest.raises(ValueError, match="uncond_input_ids"):
        generate_image_codes(model, ids, mask, None, None, tokens, _settings(kw), kw["seq_len"])
    with pytest.raises(ValueError, match="num_vq_tokens"):
        generate_image_codes(model, ids, mask, None, None, tokens, ImageSamplerSettings(guidance_scale=0), 9)
    with pytest.raises(ValueError, match="timesteps"):
        generate_image_codes(model, ids, mask, None, None, tokens,
                             ImageSamplerSettings(timesteps=0, guidance_scale=0), kw["seq_len"])
    with pytest.raises(ValueError, match="shape"):
        generate_image_codes(model, ids, mask[:, 1:], None, None, tokens,
                             ImageSamplerSettings(guidance_scale=0), kw["seq_len"])



@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_runs_on_gpu_and_reports_a_cpu_generator(conformance_dir, golden, tokens):
    gpu_model = MMaDAModelLM.from_pretrained(conformance_dir, torch_dtype=torch.float32).cuda()
    rec = _cfg_record(golden)
    kw = rec["kwargs"]
    args = [torch.tensor(rec[k]).cuda() for k in ("input_ids", "attention_mask", "uncond_input_ids",
                                                  "uncond_attention_mask")]
    with pytest.raises(ValueError, match="generator"):
        generate_image_codes(gpu_model, *args, tokens, _settings(kw), kw["seq_len"], generator=torch.Generator())
    out = generate_image_codes(gpu_model, *args, tokens, _settings(kw), kw["seq_len"],
                               generator=torch.Generator(device="cuda").manual_seed(0))
    assert out.codes.shape == (len(rec["input_ids"]), kw["seq_len"]) and out.stats.nfe == kw["timesteps"]
    assert 0 <= int(out.codes.min()) and int(out.codes.max()) < tokens.codebook_size
