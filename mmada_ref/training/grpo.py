"""UniGRPO (MMaDA stage 3): GRPO for a masked-diffusion model.

Per optimiser step: sample ``prompts_per_step`` prompts, roll out ``group_size`` responses each with the
text sampler (current policy, no gradient), score them, and turn rewards into group-relative advantages
(z-score within each prompt's group). Then *structured noising*: every response gets ``mask_times`` noisy
copies; each copy draws a mask ratio ``p ~ U(lo, hi)`` and masks response tokens i.i.d. with probability
``p`` (the prompt stays clean, at least one token is masked; positions after the first end token are
masked as context and left out of the loss, as dLLM-RL does). The policy's log-probability of the true
token at each masked position stands in for the token likelihood; per token
``-min(r A, clip(r, 1-eps, 1+eps) A) + beta * k3(ref, new)`` with ``r = exp(logp - logp_old)`` and the k3
KL estimator ``exp(ref - new) - (ref - new) - 1`` against a frozen reference policy (the starting
checkpoint), averaged over the masked tokens of a sequence, then over sequences.

Prompt rows are ``text`` / ``mmu`` (text sampler; the response is the generated text) or ``t2i`` (MaskGIT
image sampler; the response is the N image tokens, decoded with MAGVIT for the CLIP / ImageReward rewards).
One step is either text/understanding or text-to-image (one forward per step keeps DDP simple).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from ..image_processing import to_pil
from ..prompting import Prompting, left_pad
from ..sampling.image import generate_image_codes
from ..sampling.text import generate_text
from .data import ImageCodes, Mixture, TextFormatter
from .rewards import RewardSet, Rollout


# ---------------------------------------------------------------------------------------------
# the pieces (pure functions, tested on their own)
# ---------------------------------------------------------------------------------------------
def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """``(r - mean_group) / (std_group + eps)`` for rewards laid out as consecutive groups."""
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    g = rewards.float().view(-1, group_size)
    return ((g - g.mean(-1, keepdim=True)) / (g.std(-1, keepdim=True, unbiased=False) + eps)).view(-1)


def structured_noise(valid: torch.Tensor, ratio: tuple[float, float], generator: Optional[torch.Generator] = None):
    """Response-only masks ``[B, R]``: per row ``p ~ U(lo, hi)``, each valid position masked with prob ``p``.

    Rows with a valid position always get at least one masked position.
    """
    B, R = valid.shape
    lo, hi = ratio
    p = lo + (hi - lo) * torch.rand(B, 1, generator=generator)
    masks = (torch.rand(B, R, generator=generator) < p) & valid.cpu()
    for row in range(B):
        if not masks[row].any() and valid[row].any():
            choices = valid[row].nonzero().view(-1)
            masks[row, choices[torch.randint(len(choices), (1,), generator=generator)]] = True
    return masks.to(valid.device)


def masked_token_logps(model, sequences: torch.Tensor, attention_mask: Optional[torch.Tensor], prompt_len: int,
                       loss_mask: torch.Tensor, context_mask: torch.Tensor, mask_id: int) -> torch.Tensor:
    """Log-probs ``[B, R]`` of the true response tokens with ``loss_mask | context_mask`` positions masked.

    The response is the ``R = loss_mask.shape[1]`` positions from ``prompt_len`` (text: to the end; t2i: the
    image tokens, with ``<|eoi|>`` after them left as it is).
    """
    end = prompt_len + loss_mask.shape[1]
    response = sequences[:, prompt_len:end]
    noisy = sequences.clone()
    noisy[:, prompt_len:end] = torch.where(loss_mask | context_mask, torch.full_like(response, mask_id), response)
    logits = model(noisy, attention_mask=attention_mask, logits_slice=slice(prompt_len, end)).logits
    logp = F.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, response.unsqueeze(-1)).squeeze(-1)


def grpo_loss(logp: torch.Tensor, logp_old: torch.Tensor, logp_ref: Optional[torch.Tensor], mask: torch.Tensor,
              advantages: torch.Tensor, clip_eps: float = 0.2, beta: float = 0.0):
    """Clipped surrogate + ``beta`` k3 KL, per-sequence mean over masked tokens, mean over sequences.

    Returns ``(loss, metrics)``; ``advantages`` is ``[B]`` (one per sequence).
    """
    m = mask.float()
    ratio = torch.exp(logp - logp_old)
    adv = advantages[:, None].to(logp.dtype)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    per_token = -surrogate
    kl = torch.zeros_like(logp)
    if logp_ref is not None and beta > 0:
        diff = logp_ref - logp
        kl = torch.exp(diff) - diff - 1
        per_token = per_token + beta * kl
    count = m.sum(-1).clamp(min=1)
    loss = ((per_token * m).sum(-1) / count).mean()
    with torch.no_grad():
        clipped = ((ratio - 1).abs() > clip_eps).float()
        metrics = {"kl": float(((kl * m).sum(-1) / count).mean()),
                   "clip_frac": float((clipped * m).sum() / m.sum().clamp(min=1))}
    return loss, metrics


# ---------------------------------------------------------------------------------------------
# rollouts and the step function
# ---------------------------------------------------------------------------------------------
@dataclass
class RolloutBatch:
    sequences: torch.Tensor          # [B, P + R] left-padded prompt + response
    attention_mask: torch.Tensor     # [B, P + R]
    prompt_len: int
    valid: torch.Tensor              # [B, R] response positions that count (through the first end token)
    rewards: torch.Tensor            # [B]
    advantages: torch.Tensor         # [B]
    metrics: dict


def response_validity(response: torch.Tensor, stop_ids: list[int], mask_id: int) -> torch.Tensor:
    """True through the first stop token of each row (all positions when none), False on leftover masks."""
    stop = torch.isin(response, torch.tensor(stop_ids, device=response.device))
    after = (stop.long().cumsum(-1) - stop.long()) > 0  # strictly after the first stop token
    return ~after & (response != mask_id)


class GRPOStep:
    """Step function of UniGRPO for the trainer: ``(model, accelerator) -> (loss, metrics)``."""
    def __init__(self, cfg, mixture, tokens, tokenizer, formatter, image_codes, ref_model, rewards: RewardSet,
                 seed: int = 0):
        self.g = cfg.grpo
        self.mixture, self.tokens, self.tokenizer, self.formatter = mixture, tokens, tokenizer, formatter
        self.image_codes, self.ref_model, self.rewards = image_codes, ref_model, rewards
        self.settings = replace(self.g.sampler, stop_at_eos=False)  # rollouts run the full gen_length
        self.max_seq_length = cfg.data.max_seq_length
        self.generator = torch.Generator().manual_seed(seed)
        self.sample_seed = seed
        self._batch: Optional[RolloutBatch] = None
        self._uses = 0
        self._noise: Optional[tuple] = None

    # --- rollouts -------------------------------------------------------------------------------
    def prompt_ids(self, kind: str, row: dict) -> list[int]:
        question = str(row.get("prompt", row.get("question", "")))
        ids = self.formatter.prompt_ids(question, row.get("chat_eot"))
        if kind == "mmu":
            image = torch.tensor(self.image_codes(row)) + self.tokens.image_offset
            return Prompting(self.tokens, 0).mmu_inference(image.tolist(), ids)
        return ids

    @torch.no_grad()
    def rollout(self, model, device) -> RolloutBatch:
        """One group of rollouts per prompt; a step is either text/understanding or text-to-image."""
        kind = self.mixture.sample_any(1)[0][0]
        kinds = ("t2i",) if kind == "t2i" else ("text", "mmu")
        picks = self.mixture.sample_any(self.g.prompts_per_step, kinds)
        was_training = model.training
        model.eval()
        self.sample_seed += 1
        try:
            if kind == "t2i":
                return self._rollout_images(model, device, [row for _, row in picks])
            return self._rollout_text(model, device, picks)
        finally:
            model.train(was_training)

    def _finish(self, rollouts, sequences, attention_mask, prompt_len, valid, device) -> RolloutBatch:
        rewards, metrics = self.rewards(rollouts)
        advantages = group_advantages(rewards, self.g.group_size)
        metrics.update(reward=float(rewards.mean()), reward_std=float(rewards.std(unbiased=False)),
                       response_tokens=float(valid.float().sum(-1).mean()))
        return RolloutBatch(sequences, attention_mask, prompt_len, valid, rewards.to(device),
                            advantages.to(device), metrics)

    def _rollout_images(self, model, device, rows) -> RolloutBatch:
        """MaskGIT rollouts for t2i prompts; the response is the N image tokens (decoded for image rewards)."""
        tok, G, N = self.tokens, self.g.group_size, self.image_codes.num_vq_tokens
        rows = [row for row in rows for _ in range(G)]
        prompting = Prompting(tok, self.max_seq_length)
        canvas = torch.full((len(rows), N), tok.mask, dtype=torch.long)
        ids, mask = prompting.t2i([self.formatter.caption(r) for r in rows], canvas)
        settings = self.g.image_sampler
        uncond_ids = uncond_mask = None
        if settings.guidance_scale > 0:
            uncond_ids, uncond_mask = (t.to(device) for t in prompting.t2i_uncond(len(rows), canvas))
        generator = torch.Generator(device=device).manual_seed(self.sample_seed)
        sample = generate_image_codes(model, ids.to(device), mask.to(device), uncond_ids, uncond_mask, tok, settings,
                                      N, generator=generator)
        codes = sample.codes.clamp(0, tok.codebook_size - 1)
        images = [None] * len(rows)
        if self.image_codes.has_magvit:
            images = to_pil(self.image_codes.magvit("image rewards").decode_code(codes.to(self.image_codes.device)))
        rollouts = [Rollout(row=r, text=str(r.get("caption", r.get("prompt", ""))), ids=c, image=im)
                    for r, c, im in zip(rows, codes.tolist(), images)]
        sequences = ids.to(device).clone()
        prompt_len = ids.shape[1] - (N + 1)  # through <|soi|>
        sequences[:, prompt_len:prompt_len + N] = codes + tok.image_offset
        valid = torch.ones(len(rows), N, dtype=torch.bool, device=device)
        return self._finish(rollouts, sequences, mask.to(device), prompt_len, valid, device)

    def _rollout_text(self, model, device, picks) -> RolloutBatch:
        rows = [row for _, row in picks for _ in range(self.g.group_size)]
        prompts = [self.prompt_ids(kind, row) for kind, row in picks for _ in range(self.g.group_size)]
        ids, mask = left_pad(prompts, self.tokens.pad)
        ids, mask = ids.to(device), mask.to(device)
        torch.manual_seed(self.sample_seed)  # Gumbel noise of the sampler
        sample = generate_text(model, ids, self.settings, self.tokens.mask, attention_mask=mask)
        response = sample.generated
        stop_ids = [self.tokens.eos, self.tokens.eot_id]
        valid = response_validity(response, stop_ids, self.tokens.mask)
        rollouts = []
        for row, resp, ok in zip(rows, response.tolist(), valid.tolist()):
            kept = [t for t, v in zip(resp, ok) if v and t not in stop_ids]
            rollouts.append(Rollout(row=row, text=self.tokenizer.decode(_text_ids(kept, self.tokens),
                                                                        skip_special_tokens=True), ids=kept))
        full_mask = torch.cat([mask, torch.ones_like(response)], dim=1)
        return self._finish(rollouts, sample.sequences, full_mask, ids.shape[1], valid, device)

    def _noised(self, batch: RolloutBatch):
        """``mask_times`` noisy copies: (sequences, attention, loss_mask, context_mask, advantages)."""
        k = self.g.mask_times
        valid = batch.valid.repeat(k, 1)
        loss_mask = structured_noise(valid, tuple(self.g.mask_ratio), self.generator)
        return (batch.sequences.repeat(k, 1), batch.attention_mask.repeat(k, 1), loss_mask, ~valid,
                batch.advantages.repeat(k))

    # --- the step -------------------------------------------------------------------------------
    def __call__(self, model, accelerator):
        unwrapped = accelerator.unwrap_model(model)
        if self._batch is None or self._uses >= self.g.iterations:
            self._batch = self.rollout(unwrapped, accelerator.device)
            self._uses = 0
            seqs, attn, loss_mask, context, adv = self._noised(self._batch)
            P = self._batch.prompt_len
            with torch.no_grad(), accelerator.autocast():
                old = None  # one step per rollout: the old policy is the current one (logp.detach() below)
                if self.g.iterations > 1:
                    old = masked_token_logps(unwrapped, seqs, attn, P, loss_mask, context, self.tokens.mask)
                ref = None
                if self.g.beta > 0:
                    self.ref_model.to(accelerator.device)
                    ref = masked_token_logps(self.ref_model, seqs, attn, P, loss_mask, context, self.tokens.mask)
            self._noise = (seqs, attn, loss_mask, context, adv, old, ref)
        self._uses += 1
        seqs, attn, loss_mask, context, adv, old, ref = self._noise
        with accelerator.autocast():
            logp = masked_token_logps(model, seqs, attn, self._batch.prompt_len, loss_mask, context, self.tokens.mask)
        old = logp.detach() if old is None else old
        loss, metrics = grpo_loss(logp, old, ref, loss_mask, adv, self.g.clip_eps, self.g.beta)
        return loss, {"loss": loss.detach().item(), **metrics, **self._batch.metrics}

    def state_dict(self) -> dict:
        return {"mixture": self.mixture.state_dict(), "generator": self.generator.get_state().tolist(),
                "sample_seed": self.sample_seed}

    def load_state_dict(self, state: dict) -> None:
        self.mixture.load_state_dict(state["mixture"])
        self.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
        self.sample_seed = int(state["sample_seed"])


def _text_ids(ids: list[int], tokens) -> list[int]:
    """Drop image / mask ids (they are not in the text tokenizer) before decoding."""
    return [t for t in ids if t < tokens.image_offset and t != tokens.mask]


def build_grpo_step(cfg, model, tokenizer, tokens, seed: int, device="cpu") -> GRPOStep:
    """UniGRPO step function with a frozen copy of ``model`` (the starting checkpoint) as reference policy."""
    ref = copy.deepcopy(model).eval().requires_grad_(False) if cfg.grpo.beta > 0 else None
    N = cfg.data.num_vq_tokens or model.config.num_vq_tokens
    vq = cfg.model.vq_model or str(Path(cfg.model.path) / "magvitv2")
    return GRPOStep(cfg, Mixture(cfg.data.sources, seed=seed), tokens, tokenizer,
                    TextFormatter(tokenizer, cfg.data.think_format, cfg.data.chat_eot),
                    ImageCodes(vq, N, device, codebook_size=tokens.codebook_size), ref,
                    RewardSet(cfg.grpo.rewards), seed=seed)
