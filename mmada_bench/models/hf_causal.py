"""Autoregressive baselines (family ``hf-causal``): any local transformers ``AutoModelForCausalLM`` folder.

``--model DIR`` (a config.json whose ``model_type`` transformers maps to a causal LM: llama, qwen2,
mistral, ...) or ``--model hf-causal:DIR``. Decoding is greedy ``generate`` with the request's stop
strings; ``max_new_tokens`` is the preset's ``gen_length``, so a task's protocol length carries over
(the diffusion-specific settings, steps and blocks, do not apply). Requests with ``messages`` go
through the tokenizer's own chat template.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import torch

from mmada_bench.models.base import GenerationRequest, GenerationResult
from mmada_bench.registry import register_model
from mmada_ref.checkpoint import fingerprint as checkpoint_fingerprint


class HFCausalEvalModel:
    """A local causal LM with its tokenizer; greedy decoding, left padding for batches."""
    family = "hf-causal"

    def __init__(self, folder: str, device: str = "cpu", dtype: str = "float32", name: Optional[str] = None):
        from transformers import (  # transformers is slow to import: loaded on use
            AutoModelForCausalLM,
            AutoTokenizer,
        )

        self.folder = Path(folder)
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True, padding_side="left")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(str(self.folder), local_files_only=True,
                                                          dtype=getattr(torch, dtype)).to(self.device).eval()
        self.name = name or self.folder.name
        self.is_smoke = False
        self._fingerprint: Optional[str] = None

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = checkpoint_fingerprint(self.folder)
        return self._fingerprint

    def prompt_text(self, request: GenerationRequest) -> str:
        """The text fed to the model: the chat template applied to ``messages``, else the plain prompt."""
        if not request.messages:
            return request.prompt
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"{self.name}: the task variant asks for a chat template but the tokenizer has none; "
                             f"use a plain-completion variant (e.g. --variant lm-eval)")
        return self.tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)

    def generate(self, requests: list[GenerationRequest], preset) -> list[GenerationResult]:
        """Greedy completion of each request, at most ``preset.settings.gen_length`` new tokens."""
        if any(r.image is not None for r in requests):
            raise ValueError(f"{self.name} is a text-only causal LM: image tasks need an MMaDA checkpoint")
        max_new = int(getattr(preset.settings, "gen_length", 256))
        texts = [self.prompt_text(r) for r in requests]
        # chat templates write their own BOS; plain prompts get the tokenizer's usual special tokens
        enc = self.tokenizer(texts, return_tensors="pt", padding=True,
                             add_special_tokens=not any(r.messages for r in requests))
        stops = sorted({s for r in requests for s in r.stop})
        if requests[0].seed is not None:
            torch.manual_seed(requests[0].seed)
        start = time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(**enc.to(self.device), max_new_tokens=max_new, do_sample=False,
                                      stop_strings=stops or None, tokenizer=self.tokenizer,
                                      pad_token_id=self.tokenizer.pad_token_id)
        elapsed = time.perf_counter() - start
        new = out[:, enc["input_ids"].shape[1]:].tolist()
        results = []
        for row in new:
            useful = _until_eos(row, self.tokenizer.eos_token_id)
            results.append(GenerationResult(text=self.tokenizer.decode(useful, skip_special_tokens=True),
                                            n_generated_tokens=len(useful), nfe=len(useful),
                                            latency_s=elapsed / len(requests), stats={"batch_size": len(requests)}))
        return results


def _until_eos(row: list[int], eos: Optional[int]) -> list[int]:
    """Generated ids before the first EOS (what follows it in a batch is padding)."""
    return row[: row.index(eos)] if eos in row else row


@register_model("hf-causal")
def load_hf_causal(spec: str, *, device: str = "cpu", dtype: str = "float32", **options) -> HFCausalEvalModel:
    """``DIR`` or ``hf-causal:DIR`` (optionally ``hf-causal:DIR,name=NAME``)."""
    spec = spec[len("hf-causal:"):] if spec.startswith("hf-causal:") else spec
    folder, _, opts = spec.partition(",") if not Path(spec).exists() else (spec, "", "")
    if not Path(folder).is_dir():
        raise ValueError(f"hf-causal: {folder} is not a folder; pass a local transformers checkpoint folder")
    kwargs = dict(part.split("=", 1) for part in filter(None, opts.split(",")))
    if set(kwargs) - {"name"}:
        raise ValueError(f"unknown hf-causal option(s) {sorted(set(kwargs) - {'name'})}; use name=NAME")
    kwargs.update(options)
    return HFCausalEvalModel(folder, device=device, dtype=dtype, **kwargs)
