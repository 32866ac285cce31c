"""The unified training objective: noising rules and parity with the official forward_process losses."""
import math

import pytest
import torch

from mmada_ref import MMaDAModelLM
from mmada_ref.training.objective import (
    LossCoefficients,
    forward_process_losses,
    mask_image,
    mask_text,
    total_loss,
)

TOL = 1e-4  # |delta| <= 1e-4 * max(1, |loss|) (conformance README, section 4), when golden.json states none


@pytest.fixture(scope="module")
def official_model(conformance_dir):
    return MMaDAModelLM.from_pretrained(conformance_dir, torch_dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def rtol(golden, tolerance):
    return tolerance(golden, "loss_rtol", TOL)


def _losses(model, rec, **changes):
    args = dict(input_ids=rec["input_ids"], labels=rec["labels"], p_mask_lm=rec["p_mask_lm"],
                p_mask_mmu=rec["p_mask_mmu"], answer_lengths=rec["answer_lengths"], t2i_masks=rec["t2i_masks"],
                answer_lengths_lm=rec["answer_lengths_lm"])
    args.update(changes)
    n_t2i, n_mmu = len(rec["t2i_masks"]), len(rec["p_mask_mmu"])
    n_lm = len(rec["input_ids"]) - n_t2i - n_mmu
    max_seq_length = int(rec["call"].split("max_seq_length=")[1].split(",")[0])
    with torch.no_grad():
        return forward_process_losses(model, batch_size_t2i=n_t2i, batch_size_lm=n_lm, batch_size_mmu=n_mmu,
                                      max_seq_length=max_seq_length, **args)


@pytest.mark.conformance
@pytest.mark.golden_cases("forward_process")
def test_lm_and_mmu_losses_match_official_forward_process(official_model, golden, rtol, tag):
    rec = next(r for r in golden["forward_process"] if r["tag"] == tag)
    out = _losses(official_model, rec)
    for key in ("loss_lm", "loss_mmu"):
        assert abs(float(out[key]) - rec[key]) <= rtol * max(1.0, abs(rec[key])), (tag, key, float(out[key]), rec[key])


@pytest.mark.conformance
def test_stage_totals_follow_the_coefficients(official_model, golden, rtol):
    """Official stage totals minus their t2i part equal our lm/mmu parts with the same coefficients."""
    rec = golden["forward_process"][0]
    out = _losses(official_model, rec)
    for key, official_total in rec["stage_total_examples"].items():
        c_t2i, c_lm, c_mmu = (float(x) for x in key.split("(")[1].rstrip(")").split(","))
        ours = total_loss({**out, "loss_t2i": torch.tensor(0.0)}, LossCoefficients(0.0, c_lm, c_mmu))
        expected = official_total - c_t2i * rec["loss_t2i"]
        assert abs(float(ours) - expected) <= rtol * max(1.0, abs(expected)), key


@pytest.mark.conformance
def test_t2i_loss_is_finite_and_ignores_padding(official_model, golden):
    """Deliberate difference: t2i padding is masked (official: float 0/1 bias), so pad tokens cannot matter."""
    rec = golden["forward_process"][0]
    base = _losses(official_model, rec)["loss_t2i"]
    assert math.isfinite(float(base))
    ids, masks = torch.tensor(rec["input_ids"]), torch.tensor(rec["t2i_masks"])
    changed = ids.clone()
    pads = torch.zeros_like(ids, dtype=torch.bool)
    pads[: len(masks)] = masks == 0
    assert pads.any()
    changed[pads] = 5  # an ordinary text token instead of [iPAD]
    other = _losses(official_model, rec, input_ids=changed.tolist())["loss_t2i"]
    assert abs(float(other) - float(base)) <= 1e-5, (float(base), float(other))
    # without the key mask the padding would matter: the test can see a difference
    unmasked = _losses(official_model, rec, input_ids=changed.tolist(), t2i_masks=torch.ones_like(masks).tolist())
    assert abs(float(unmasked["loss_t2i"]) - float(base)) > 1e-4


def test_text_masking_rate_and_prompt_restoration():
    g = torch.Generator().manual_seed(0)
    ids = torch.arange(4 * 2000).view(4, 2000) % 250
    prompt = torch.zeros_like(ids)
    prompt[:, :500] = 1
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    noise = mask_text(ids, 999, eps=1e-3, prompt_mask=prompt, t=t, generator=g)
    masked = noise.noisy == 999
    assert not masked[:, :500].any()
    rate = masked[:, 500:].float().mean(-1)
    expected = (1 - 1e-3) * t + 1e-3
    assert torch.allclose(rate, expected, atol=0.04), rate
    assert torch.allclose(noise.p_mask[:, 0], expected)
    assert (noise.answer_lengths == 1500).all()


def test_image_masking_count_follows_cosine_schedule():
    img = torch.arange(3 * 64).view(3, 64)
    t = torch.tensor([0.0, 0.5, 0.999])
    noisy, labels, prob = mask_image(img, -1, t=t, generator=torch.Generator().manual_seed(1))
    counts = (noisy == -1).sum(-1)
    expected = [max(1, round(64 * math.cos(math.pi * x / 2))) for x in t.tolist()]
    assert counts.tolist() == expected
    assert ((labels != -100) == (noisy == -1)).all()
    assert (labels[labels != -100] == img[labels != -100]).all()


def test_groups_of_different_lengths_equal_separate_forwards():
    """One padded forward over t2i / lm / mmu groups of different lengths changes no loss."""
    from mmada_ref.config import tiny_config
    from mmada_ref.training.objective import UnifiedBatch, unified_losses

    torch.manual_seed(0)
    model = MMaDAModelLM(tiny_config()).eval()
    mask_id = model.config.mask_token_id
    g = torch.Generator().manual_seed(3)
    t2i = torch.randint(0, 280, (2, 20), generator=g)
    t2i_mask = torch.ones_like(t2i)
    t2i_mask[0, :3] = 0
    t2i_labels = torch.where(torch.rand(2, 20, generator=g) < 0.5, t2i, torch.full_like(t2i, -100))
    lm = mask_text(torch.randint(0, 280, (2, 28), generator=g), mask_id, generator=g)
    mmu_clean = torch.randint(0, 280, (1, 24), generator=g)
    prompt = torch.zeros_like(mmu_clean)
    prompt[:, :6] = 1
    mmu = mask_text(mmu_clean, mask_id, prompt_mask=prompt, generator=g)
    full = UnifiedBatch(t2i_ids=t2i, t2i_labels=t2i_labels, t2i_mask=t2i_mask, t2i_prefix_len=8,
                        lm_ids=lm.noisy, lm_labels=torch.randint(0, 280, (2, 28), generator=g), lm_p_mask=lm.p_mask,
                        mmu_ids=mmu.noisy, mmu_labels=mmu_clean, mmu_p_mask=mmu.p_mask,
                        mmu_answer_lengths=mmu.answer_lengths)
    with torch.no_grad():
        together = unified_losses(model, full, mask_id)
        alone = {
            "loss_t2i": unified_losses(model, UnifiedBatch(t2i_ids=t2i, t2i_labels=t2i_labels, t2i_mask=t2i_mask,
                                                           t2i_prefix_len=8), mask_id)["loss_t2i"],
            "loss_lm": unified_losses(model, UnifiedBatch(lm_ids=full.lm_ids, lm_labels=full.lm_labels,
                                                          lm_p_mask=full.lm_p_mask), mask_id)["loss_lm"],
            "loss_mmu": unified_losses(model, UnifiedBatch(mmu_ids=mmu.noisy, mmu_labels=mmu_clean,
                                                           mmu_p_mask=mmu.p_mask,
                                                           mmu_answer_lengths=mmu.answer_lengths), mask_id)["loss_mmu"],
        }
    for key, value in alone.items():
        assert float(value) > 0
        assert abs(float(together[key]) - float(value)) <= 1e-5, key


def test_structural_weight_scales_only_eos_and_end_of_turn_targets():
    """objective.structural_weight: the terms whose target is EOS / <|eot_id|> are scaled, the others kept."""
    from mmada_ref.training.objective import (
        UnifiedBatch,
        target_weights,
        unified_losses,
    )

    torch.manual_seed(0)
    labels = torch.tensor([[5, 6, 9, 9, 9], [7, 8, 4, 9, 9]])
    eos, eot = 9, 4
    assert target_weights(labels, {eos: 1.0, eot: 1.0}) is None  # the official objective: no weights at all
    weights = target_weights(labels, {eos: 0.25, eot: 0.25})
    assert torch.equal(weights == 0.25, (labels == eos) | (labels == eot))
    assert torch.all(weights[(labels != eos) & (labels != eot)] == 1.0)

    class Fixed(torch.nn.Module):  # logits that do not depend on the input: the loss is a plain weighted CE
        def __init__(self, logits):
            super().__init__()
            self.logits = logits

        def forward(self, ids, attention_mask=None):
            return type("Out", (), {"logits": self.logits})()

    logits = torch.randn(2, 5, 12)
    mask_id = 11
    noisy = torch.tensor([[11, 6, 11, 11, 9], [11, 11, 11, 11, 9]])
    p = torch.full((2, 5), 0.5)
    lengths = torch.full((2, 5), 5)
    plain = unified_losses(Fixed(logits), UnifiedBatch(lm_ids=noisy, lm_labels=labels, lm_p_mask=p,
                                                       lm_answer_lengths=lengths), mask_id)["loss_lm"]
    weighted = unified_losses(Fixed(logits), UnifiedBatch(lm_ids=noisy, lm_labels=labels, lm_p_mask=p,
                                                          lm_answer_lengths=lengths, lm_loss_weights=weights),
                              mask_id)["loss_lm"]
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 12), labels.reshape(-1), reduction="none").view(2, 5)
    masked = noisy == mask_id
    expected = (ce * weights / p / lengths)[masked].sum() / 2
    assert torch.isclose(weighted, expected) and not torch.isclose(weighted, plain)
