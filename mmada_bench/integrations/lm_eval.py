"""MMaDA (and LLaDA) checkpoints as an lm-eval 0.4 model: ``--model mmada``.

lm-eval has no plugin discovery, so this module must be imported before lm-eval's CLI runs;
``python -m mmada_bench lm-eval ...`` does that (:mod:`mmada_bench.commands.lm_eval`).

``--model_args`` (all optional):

* ``pretrained=DIR``    checkpoint folder (MMaDA or LLaDA); default: the packaged smoke checkpoint
* ``preset=NAME``       sampler preset of ``generate_until`` (default ``gsm8k-paper``)
* ``gen_length=N``      override the preset's generation length (lm-eval's ``max_gen_toks`` is not used:
                        a diffusion sampler's length is part of its protocol)
* ``mc_num=N``          Monte-Carlo samples per ``loglikelihood`` request (default 128, LLaDA's value)
* ``mc_batch_size=N``   samples per forward pass (default 32)
* ``seed=S``            base seed (default 1234); ``dtype=float32|bfloat16|float16``; ``device`` via ``--device``

``loglikelihood(context, continuation)`` is the masked-diffusion ELBO estimate LLaDA evaluates with:
draw a mask ratio ``t ~ U(0, 1]`` (stratified over the samples), mask ``k = ceil(t L)`` of the ``L``
continuation tokens at random, and average ``sum_masked log p(token) / (k / L)`` over samples. It is a
lower bound of the log-likelihood, unbiased for the ELBO, seeded per request (order-independent).
``is_greedy`` checks whether the one-step argmax with the whole continuation masked equals it.
``loglikelihood_rolling`` scores the text in windows of the model's length with the same estimate.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import replace
from typing import Optional

import torch
import torch.nn.functional as F
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from mmada_bench.models.base import GenerationRequest
from mmada_bench.models.loader import resolve_model
from mmada_ref.sampling.presets import get_preset
from mmada_ref.text_tokenizer import format_chat
from mmada_scoring.gsm8k import truncate_at_stops


def masked_loglikelihood(model, prefix: list[int], target: list[int], mask_id: int, n_samples: int,
                         batch_size: int, generator: torch.Generator, device) -> float:
    """Monte-Carlo ELBO estimate of ``log p(target | prefix)`` for a masked-diffusion LM (see module docstring)."""
    n_target = len(target)
    if n_target == 0:
        return 0.0
    seq = torch.tensor(prefix + target, dtype=torch.long, device=device)
    target_t = seq[len(prefix):]
    span = slice(len(prefix), len(prefix) + n_target)
    total, done = 0.0, 0
    while done < n_samples:
        b = min(batch_size, n_samples - done)
        # stratified mask ratios over the whole sample set: t_i in ((i + u) / n) for i = done..done+b-1
        offset = torch.rand((), generator=generator)
        t = (torch.arange(done, done + b, dtype=torch.float64) + offset) / n_samples
        k = torch.clamp(torch.ceil(t * n_target), 1, n_target).long()
        order = torch.rand(b, n_target, generator=generator).argsort(dim=1).argsort(dim=1)
        masked = (order < k[:, None]).to(device)
        noisy = seq.repeat(b, 1)
        noisy[:, span] = torch.where(masked, torch.full_like(masked, mask_id, dtype=torch.long), target_t)
        with torch.no_grad():
            logits = model(noisy, logits_slice=span).logits.float()
        token_logp = F.log_softmax(logits, dim=-1).gather(-1, target_t.expand(b, -1)[..., None])[..., 0]
        per_sample = (token_logp * masked).sum(dim=1) / (k.to(device).double() / n_target)
        total += float(per_sample.sum())
        done += b
    return total / n_samples


def greedy_matches(model, prefix: list[int], target: list[int], mask_id: int, device) -> bool:
    """Whether the argmax of one forward pass with the whole target masked reproduces the target."""
    if not target:
        return True
    ids = torch.tensor([prefix + [mask_id] * len(target)], dtype=torch.long, device=device)
    with torch.no_grad():
        logits = model(ids, logits_slice=slice(len(prefix), len(prefix) + len(target))).logits
    return logits.argmax(-1)[0].tolist() == list(target)


def _request_seed(seed: int, *parts: str) -> int:
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return (seed + int(digest[:8], 16)) % (2 ** 31)


@register_model("mmada")
class MMaDALM(LM):
    """lm-eval adapter over :class:`mmada_bench.models.mmada.MMaDAEvalModel` (one process)."""
    def __init__(self, pretrained: Optional[str] = None, preset: str = "gsm8k-paper", gen_length: Optional[int] = None,
                 mc_num: int = 128, mc_batch_size: int = 32, seed: int = 1234, dtype: str = "float32",
                 device: Optional[str] = None, batch_size=1, max_batch_size=None, **unused) -> None:
        super().__init__()


        unknown = {k: v for k, v in unused.items() if v is not None and k not in ("trust_remote_code",)}
        if unknown:
            raise ValueError(f"unknown --model_args for mmada: {sorted(unknown)}; known: pretrained, preset, gen_length, "
                             f"mc_num, mc_batch_size, seed, dtype")
        device = device or "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():  # lm-eval's default --device is cuda
            warnings.warn(f"--device {device} but no CUDA device is available: running on the CPU")
            device = "cpu"
        self.eval_model = resolve_model(pretrained, device=device, dtype=dtype)
        if self.eval_model.family not in ("mmada", "llada"):
            raise ValueError(f"{pretrained} is a {self.eval_model.family} model; use lm-eval's own 'hf' model for it")
        self.preset = get_preset(preset)
        if self.preset.kind != "text":
            raise ValueError(f"preset {preset!r} is an {self.preset.kind} preset; pass a text preset")
        if gen_length is not None:
            settings = replace(self.preset.settings, gen_length=int(gen_length))
            self.preset = replace(self.preset, name=f"{self.preset.name}+gen_length={gen_length}", settings=settings)
        self.mc_num, self.mc_batch_size, self.seed = int(mc_num), int(mc_batch_size), int(seed)
        self.batch_size = int(batch_size) if str(batch_size).isdigit() else 1
        self._device = self.eval_model.device

    # --- lm-eval properties --------------------------------------------------------------------------
    @property
    def tokenizer_name(self) -> str:
        return str(self.eval_model.folder).replace("/", "__")

    def apply_chat_template(self, chat_history: list[dict], add_generation_prompt: bool = True) -> str:
        """MMaDA's chat template as text (the leading BOS is dropped again when generating)."""
        return format_chat(chat_history, add_generation_prompt=add_generation_prompt)

    # --- requests --------------------------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Complete each context with the sampler preset; the output is cut at the first ``until`` string."""
        bos_text = self.eval_model.tokenizer.bos_token or ""
        out = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start: start + self.batch_size]
            batch = []
            for offset, req in enumerate(chunk):
                context, gen_kwargs = req.args[0], dict(req.args[1] or {})
                until = gen_kwargs.get("until") or []
                until = [until] if isinstance(until, str) else list(until)
                if bos_text and context.startswith(bos_text):  # a chat-templated context already has BOS
                    context = context[len(bos_text):]
                batch.append(GenerationRequest(str(start + offset), context, stop=until,
                                               seed=_request_seed(self.seed, context)))
            results = self.eval_model.generate(batch, self.preset)
            for request, result in zip(batch, results):
                text = truncate_at_stops(result.text, request.stop)
                out.append(text)
                self.cache_hook.add_partial("generate_until", (request.prompt, {"until": request.stop}), text)
        return out

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(BOS + context ids, continuation ids), trailing context spaces moved to the continuation."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        tok = self.eval_model.tokenizer
        whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
        ctx = tok(context, add_special_tokens=False)["input_ids"]
        return [self.eval_model.tokens.bos] + ctx, whole[len(ctx):]

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """Monte-Carlo masked estimate of log p(continuation | context), plus the one-step greedy check."""
        model, mask_id, device = self.eval_model.model, self.eval_model.tokens.mask, self._device
        out = []
        for req in requests:
            context, continuation = req.args[0], req.args[1]
            prefix, target = self._encode_pair(context, continuation)
            generator = torch.Generator().manual_seed(_request_seed(self.seed, context, continuation))
            logp = masked_loglikelihood(model, prefix, target, mask_id, self.mc_num, self.mc_batch_size, generator, device)
            answer = (logp, greedy_matches(model, prefix, target, mask_id, device))
            out.append(answer)
            self.cache_hook.add_partial("loglikelihood", (context, continuation), answer)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Masked estimate of log p(text), in windows of the model's maximum length (each after BOS)."""
        model, tokens = self.eval_model.model, self.eval_model.tokens
        window = max(1, int(getattr(model.config, "max_sequence_length", 4096)) - 1)
        out = []
        for req in requests:
            text = req.args[0]
            ids = self.eval_model.tokenizer(text, add_special_tokens=False)["input_ids"]
            generator = torch.Generator().manual_seed(_request_seed(self.seed, text))
            total = 0.0
            for start in range(0, len(ids), window):
                total += masked_loglikelihood(model, [tokens.bos], ids[start: start + window], tokens.mask,
                                              self.mc_num, self.mc_batch_size, generator, self._device)
            out.append(total)
        return out


__all__ = ["MMaDALM", "masked_loglikelihood", "greedy_matches"]
