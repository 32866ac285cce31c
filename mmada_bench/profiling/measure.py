"""Speed accounting shared by the sampler benchmark and ``python -m mmada_bench profile``.

Counted as shared/spec/performance_anchors.md's glossary says: NFE per sample (a CFG call of batch
2B counts once), tokens per step, wall time per sample, useful tokens/s (before the first stop),
positions/s (every generated position), peak memory, MFU against the measured large-matmul rate of
the device (on a CPU the "peak" is that measured rate, not a datasheet number).

Timing uses CUDA events on a GPU (perf_counter on a CPU); peak memory is
``torch.cuda.max_memory_allocated`` on a GPU and the process's max RSS on a CPU (labelled by
``peak_memory_kind``). ``profile_text_sampler`` also serves understanding prompts (image tokens in
``prompt_ids``); ``profile_image_sampler`` profiles the MaskGIT text-to-image sampler.
"""
from __future__ import annotations

import dataclasses
import platform
import resource
import statistics
import time
from typing import Optional, Sequence

import torch

from mmada_ref.cpu_gemm import PackedLinear, gemm_in_use
from mmada_ref.cpu_native import loaded_kernels
from mmada_ref.sampling.image import generate_images
from mmada_ref.sampling.presets import TextSamplerSettings
from mmada_ref.sampling.text import generate_text


def device_name(device: torch.device) -> str:
    """Human-readable device name (GPU model, or CPU model with its thread count)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({torch.get_num_threads()} threads)"


def measure_matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32, n: Optional[int] = None,
                        repeats: int = 5) -> float:
    """Best FLOP/s of a large square matmul on ``device`` over the GEMMs a model can use (the MFU denominator)."""
    return max(matmul_rates(device, dtype, n, repeats).values())


def matmul_rates(device: torch.device, dtype: torch.dtype = torch.float32, n: Optional[int] = None,
                 repeats: int = 5) -> dict:
    """Best FLOP/s of an ``n x n`` matmul per GEMM: "default" (``a @ b``) and, for float32 on a CPU with oneDNN,
    "onednn" (the prepacked linear of :mod:`mmada_ref.cpu_gemm`, the harness's CPU default), and "native" (the
    kernels of :mod:`mmada_ref.cpu_native`) where this process has loaded them."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    kernels = {"default": lambda: a @ b}
    layer = PackedLinear(n, n, bias=False).to(device=device, dtype=dtype)
    if layer.pack():
        kernels["onednn"] = lambda: layer(a)
    native = loaded_kernels() if device.type == "cpu" and dtype == torch.float32 else None
    if native is not None:
        panels = native.pack_weight(b)
        kernels["native"] = lambda: native.linear(a, panels, n)
    rates = {}
    with torch.no_grad():
        for name, fn in kernels.items():
            best = float("inf")
            for _ in range(repeats + 1):
                _sync(device)
                start = time.perf_counter()
                fn()
                _sync(device)
                best = min(best, time.perf_counter() - start)
            rates[name] = 2 * n**3 / best
    return rates


class DeviceTimer:
    """Wall time of a block: CUDA events on a GPU, ``perf_counter`` (after a sync) elsewhere."""
    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = 0.0
        self.method = "cuda_events" if device.type == "cuda" else "perf_counter"

    def __enter__(self):
        if self.device.type == "cuda":
            self._start, self._end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self._end.record()
            self._end.synchronize()
            self.seconds = self._start.elapsed_time(self._end) / 1000.0
        else:
            self.seconds = time.perf_counter() - self._t0
        return False


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window (GPU only; the CPU figure is the process's lifetime max RSS)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[int, str]:
    """``(bytes, kind)``: ``cuda_max_allocated`` since the last reset, or ``cpu_max_rss`` of the process."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "cpu_max_rss_process"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def count_generated(generated: torch.Tensor, mask_id: int, stop_token_ids: Sequence[int] = ()) -> tuple[int, int]:
    """``(positions, useful)`` of ``[B, G]`` generated ids: positions = every position decided (not MASK);
    useful = decided tokens before the first stop id of their row (no padding, no prompt)."""
    decided = generated != mask_id
    positions = int(decided.sum())
    if stop_token_ids:
        stops = torch.isin(generated, torch.tensor(list(stop_token_ids), device=generated.device))
        before_stop = torch.cumsum(stops.long(), dim=1) == 0
        decided = decided & before_stop
    return positions, int(decided.sum())


def forward_flops_for_stats(model, batch: int, stats, prompt_len: int, gen_len: int,
                            settings: TextSamplerSettings) -> float:
    """Total model FLOPs of one sampler call, from the positions and rows each call ran (finished rows leave)."""
    total_len = prompt_len + gen_len
    rows_per_call = stats.rows_per_call or [batch] * len(stats.positions_per_call)
    flops = 0.0
    for positions, rows in zip(stats.positions_per_call, rows_per_call):
        q_len = positions // rows if settings.cfg_scale == 0 else positions // (2 * rows)
        mult = 1 if settings.cfg_scale == 0 else 2
        flops += mult * model.matmul_flops(rows, q_len, kv_len=total_len, logits_len=settings.block_length)
    return flops


def profile_text_sampler(model, settings: TextSamplerSettings, mask_id: int, batch: int, prompt_len: int,
                         repeats: int = 1, vocab_high: Optional[int] = None, peak_flops: Optional[float] = None,
                         stop_token_ids=(), prompt_ids: Optional[torch.Tensor] = None,
                         attention_mask: Optional[torch.Tensor] = None, warmup: int = 0,
                         extra_seconds: Optional[Sequence[float]] = None) -> dict:
    """Run the text sampler and return one profile row (latencies are per batch call, ``time_per_sample_s``
    per sample). Random prompts of ``prompt_len`` ids below ``vocab_high`` unless ``prompt_ids`` ``[B, L]``
    is given (e.g. an understanding prompt with image tokens). ``extra_seconds[i]`` is added to repeat i's
    latency (e.g. image encoding of understanding requests)."""
    device = next(model.parameters()).device
    high = vocab_high or mask_id
    if prompt_ids is None:
        prompt_ids = torch.randint(0, high, (batch, prompt_len), generator=torch.Generator().manual_seed(0))
    prompt_ids = prompt_ids.to(device)
    batch, prompt_len = prompt_ids.shape
    mask = None if attention_mask is None else attention_mask.to(device)
    latencies, stats, sample = [], None, None
    for _ in range(warmup):
        with torch.no_grad():
            generate_text(model, prompt_ids, settings, mask_id, attention_mask=mask, stop_token_ids=stop_token_ids)
    reset_peak_memory(device)
    for i in range(repeats):
        with torch.no_grad(), DeviceTimer(device) as timer:
            sample = generate_text(model, prompt_ids, settings, mask_id, attention_mask=mask,
                                   stop_token_ids=stop_token_ids)
        latencies.append(timer.seconds + (extra_seconds[i] if extra_seconds else 0.0))
        stats = sample.stats
    wall = statistics.median(latencies)
    flops = forward_flops_for_stats(model, batch, stats, prompt_len, settings.gen_length, settings)
    positions, useful = count_generated(sample.generated, mask_id, stop_token_ids)
    memory, memory_kind = peak_memory(device)
    row = {
        "batch_size": batch, "prompt_length": prompt_len, **{f"setting_{k}": v for k, v in dataclasses.asdict(settings).items()},
        "nfe": stats.nfe, "tokens_per_step": stats.mean_tokens_per_step,
        "time_per_sample_s": wall / batch, "generated_positions": positions, "useful_tokens": useful,
        "positions_per_s": positions / wall, "useful_tokens_per_s": useful / wall,
        **_measurement_fields(model, device, stats, latencies, flops, memory, memory_kind, repeats, warmup, peak_flops),
    }
    return row


def profile_image_sampler(model, magvit, prompting, settings, batch: int, prompt_len: int, num_vq_tokens: int,
                          repeats: int = 1, warmup: int = 0, vocab_high: Optional[int] = None,
                          peak_flops: Optional[float] = None, seed: int = 0) -> dict:
    """Run the MaskGIT text-to-image sampler (+ MAGVIT decoding) on random text prompts; one profile row.

    Needs :mod:`mmada_ref.sampling.image`; NFE counts a CFG call on 2B rows once, FLOPs count both halves."""

    device = next(model.parameters()).device
    high = vocab_high or prompting.tokens.bos
    gen = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(0, high, (prompt_len,), generator=gen).tolist() for _ in range(batch)]

    def once():
        return generate_images(model, magvit, prompting, prompts, settings,
                               generator=torch.Generator(device=device).manual_seed(seed), num_vq_tokens=num_vq_tokens)

    for _ in range(warmup):
        once()
    reset_peak_memory(device)
    latencies, out = [], None
    for _ in range(repeats):
        with DeviceTimer(device) as timer:
            out = once()
        latencies.append(timer.seconds)
    stats = out.stats
    seq_len = out.sample.input_ids.shape[1]
    flops = 0.0
    for positions in stats.positions_per_call:
        flops += model.matmul_flops(positions // seq_len, seq_len, kv_len=seq_len, logits_len=num_vq_tokens)
    wall = statistics.median(latencies)
    memory, memory_kind = peak_memory(device)
    row = {
        "batch_size": batch, "prompt_length": prompt_len, "sequence_length": seq_len, "image_tokens": num_vq_tokens,
        **{f"setting_{k}": v for k, v in settings.to_dict().items()},
        "nfe": stats.nfe, "tokens_per_step": stats.mean_tokens_per_step,
        "time_per_sample_s": wall / batch, "images_per_s": batch / wall, "s_per_image": wall / batch,
        "generated_positions": batch * num_vq_tokens, "positions_per_s": batch * num_vq_tokens / wall,
        **_measurement_fields(model, device, stats, latencies, flops, memory, memory_kind, repeats, warmup, peak_flops),
    }
    return row


def _measurement_fields(model, device, stats, latencies, flops, memory, memory_kind, repeats, warmup,
                        peak_flops) -> dict:
    """Latency percentiles, memory, FLOPs/MFU and the environment: the columns every profile row shares."""
    wall = statistics.median(latencies)
    fields = {
        "latency_p50_s": wall, "latency_p95_s": percentile(latencies, 95), "latency_mean_s": statistics.mean(latencies),
        "step_time_mean_s": statistics.mean(stats.step_times), "peak_memory_bytes": memory,
        "peak_memory_kind": memory_kind, "model_flops": flops, "achieved_flops_per_s": flops / wall,
        "device": device_name(device), "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "gemm": gemm_in_use(model),
        "torch_version": torch.__version__, "timing_method": DeviceTimer(device).method, "repeats": repeats,
        "warmup": warmup,
    }
    if peak_flops:
        fields.update(peak_flops_per_s=peak_flops, mfu=flops / wall / peak_flops)
    return fields


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
