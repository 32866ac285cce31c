"""``profiles.parquet`` beside the leaderboard: one row per model x shape x preset x batch size x device.

Written atomically under an exclusive lock (``profiles.parquet.lock``) like the leaderboard; a row
replaces an earlier one with the same ``profile_key`` (hash of model fingerprint + every setting +
device), so re-profiling updates instead of duplicating. Columns follow the throughput glossary of
shared/spec/performance_anchors.md (see docs/profiling.md).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mmada_bench.results.leaderboard import rows_to_table
from mmada_bench.results.store import atomic_write_table, file_lock

PROFILE_SCHEMA = pa.schema([
    ("profile_key", pa.string()),  # sha256 of model fingerprint + settings + device
    ("created_at", pa.string()),  # ISO 8601 UTC
    ("model_name", pa.string()),
    ("model_family", pa.string()),
    ("model_fingerprint", pa.string()),
    ("model_is_smoke", pa.bool_()),
    ("n_params", pa.int64()),
    ("task", pa.string()),  # shape name (text, mmu, t2i) or task card name
    ("shape", pa.string()),  # text | mmu | t2i
    ("preset", pa.string()),
    ("preset_settings", pa.string()),  # JSON of the sampler settings
    ("batch_size", pa.int64()),
    ("prompt_length", pa.int64()),  # tokens of the prompt (understanding: image tokens included)
    ("image_tokens", pa.int64()),  # image tokens in the prompt (mmu) or generated (t2i)
    ("sequence_length", pa.int64()),  # prompt + generated positions per row
    ("gen_length", pa.int64()),
    ("steps", pa.int64()),  # text: sampler steps; t2i: timesteps
    ("block_length", pa.int64()),
    ("threshold", pa.float64()),
    ("factor", pa.float64()),
    ("cache_mode", pa.string()),
    ("cfg_scale", pa.float64()),  # text cfg_scale or t2i guidance_scale
    ("repeats", pa.int64()),
    ("warmup", pa.int64()),
    ("nfe", pa.int64()),  # model calls per sample (a CFG call of batch 2B counts once)
    ("tokens_per_step", pa.float64()),  # tokens committed per model call, per sample
    ("latency_p50_s", pa.float64()),  # one batch call, median over repeats
    ("latency_p95_s", pa.float64()),
    ("latency_mean_s", pa.float64()),
    ("time_per_sample_s", pa.float64()),  # latency_p50_s / batch_size
    ("image_encode_s", pa.float64()),  # mmu: MAGVIT encoding inside the latency (per batch)
    ("generated_positions", pa.int64()),  # decided positions per batch call
    ("useful_tokens", pa.int64()),  # tokens before the first stop per batch call
    ("positions_per_s", pa.float64()),
    ("useful_tokens_per_s", pa.float64()),
    ("images_per_s", pa.float64()),
    ("s_per_image", pa.float64()),
    ("step_time_mean_s", pa.float64()),
    ("peak_memory_bytes", pa.int64()),
    ("peak_memory_kind", pa.string()),  # cuda_max_allocated | cpu_max_rss_process
    ("model_flops", pa.float64()),  # per batch call
    ("achieved_flops_per_s", pa.float64()),
    ("peak_flops_per_s", pa.float64()),  # measured large-matmul rate of the device in this dtype (best GEMM)
    ("mfu", pa.float64()),
    ("device", pa.string()),  # device name (GPU model / CPU model + threads)
    ("device_type", pa.string()),
    ("dtype", pa.string()),
    ("gemm", pa.string()),  # onednn (prepacked float32 CPU weights) | native (+ AVX-512 cached step) | default
    ("timing_method", pa.string()),  # cuda_events | perf_counter
    ("seed", pa.int64()),
    ("torch_version", pa.string()),
    ("transformers_version", pa.string()),
    ("git_sha", pa.string()),
    ("harness_version", pa.string()),
    ("settings", pa.string()),  # JSON: every setting of the profile command and of the row
])


def profiles_path(output_dir: str | Path) -> Path:
    return Path(output_dir) / "profiles.parquet"


def upsert_profiles(output_dir: str | Path, rows: list[dict]) -> Path:
    """Add ``rows`` to ``profiles.parquet`` (replacing rows with the same ``profile_key``); lock + atomic write."""
    path = profiles_path(output_dir)
    keys = {r["profile_key"] for r in rows}
    with file_lock(path.with_name(path.name + ".lock")):
        kept = []
        if path.exists():
            kept = [r for r in pq.read_table(path).to_pylist() if r.get("profile_key") not in keys]
        atomic_write_table(path, rows_to_table(kept + rows, PROFILE_SCHEMA))
    return path


def read_profiles(output_dir: str | Path):
    """``profiles.parquet`` as a DataFrame (empty with the schema's columns if absent)."""
    path = profiles_path(output_dir)
    if not path.exists():
        return pd.DataFrame(columns=PROFILE_SCHEMA.names)
    return pq.read_table(path).to_pandas()
