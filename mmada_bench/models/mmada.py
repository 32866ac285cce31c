"""The MMaDA family: a local checkpoint folder behind the harness's model interface.

Folder layout (as the released checkpoints, plus the image tokenizer beside them):
``config.json`` + ``*.safetensors`` (the LLM), the tokenizer files, and for image tasks a
``magvitv2/`` sub-folder (or ``--model DIR:vq_model=PATH``). Text goes through the one
semi-autoregressive sampler of :mod:`mmada_ref.sampling.text`; images are encoded to MAGVIT codes
and laid out as ``<|mmu|> <|soi|> img <|eoi|>`` + the chat prompt (the official inference layout).
"""
from __future__ import annotations

import hashlib
import math
import time
import warnings
from pathlib import Path
from typing import Optional

import torch

from mmada_bench.models.base import GenerationRequest, GenerationResult
from mmada_bench.models.loader import ModelLoadError
from mmada_bench.registry import register_model
from mmada_ref import MMaDAModelLM, SpecialTokens
from mmada_ref.checkpoint import fingerprint as checkpoint_fingerprint
from mmada_ref.cpu_gemm import gemm_in_use
from mmada_ref.cpu_native import unavailable_reason
from mmada_ref.image_processing import load_image, preprocess_images
from mmada_ref.magvit import MAGVITv2
from mmada_ref.prompting import Prompting, left_pad
from mmada_ref.sampling.memory import image_row_bytes, text_row_bytes
from mmada_ref.sampling.probe import rows_fit
from mmada_ref.sampling.text import generate_text
from mmada_ref.text_tokenizer import encode_chat, load_text_tokenizer
from mmada_scoring.gsm8k import truncate_at_stops


class MMaDAEvalModel:
    """An MMaDA checkpoint with its tokenizer (and MAGVIT for image inputs).

    ``family="llada"`` serves LLaDA checkpoints (same backbone and key names, text only)."""

    def __init__(self, folder: str, device: str = "cpu", dtype: str = "float32", vq_model: Optional[str] = None,
                 tokenizer: Optional[str] = None, name: Optional[str] = None, family: str = "mmada",
                 cpu_gemm: str = "onednn"):
        if cpu_gemm not in CPU_GEMMS:
            raise ModelLoadError(f"cpu_gemm={cpu_gemm!r} is not a CPU GEMM: use cpu_gemm=onednn (prepacked float32 CPU "
                                 "weights, the default), cpu_gemm=native (onednn plus the native AVX-512 cached-window "
                                 "step) or cpu_gemm=default (torch's GEMM)")
        self.family = family
        self.folder = Path(folder)
        self.device = torch.device(device)
        self.model = MMaDAModelLM.from_pretrained(self.folder, torch_dtype=dtype, device=self.device)
        self.gemm = _choose_gemm(self.model, cpu_gemm)
        self._tokenizer_path = Path(tokenizer) if tokenizer else self.folder
        self.tokenizer = load_text_tokenizer(self._tokenizer_path)
        self.tokens = SpecialTokens.from_tokenizer(self.tokenizer, self.model.config)
        self.name = name or self.folder.name
        self.is_smoke = False
        self._vq_path = Path(vq_model) if vq_model else self.folder / "magvitv2"
        self._vq = None
        self._fingerprint: Optional[str] = None

    # --- interface --------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """The checkpoint's, the tokenizer's and the image tokenizer's fingerprints together (all change outputs)."""
        if self._fingerprint is None:
            folders = [self.folder, self._tokenizer_path, self._vq_path]
            parts = [checkpoint_fingerprint(f) if f.is_dir() else "-" for f in folders]
            self._fingerprint = hashlib.sha256("/".join(parts).encode()).hexdigest()[:16]
        return self._fingerprint

    def generate(self, requests: list[GenerationRequest], preset) -> list[GenerationResult]:
        """Complete a batch of requests with the text sampler settings of ``preset``.

        A prompt that does not fit the model's context with ``gen_length`` new tokens, and a row whose logits were
        ever NaN / inf, end as error results (never as text); the other rows of the batch are unaffected."""
        if preset.kind != "text":
            raise ValueError(f"preset {preset.name!r} is an {preset.kind} preset; text tasks need a text preset")
        prompts = [self._prompt_ids(r) for r in requests]
        limit = int(self.model.config.max_sequence_length)
        results: list[Optional[GenerationResult]] = [None] * len(requests)
        for i, ids in enumerate(prompts):
            if len(ids) + preset.settings.gen_length > limit:
                results[i] = GenerationResult(text="", error=(
                    f"prompt too long: {len(ids)} tokens + gen_length {preset.settings.gen_length} exceed the model's "
                    f"max_sequence_length {limit} (no truncation is applied; shorten the prompt or use fewer shots)"))
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            for i, result in zip(todo, self._sample([requests[i] for i in todo], [prompts[i] for i in todo], preset)):
                results[i] = result
        return results

    def _sample(self, requests: list[GenerationRequest], prompts: list[list[int]], preset) -> list[GenerationResult]:
        ids, mask = left_pad(prompts, self.tokens.pad)
        seed = requests[0].seed
        if seed is not None:
            torch.manual_seed(seed)
        stops = [s for r in requests for s in r.stop]
        should_stop = (lambda row: any(s in self._decode(row) for s in stops)) if stops else None
        start = time.perf_counter()
        stop_ids = [self.tokens.eos, self.tokens.eot_id] if preset.settings.stop_at_eos else ()
        sample = generate_text(self.model, ids.to(self.device), preset.settings, self.tokens.mask,
                               attention_mask=mask.to(self.device), stop_token_ids=stop_ids, should_stop=should_stop)
        elapsed = time.perf_counter() - start
        results = []
        forward_share = sample.stats.total_time / len(requests)
        for i, (row, request) in enumerate(zip(sample.generated.tolist(), requests)):
            nfe = sample.stats.row_nfe[i] if sample.stats.row_nfe else sample.stats.nfe
            if sample.stats.nonfinite_rows[i]:
                results.append(GenerationResult(text="", error="model produced NaN/inf logits (check the checkpoint's "
                                                                "weights and --dtype)", nfe=nfe))
                continue
            useful = self._useful(row)
            results.append(GenerationResult(
                text=self.decode_generation(row, request.stop), n_generated_tokens=len(useful), nfe=nfe,
                latency_s=elapsed / len(requests),
                stats={"tokens_per_step": sample.stats.mean_tokens_per_step, "stopped_early": nfe < sample.stats.nfe
                       or sample.stopped_early, "batch_size": len(requests), "prompt_tokens": len(prompts[i]),
                       "padded_length": int(ids.shape[1]), "forward_s": forward_share}))
        return results

    def prompt_length(self, request: GenerationRequest) -> int:
        """Token length of the request's prompt as :meth:`generate` builds it (the image is not encoded)."""
        text_ids = self._text_ids(request)
        if request.image is None:
            return len(text_ids)
        return len(Prompting(self.tokens, 0).mmu_inference([0] * int(self.model.config.num_vq_tokens), text_ids))

    def row_bytes(self, prompt_length: int, preset) -> int:
        """Estimated memory of one batch row of ``preset`` after a ``prompt_length``-token prompt."""
        config, dtype_bytes = self.model.config, next(self.model.parameters()).element_size()
        if preset.kind == "image":
            tokens = int(config.num_vq_tokens)
            return image_row_bytes(config, prompt_length + tokens + 2, tokens, preset.settings.guidance_scale > 0,
                                   dtype_bytes)
        return text_row_bytes(config, prompt_length + preset.settings.gen_length, preset.settings, dtype_bytes)

    def rows_fit(self, rows: int, prompt_length: int, preset) -> bool:
        """Whether the largest call of a ``rows``-row batch runs on the device (see :func:`rows_fit`)."""
        return rows_fit(self.model, rows, prompt_length, preset, self.tokens.mask)

    # --- helpers --------------------------------------------------------------------------------
    def _text_ids(self, request: GenerationRequest) -> list[int]:
        if request.messages:
            return encode_chat(self.tokenizer, request.messages,
                               **({"eot": request.chat_eot} if request.chat_eot is not None else {}))
        return [self.tokens.bos] + self.tokenizer(request.prompt, add_special_tokens=False)["input_ids"]

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        text_ids = self._text_ids(request)
        if request.image is None:
            return text_ids
        if self.family == "llada":
            raise ValueError(f"{self.name} is a LLaDA checkpoint (text only): image tasks need an MMaDA checkpoint")
        codes = self.encode_image(request.image)
        return Prompting(self.tokens, 0).mmu_inference(self.tokens.image_ids(codes).tolist(), text_ids)

    def encode_image(self, image) -> torch.Tensor:
        """PIL image (or path/bytes) -> MAGVIT codes ``[N]`` at the checkpoint's resolution."""
        vq = self.vq_model()
        side = int(math.isqrt(self.model.config.num_vq_tokens))
        resolution = side * vq.config.downsample_factor
        pixels = preprocess_images([load_image(image)], resolution).to(self.device)
        with torch.no_grad():
            return vq.get_code(pixels)[0].cpu()

    def vq_model(self):
        """The MAGVIT-v2 image tokenizer, loaded on first use."""
        if self._vq is None:
            if not self._vq_path.exists():
                raise FileNotFoundError(f"image tasks need the MAGVIT-v2 tokenizer: none at {self._vq_path}; put it in "
                                        f"<model>/magvitv2/ or pass --model DIR:vq_model=PATH")
            self._vq = MAGVITv2.from_pretrained(self._vq_path).to(self.device).eval()
        return self._vq

    def decode_generation(self, row: list[int], stop: list[str]) -> str:
        """The official decoding (``evaluation/lm/eval_llada.py``): decode every generated id with the special
        tokens written out, cut at the first stop string, then decode that text again without special tokens.
        Text after an EOS / EoT token is kept (as officially), leftover masks vanish with the special tokens."""
        text = self.tokenizer.decode(row, skip_special_tokens=False)
        text = truncate_at_stops(text, stop)
        return self._decode(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _useful(self, row: list[int]) -> list[int]:
        """Generated ids before the first EOS / EoT, without leftover masks (the generated-token count)."""
        stop = {self.tokens.eos, self.tokens.eot_id}
        out = []
        for t in row:
            if t in stop:
                break
            if t != self.tokens.mask:
                out.append(t)
        return out

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


#: ``cpu_gemm`` model option: oneDNN prepacked weights (float32 CPU); those plus the native AVX-512 kernels for the
#: samplers' cached-window steps (:mod:`mmada_ref.cpu_native`, built on first use); or torch's default GEMM everywhere
CPU_GEMMS = ("onednn", "native", "default")


def _choose_gemm(model: MMaDAModelLM, cpu_gemm: str) -> str:
    """Pack the weights where asked and possible; returns the GEMM the forwards use ("native" / "onednn" /
    "default"), which the run id and manifest record (they differ in the last bits of the logits)."""
    if cpu_gemm in ("onednn", "native"):
        model.pack_cpu_weights()
    if cpu_gemm == "native" and not model.prepare_native_step():
        warnings.warn(f"cpu_gemm=native: {unavailable_reason() or 'the model is not float32 on a CPU'}; using onednn")
    return gemm_in_use(model)


@register_model("mmada")
def load_mmada(spec: str, *, device: str = "cpu", dtype: str = "float32", **options) -> MMaDAEvalModel:
    """``DIR`` or ``DIR:vq_model=PATH,tokenizer=PATH``."""
    folder, _, opts = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    kwargs = dict(part.split("=", 1) for part in filter(None, opts.split(",")))
    unknown = set(kwargs) - {"vq_model", "tokenizer", "name", "cpu_gemm"}
    if unknown:
        raise ValueError(f"unknown mmada model option(s) {sorted(unknown)}; use vq_model=PATH, tokenizer=PATH, "
                         f"cpu_gemm={'|'.join(CPU_GEMMS)}")
    kwargs.update(options)
    return MMaDAEvalModel(folder, device=device, dtype=dtype, **kwargs)


@register_model("llada")
def load_llada(spec: str, *, device: str = "cpu", dtype: str = "float32", **options) -> MMaDAEvalModel:
    """A LLaDA checkpoint folder (``model_type: llada`` / ``LLaDAModelLM``): ``DIR``, ``llada:DIR`` or
    ``llada:DIR,tokenizer=PATH``; the MMaDA backbone without the image side, labelled family ``llada``."""
    spec = spec[len("llada:"):] if spec.startswith("llada:") else spec
    folder, _, opts = spec.partition(",") if not Path(spec).exists() else (spec, "", "")
    kwargs = dict(part.split("=", 1) for part in filter(None, opts.split(",")))
    unknown = set(kwargs) - {"tokenizer", "name", "cpu_gemm"}
    if unknown:
        raise ValueError(f"unknown llada model option(s) {sorted(unknown)}; use tokenizer=PATH, name=NAME, "
                         f"cpu_gemm={'|'.join(CPU_GEMMS)}")
    kwargs.update(options)
    return MMaDAEvalModel(folder, device=device, dtype=dtype, family="llada", **kwargs)
