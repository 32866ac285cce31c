"""``profile`` on the packaged smoke model with tiny settings, and the speed accounting helpers."""
from __future__ import annotations

import importlib.util

import pandas as pd
import pytest
import torch

from mmada_bench.cli import main as cli_main
from mmada_bench.profiling.measure import count_generated, percentile
from mmada_bench.profiling.plots import join_quality
from mmada_bench.profiling.store import read_profiles

GLOSSARY = ["nfe", "tokens_per_step", "latency_p50_s", "latency_p95_s", "time_per_sample_s", "positions_per_s",
            "peak_memory_bytes", "peak_memory_kind", "model_flops", "peak_flops_per_s", "mfu", "device", "dtype",
            "batch_size", "prompt_length", "torch_version", "transformers_version", "timing_method", "settings"]
HAS_IMAGE_SAMPLER = importlib.util.find_spec("mmada_ref.sampling.image") is not None


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("profiles")
    tasks = "text,mmu,t2i" if HAS_IMAGE_SAMPLER else "text,mmu"
    args = ["profile", "--output-dir", str(out), "--tasks", tasks, "--batch-sizes", "1,2", "--repeats", "1",
            "--warmup", "0", "--prompt-length", "12", "--t2i-max-text-len", "16"]
    assert cli_main(args) == 0
    return out, args


def test_profiles_parquet_has_glossary_columns(profiled):
    out, _ = profiled
    df = read_profiles(out)
    assert set(df["shape"]) >= {"text", "mmu"}
    assert sorted(df["batch_size"].unique()) == [1, 2]
    assert df["model_is_smoke"].all() and "smoke" in df["model_name"].iloc[0]
    for column in GLOSSARY:
        assert df[column].notna().all(), column
    text = df[df["shape"] != "t2i"]
    assert text[["useful_tokens_per_s", "gen_length", "steps", "block_length", "cache_mode"]].notna().all().all()
    assert (text["useful_tokens"] <= text["generated_positions"]).all()
    assert ((df["mfu"] > 0) & (df["mfu"] < 1)).all()
    mmu = df[df["shape"] == "mmu"].iloc[0]
    assert mmu["image_tokens"] > 0 and mmu["prompt_length"] > mmu["image_tokens"] and mmu["image_encode_s"] > 0
    # NFE per sample does not depend on the batch size (one sampler call serves the whole batch)
    for _, g in df.groupby(["task", "preset"]):
        assert g["nfe"].nunique() == 1


@pytest.mark.skipif(not HAS_IMAGE_SAMPLER, reason="mmada_ref.sampling.image not in this checkout")
def test_t2i_rows_count_images(profiled):
    df = read_profiles(profiled[0])
    t2i = df[df["shape"] == "t2i"]
    assert len(t2i) == 2 and t2i["images_per_s"].gt(0).all()
    assert (t2i["s_per_image"] * t2i["images_per_s"]).round(6).eq(1).all()
    assert (t2i["cfg_scale"] > 0).all()


def test_pngs_written(profiled):
    out, _ = profiled
    for name in ("profile_latency_vs_batch.png", "profile_speed_vs_quality.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reprofile_replaces_rows(profiled):
    out, args = profiled
    before = read_profiles(out)
    assert cli_main(args[:4] + ["text", *args[5:], "--no-plots"]) == 0
    after = read_profiles(out)
    assert len(after) == len(before)
    assert set(after["profile_key"]) == set(before["profile_key"])


def test_bad_arguments_are_clear(tmp_path, capsys):
    assert cli_main(["profile", "--output-dir", str(tmp_path), "--batch-sizes", "0"]) == 2
    assert "--batch-sizes" in capsys.readouterr().err
    assert cli_main(["profile", "--output-dir", str(tmp_path), "--tasks", "text", "--presets", "t2i-ci"]) == 2
    assert "text preset" in capsys.readouterr().err


def test_count_generated_stops_at_first_stop():
    mask, eos = 9, 7
    generated = torch.tensor([[1, 2, eos, 3, mask], [4, 5, 6, mask, mask]])
    assert count_generated(generated, mask, [eos]) == (7, 5)
    assert count_generated(generated, mask) == (7, 7)
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0 and percentile([1.0, 2.0, 3.0], 100) == 3.0


def test_quality_join_matches_model_and_preset():
    profiles = pd.DataFrame([{"model_fingerprint": "f", "preset": "ci", "task": "text", "batch_size": 1},
                             {"model_fingerprint": "f", "preset": "fast", "task": "gsm8k", "batch_size": 1}])
    board = pd.DataFrame([
        {"model_fingerprint": "f", "preset": "ci", "task": "gsm8k", "is_primary": True, "value": 0.5, "ci_low": 0.4,
         "ci_high": 0.6, "n": 50, "split": "test"},
        {"model_fingerprint": "f", "preset": "fast", "task": "math500", "is_primary": True, "value": 0.2,
         "ci_low": 0.1, "ci_high": 0.3, "n": 50, "split": "test"},
        {"model_fingerprint": "g", "preset": "ci", "task": "gsm8k", "is_primary": True, "value": 0.9, "ci_low": 0.8,
         "ci_high": 1.0, "n": 50, "split": "test"}])
    joined = join_quality(profiles, board)
    assert list(zip(joined["task"], joined["task_board"], joined["value"])) == [("text", "gsm8k", 0.5)]
