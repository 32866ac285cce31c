"""``python -m mmada_bench profile``: latency / throughput of the three request shapes of a checkpoint.

Shapes (``--tasks``): ``text`` (text generation from a text prompt), ``mmu`` (understanding: an
image encoded by MAGVIT + a text prompt, answered by the text sampler; encoding is inside the
latency) and ``t2i`` (MaskGIT text-to-image + MAGVIT decoding). A task card name (``gsm8k``) profiles
the text shape with that card's preset, so the row joins its leaderboard rows for the speed/quality plot.
Counting follows shared/spec/performance_anchors.md's glossary (:mod:`mmada_bench.profiling.measure`).
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
import pandas as pd
import torch
from PIL import Image

from mmada_bench import __version__
from mmada_bench.cards.discovery import get_task
from mmada_bench.models.loader import ModelLoadError, resolve_model
from mmada_bench.models.smoke import model_label
from mmada_bench.profiling.measure import (
    DeviceTimer,
    measure_matmul_peak,
    profile_image_sampler,
    profile_text_sampler,
)
from mmada_bench.results.environment import git_sha, utc_now
from mmada_ref.prompting import Prompting
from mmada_ref.sampling.presets import get_preset

SHAPES = ("text", "mmu", "t2i")
#: presets profiled when --presets is not given: (packaged smoke model, real checkpoint)
DEFAULT_PRESETS = {"text": (["ci"], ["gsm8k-paper", "fast"]), "mmu": (["ci-mmu"], ["mmu-vlmevalkit"]),
                   "t2i": (["t2i-ci"], ["t2i-repo"])}
#: prompt tokens when --prompt-length is not given: (smoke, real); real text ~ GSM8K 5-shot
DEFAULT_PROMPT_LENGTH = {"text": (64, 900), "mmu": (32, 64), "t2i": (16, 64)}


_PEAK_CACHE: dict = {}


@dataclass
class ProfileSettings:
    """Every setting of a profile invocation (recorded in each row's ``settings`` JSON)."""
    model: Optional[str] = None  # None = packaged smoke model
    tasks: list[str] = field(default_factory=lambda: list(SHAPES))
    presets: Optional[list[str]] = None
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    prompt_length: Optional[int] = None
    t2i_max_text_len: int = 512  # official text width of the t2i layout (1539-token sequence at 1024 codes)
    repeats: int = 3
    warmup: int = 1
    device: str = "cpu"
    dtype: str = "float32"
    seed: int = 0
    output_dir: str = "leaderboards"


@dataclass
class ShapeJob:
    task: str
    shape: str
    preset: object  # mmada_ref.sampling.presets.Preset


def plan_jobs(settings: ProfileSettings, smoke: bool) -> list[ShapeJob]:
    """(task, shape, preset) combinations; raises ValueError on unknown names or mismatched presets."""
    jobs, problems = [], []
    for task in settings.tasks:
        shape, card_preset = _shape_of(task, smoke)
        wanted = settings.presets or ([card_preset] if card_preset else DEFAULT_PRESETS[shape][0 if smoke else 1])
        kind = "image" if shape == "t2i" else "text"
        matching = [get_preset(name) for name in wanted if get_preset(name).kind == kind]
        if shape != "t2i":  # presets named *mmu* belong to the understanding shape, the others to text
            own = [p for p in matching if ("mmu" in p.name) == (shape == "mmu")]
            matching = own or matching
        if not matching:
            problems.append(f"{task!r} needs a {kind} preset, e.g. {DEFAULT_PRESETS[shape][1][0]}")
            continue
        jobs += [ShapeJob(task, shape, preset) for preset in matching]
    if not jobs:
        raise ValueError(f"none of the presets {settings.presets} fits the requested shapes: {'; '.join(problems)}")
    for problem in problems:
        warnings.warn(f"skipped: {problem} (none in --presets)")
    return jobs


def _shape_of(task: str, smoke: bool) -> tuple[str, Optional[str]]:
    if task in SHAPES:
        return task, None

    try:
        card = get_task(task)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"--tasks {task!r}: not a shape ({', '.join(SHAPES)}) nor a usable task card ({exc})") from None
    shape = "t2i" if card.preset.startswith("t2i") else ("mmu" if card.preset.startswith("mmu") else "text")
    return shape, (DEFAULT_PRESETS[shape][0][0] if smoke else card.preset)


def run_profiles(settings: ProfileSettings, progress=print) -> list[dict]:
    """Profile every job x batch size; returns the rows (not yet stored)."""
    wrapper = resolve_model(settings.model, device=settings.device, dtype=settings.dtype)
    if not hasattr(wrapper, "model") or not hasattr(wrapper, "tokens"):
        raise ModelLoadError(f"profile needs an MMaDA checkpoint folder, not the {wrapper.family!r} model")
    smoke = bool(getattr(wrapper, "is_smoke", False))
    jobs = plan_jobs(settings, smoke)
    device = torch.device(settings.device)
    key = (str(device), settings.dtype)
    if key not in _PEAK_CACHE:  # measured once per process and device/dtype
        _PEAK_CACHE[key] = measure_matmul_peak(device, getattr(torch, settings.dtype))
    peak = _PEAK_CACHE[key]
    label = model_label(wrapper)
    progress(f"{wrapper.name}{f' [{label}]' if label else ''} on {settings.device} ({settings.dtype}): "
             f"matmul peak {peak / 1e9:.1f} GFLOP/s")
    common = _common_columns(wrapper, smoke, settings, git_sha(), utc_now())
    rows = []
    for job in jobs:
        for batch in settings.batch_sizes:
            try:
                row = _profile_one(wrapper, job, batch, settings, peak, smoke)
            except ImportError as exc:  # the image sampler module may be absent in a partial checkout
                warnings.warn(f"{job.task} ({job.shape}) skipped: {exc}")
                break
            row = {**common, **row, "task": job.task, "shape": job.shape, "preset": job.preset.name,
                   "preset_settings": json.dumps(job.preset.settings.to_dict(), sort_keys=True)}
            row["settings"] = json.dumps({"command": asdict(settings), "row": _row_settings(row)}, sort_keys=True,
                                         default=str)
            row["profile_key"] = _profile_key(row)
            rows.append(row)
            progress(format_row(row))
    _remeasure_peak(rows, device, settings.dtype, progress)
    return rows


def _remeasure_peak(rows: list[dict], device: torch.device, dtype: str, progress) -> None:
    """Measure the matmul peak again after profiling and use the larger figure (a busy device lowers a
    single measurement, which would inflate MFU); warn when MFU still exceeds 1."""

    if not rows:
        return
    key = (str(device), dtype)
    _PEAK_CACHE[key] = max(_PEAK_CACHE[key], measure_matmul_peak(device, getattr(torch, dtype)))
    for row in rows:
        row["peak_flops_per_s"] = _PEAK_CACHE[key]
        row["mfu"] = row["achieved_flops_per_s"] / _PEAK_CACHE[key]
    if any(row["mfu"] > 1 for row in rows):
        warnings.warn("MFU above 1: the device was busy while its matmul peak was measured (shared CPU?); "
                      "treat the MFU column of this profile as unreliable")
    progress(f"matmul peak used for MFU: {_PEAK_CACHE[key] / 1e9:.1f} GFLOP/s (best of before/after)")


def _profile_one(wrapper, job: ShapeJob, batch: int, settings: ProfileSettings, peak: float, smoke: bool) -> dict:
    model, tokens = wrapper.model, wrapper.tokens
    prompt_len = settings.prompt_length or DEFAULT_PROMPT_LENGTH[job.shape][0 if smoke else 1]
    high = min(tokens.bos, tokens.eos, tokens.mask)  # ordinary text ids lie below the special tokens
    torch.manual_seed(settings.seed)
    if job.shape == "t2i":
        row = profile_image_sampler(model, wrapper.vq_model(), Prompting(tokens, settings.t2i_max_text_len),
                                    job.preset.settings, batch, prompt_len, model.config.num_vq_tokens,
                                    settings.repeats, settings.warmup, vocab_high=high, peak_flops=peak,
                                    seed=settings.seed)
        s = job.preset.settings
        row.update(steps=s.timesteps, cfg_scale=s.guidance_scale)
        return row
    s = job.preset.settings
    stops = [tokens.eos, tokens.eot_id] if s.stop_at_eos else []
    prompt_ids, extra, image_tokens = None, None, 0
    if job.shape == "mmu":
        prompt_ids, extra, image_tokens = _mmu_prompts(wrapper, batch, prompt_len, high, settings)
    row = profile_text_sampler(model, s, tokens.mask, batch, prompt_len, settings.repeats, vocab_high=high,
                               peak_flops=peak, stop_token_ids=stops, prompt_ids=prompt_ids, warmup=settings.warmup,
                               extra_seconds=extra)
    row.update(image_tokens=image_tokens, sequence_length=row["prompt_length"] + s.gen_length, gen_length=s.gen_length,
               steps=s.steps, block_length=s.block_length, threshold=s.threshold, factor=s.factor,
               cache_mode=s.cache, cfg_scale=s.cfg_scale,
               image_encode_s=(sum(extra) / len(extra)) if extra else None)
    return row


def _mmu_prompts(wrapper, batch: int, text_len: int, high: int, settings: ProfileSettings):
    """Random images -> MAGVIT codes (timed per repeat) laid out as the official understanding prompt."""
    rng = np.random.default_rng(settings.seed)
    vq = wrapper.vq_model()
    side = int(wrapper.model.config.num_vq_tokens ** 0.5) * vq.config.downsample_factor
    images = [Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(batch)]
    gen = torch.Generator().manual_seed(settings.seed)
    texts = [[wrapper.tokens.bos] + torch.randint(0, high, (text_len - 1,), generator=gen).tolist() for _ in range(batch)]
    prompting = Prompting(wrapper.tokens, 0)
    encode_seconds, rows = [], None
    for _ in range(settings.repeats):
        with DeviceTimer(torch.device(settings.device)) as timer:
            codes = [wrapper.encode_image(img) for img in images]
        encode_seconds.append(timer.seconds)
        rows = [prompting.mmu_inference(wrapper.tokens.image_ids(c).tolist(), t) for c, t in zip(codes, texts)]
    return torch.tensor(rows), encode_seconds, len(codes[0])


def _common_columns(wrapper, smoke: bool, settings: ProfileSettings, sha: str, now: str) -> dict:
    import transformers  # transformers is slow to import: loaded on use


    return {"created_at": now, "model_name": wrapper.name + (" [smoke]" if smoke and "smoke" not in wrapper.name else ""),
            "model_family": wrapper.family, "model_fingerprint": wrapper.fingerprint(), "model_is_smoke": smoke,
            "n_params": sum(p.numel() for p in wrapper.model.parameters()), "device_type": torch.device(settings.device).type,
            "seed": settings.seed, "transformers_version": transformers.__version__, "git_sha": sha,
            "harness_version": __version__}


_SETTING_COLUMNS = ("model_fingerprint", "task", "shape", "preset", "preset_settings", "batch_size", "prompt_length",
                    "image_tokens", "sequence_length", "repeats", "warmup", "device", "dtype", "gemm", "seed")


def _row_settings(row: dict) -> dict:
    return {k: row.get(k) for k in _SETTING_COLUMNS}


def _profile_key(row: dict) -> str:
    return hashlib.sha256(json.dumps(_row_settings(row), sort_keys=True, default=str).encode()).hexdigest()[:16]


def format_row(r: dict) -> str:
    """One progress line."""
    speed = (f"{r['images_per_s']:.2f} images/s" if r.get("images_per_s")
             else f"{r.get('useful_tokens_per_s', 0):.1f} useful tok/s, {r.get('positions_per_s', 0):.1f} pos/s")
    return (f"  {r['task']:<8} {r['preset']:<15} batch {r['batch_size']:<3} NFE {r['nfe']:<4} "
            f"tok/step {r['tokens_per_step']:.2f}  p50 {r['latency_p50_s'] * 1000:.1f} ms  p95 "
            f"{r['latency_p95_s'] * 1000:.1f} ms  {speed}  MFU {r.get('mfu') or 0:.2%}")


def markdown_table(rows) -> str:
    """A Markdown table of profile rows (dicts or a DataFrame)."""
    df = pd.DataFrame(rows)
    out = ["| task | preset | batch | prompt | NFE | tok/step | p50 ms | p95 ms | s/sample | useful tok/s | pos/s | "
           "images/s | peak mem MiB | MFU | device |", "|" + "---|" * 15]
    for _, r in df.iterrows():
        def f(key, fmt):
            v = r.get(key)
            return "-" if v is None or pd.isna(v) else format(v, fmt)
        out.append(f"| {r['task']} | {r['preset']} | {r['batch_size']} | {r['prompt_length']} | {r['nfe']} | "
                   f"{f('tokens_per_step', '.2f')} | {r['latency_p50_s'] * 1000:.1f} | {r['latency_p95_s'] * 1000:.1f} | "
                   f"{f('time_per_sample_s', '.3f')} | {f('useful_tokens_per_s', '.1f')} | {f('positions_per_s', '.1f')} | "
                   f"{f('images_per_s', '.2f')} | {r['peak_memory_bytes'] / 2**20:.0f} | {f('mfu', '.2%')} | {r['device']} |")
    return "\n".join(out)
