"""Speed accounting shared by the sampler benchmark and ``python -m mmada_bench profile``.

Counted as shared/spec/performance_anchors.md's glossary says: NFE per sample (a CFG call of batch
2B counts once), tokens per step, wall time per sample, useful tokens/s (before the first stop),
positions/s (every generated position), peak memory, MFU against the measured large-matmul rate of
the device (on a CPU the "peak" is that measured rate, not a datasheet number).
"""
from __future__ import annotations

import dataclasses
import platform
import statistics
import time
from typing import Optional

import torch

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
    """Best FLOP/s of a large square matmul on ``device`` (the MFU denominator)."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def forward_flops_for_stats(model, batch: int, stats, prompt_len: int, gen_len: int,
                            settings: TextSamplerSettings) -> float:
    """Total model FLOPs of one sampler call, from the positions each call ran."""
    total_len = prompt_len + gen_len
    flops = 0.0
    for positions in stats.positions_per_call:
        q_len = positions // batch if settings.cfg_scale == 0 else positions // (2 * batch)
        mult = 1 if settings.cfg_scale == 0 else 2
        flops += mult * model.matmul_flops(batch, q_len, kv_len=total_len, logits_len=settings.block_length)
    return flops


def profile_text_sampler(model, settings: TextSamplerSettings, mask_id: int, batch: int, prompt_len: int,
                         repeats: int = 1, vocab_high: Optional[int] = None, peak_flops: Optional[float] = None,
                         stop_token_ids=()) -> dict:
    """Run the text sampler on random prompts and return one profile row (times are per sample)."""
    device = next(model.parameters()).device
    high = vocab_high or mask_id
    prompts = torch.randint(0, high, (batch, prompt_len), generator=torch.Generator().manual_seed(0)).to(device)
    latencies, stats = [], None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(repeats):
        with torch.no_grad():
            start = time.perf_counter()
            sample = generate_text(model, prompts, settings, mask_id, stop_token_ids=stop_token_ids)
            _sync(device)
            latencies.append(time.perf_counter() - start)
        stats = sample.stats
    wall = statistics.median(latencies)
    flops = forward_flops_for_stats(model, batch, stats, prompt_len, settings.gen_length, settings)
    useful = int((sample.generated != mask_id).sum())
    row = {
        "batch_size": batch, "prompt_length": prompt_len, **{f"setting_{k}": v for k, v in dataclasses.asdict(settings).items()},
        "nfe": stats.nfe, "tokens_per_step": stats.mean_tokens_per_step,
        "latency_p50_s": wall, "latency_p95_s": _p95(latencies), "time_per_sample_s": wall / batch,
        "positions_per_s": batch * settings.gen_length / wall, "useful_tokens_per_s": useful / wall,
        "step_time_mean_s": statistics.mean(stats.step_times), "peak_memory_bytes": stats.peak_memory_bytes,
        "model_flops": flops, "achieved_flops_per_s": flops / wall,
        "device": device_name(device), "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "torch_version": torch.__version__,
    }
    if peak_flops:
        row["peak_flops_per_s"] = peak_flops
        row["mfu"] = flops / wall / peak_flops
    return row


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
