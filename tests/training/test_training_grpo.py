"""UniGRPO: advantages, structured noising, the direction of the policy update, and a reward that rises."""
import pytest
import torch

from mmada_ref import MMaDAModelLM
from mmada_ref.training.demo import DEFAULT_MODEL, demo_stages, write_synthetic_data
from mmada_ref.training.grpo import (
    group_advantages,
    grpo_loss,
    masked_token_logps,
    response_validity,
    structured_noise,
)
from mmada_ref.training.plot import read_metrics
from mmada_ref.training.rewards import RewardSet, Rollout
from mmada_ref.training.stages import stage_from_dict
from mmada_ref.training.trainer import Trainer


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_group_advantages_are_z_scores_per_prompt():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    adv = group_advantages(rewards, 4)
    assert torch.allclose(adv[:4], torch.tensor([1.0, -1.0, -1.0, 1.0]), atol=1e-3)
    assert torch.all(adv[4:] == 0)  # identical rewards carry no signal
    with pytest.raises(ValueError):
        group_advantages(rewards, 3)


def test_structured_noise_masks_only_valid_response_positions():
    valid = torch.ones(200, 10, dtype=torch.bool)
    valid[:, 7:] = False
    masks = structured_noise(valid, (0.0, 1.0), torch.Generator().manual_seed(0))
    assert not masks[:, 7:].any() and masks.any(-1).all()
    rates = masks[:, :7].float().mean(-1)
    assert rates.min() < 0.3 and rates.max() > 0.7  # the ratio really varies per row
    fixed = structured_noise(valid, (0.5, 0.5), torch.Generator().manual_seed(0))
    assert abs(fixed[:, :7].float().mean().item() - 0.5) < 0.05


def test_response_validity_stops_after_first_end_token():
    resp = torch.tensor([[5, 6, 9, 7, 9], [5, 6, 7, 8, 3]])
    valid = response_validity(resp, stop_ids=[9], mask_id=3)
    assert valid.tolist() == [[True, True, True, False, False], [True, True, True, True, False]]


def test_policy_update_moves_towards_positive_advantage():
    """One SGD step on the GRPO loss must raise log p of the rewarded response and lower the other's.

    Fails if the surrogate's sign (or the advantage's) were flipped.
    """
    torch.manual_seed(0)
    model = MMaDAModelLM.from_pretrained(DEFAULT_MODEL).train()
    mask_id = model.config.mask_token_id
    prompt = torch.tensor([[model.config.bos_token_id, 11, 12, 13]] * 2)
    seqs = torch.cat([prompt, torch.tensor([[40, 41, 42, 43], [50, 51, 52, 53]])], dim=1)
    loss_mask = torch.tensor([[True, False, True, True], [True, True, False, True]])
    context = torch.zeros_like(loss_mask)
    adv = torch.tensor([1.0, -1.0])

    def logps():
        return masked_token_logps(model, seqs, None, 4, loss_mask, context, mask_id)

    before = logps().detach()
    loss, _ = grpo_loss(logps(), before, before, loss_mask, adv, clip_eps=0.2, beta=0.01)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.05 * p.grad
    after = logps().detach()
    gain = ((after - before) * loss_mask).sum(-1)
    assert gain[0] > 0 > gain[1], gain


def test_clipping_stops_the_gradient_beyond_the_trust_region():
    logp = torch.zeros(1, 2, requires_grad=True)
    old = torch.full((1, 2), -1.0)  # ratio e > 1.2 with a positive advantage: clipped, no gradient
    loss, metrics = grpo_loss(logp, old, None, torch.ones(1, 2, dtype=torch.bool), torch.tensor([1.0]), 0.2, 0.0)
    loss.backward()
    assert torch.all(logp.grad == 0) and metrics["clip_frac"] == 1.0


def test_builtin_rewards_correctness_and_format():
    rewards = RewardSet([{"name": "correctness", "weight": 2.0}, {"name": "format", "weight": 0.5}])
    rollouts = [Rollout({"answer": "4"}, "<think> 2 plus 2 </think> 4"),
                Rollout({"answer": "4"}, "the answer is 5"),
                Rollout({"answer": "yes"}, "<think> look </think> Yes."),
                Rollout({"answer": "no"}, "yes")]
    total, parts = rewards(rollouts)
    assert total.tolist() == [2.5, 0.0, 2.5, 0.0]
    assert parts["reward_format"] == 0.5
    with pytest.raises(ValueError, match="unknown reward"):
        RewardSet([{"name": "nope"}])


@pytest.mark.slow
def test_unigrpo_raises_the_mean_reward(tmp_path):
    data = write_synthetic_data(tmp_path / "data")
    stage = demo_stages(data, DEFAULT_MODEL, steps=30)["stage3"]
    stage["train"]["log_every"] = 1
    Trainer(stage_from_dict(stage), tmp_path / "run", resume=False).train()
    rewards = [r["reward"] for r in read_metrics(tmp_path / "run")]
    first, last = sum(rewards[:8]) / 8, sum(rewards[-8:]) / 8
    assert last > first + 0.1, (first, last, rewards)
    assert (tmp_path / "run" / "curves" / "reward.png").is_file()


def low_code_reward():
    """Toy verifiable image reward: share of image codes below 32; insists on decoded images."""
    def fn(rollouts):
        assert all(r.image is not None and r.image.size[0] > 0 for r in rollouts)
        return [sum(c < 32 for c in r.ids) / len(r.ids) for r in rollouts]
    return fn


def test_unigrpo_text_to_image_rollouts(tmp_path):
    data = write_synthetic_data(tmp_path / "data")
    stage = demo_stages(data, DEFAULT_MODEL, steps=2)["stage3"]
    stage["data"] = {"max_seq_length": 16, "sources": [{"path": str(data / "t2i.jsonl"), "kind": "t2i"}]}
    stage["grpo"].update(group_size=4, image_sampler={"timesteps": 4, "guidance_scale": 2.0, "temperature": 1.0},
                         rewards=[{"name": f"{__name__}:low_code_reward", "weight": 1.0}])
    stage["train"]["log_every"] = 1
    trainer = Trainer(stage_from_dict(stage), tmp_path / "run", resume=False)
    batch = trainer.step_fn.rollout(trainer.model, trainer.accelerator.device)
    N = trainer.model.config.num_vq_tokens
    image = batch.sequences[:, batch.prompt_len: batch.prompt_len + N]
    assert batch.valid.shape == (8, N) and batch.valid.all()
    assert ((image >= trainer.tokens.image_offset) & (image < trainer.tokens.image_offset + 64)).all()
    assert (batch.sequences[:, batch.prompt_len - 1] == trainer.tokens.soi).all()
    assert (batch.sequences[:, -1] == trainer.tokens.eoi).all()
    trainer.train()
    records = read_metrics(tmp_path / "run")
    assert len(records) == 2 and all(0 <= r["reward"] <= 1 and r["loss"] == r["loss"] for r in records)


def test_several_iterations_per_rollout_reuse_it(tmp_path):
    data = write_synthetic_data(tmp_path / "data")
    stage = demo_stages(data, DEFAULT_MODEL, steps=4)["stage3"]
    stage["grpo"].update(iterations=2)
    stage["train"]["log_every"] = 1
    trainer = Trainer(stage_from_dict(stage), tmp_path / "run", resume=False)
    trainer.train()
    records = read_metrics(tmp_path / "run")
    assert records[0]["reward"] == records[1]["reward"] and records[2]["reward"] == records[3]["reward"]
    assert records[0]["clip_frac"] == 0.0  # first pass: ratio 1
    assert trainer.step_fn.sample_seed == trainer.cfg.train.seed + 2  # two rollouts for four steps
