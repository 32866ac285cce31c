"""Write a random-weight checkpoint folder with the ~50M transformer of ``sampler_speed.py`` for ``profile``.

It takes the packaged smoke model's tokenizer, MAGVIT and special-token layout (so every shape runs)
and replaces the transformer dimensions by CONFIG_50M's (d_model 512, 10 layers, 8 heads, MLP 1408).
With the smoke vocabulary (1088 rows) it has ~33M parameters; the weights are random: speed only.

    python benchmarks/build_profile_model.py --out out/mmada-50m
    python -m mmada_bench profile --model out/mmada-50m --presets gsm8k-paper,fast,mmu-vlmevalkit,t2i-repo
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampler_speed import CONFIG_50M  # noqa: E402

from mmada_bench.models.smoke import SMOKE_MODEL_DIR as DEFAULT_MODEL_DIR  # noqa: E402
from mmada_ref import MMaDAModelLM  # noqa: E402
from mmada_ref.config import MMaDAConfig  # noqa: E402

DIMENSIONS = ("d_model", "n_layers", "n_heads", "n_kv_heads", "mlp_hidden_size")


def build(out: Path, seed: int = 0) -> Path:
    """Copy the smoke tokenizer + MAGVIT to ``out`` and save a random model with CONFIG_50M's dimensions."""
    out.mkdir(parents=True, exist_ok=True)
    for item in DEFAULT_MODEL_DIR.iterdir():
        if item.name in ("model.safetensors", "config.json", "SMOKE_MODEL.md"):
            continue
        target = out / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
    config = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    config.update({k: CONFIG_50M[k] for k in DIMENSIONS})
    config.pop("transformers_version", None)
    config.pop("model_type", None)
    torch.manual_seed(seed)
    MMaDAModelLM(MMaDAConfig(**config)).save_pretrained(out)
    (out / "PROFILE_MODEL.md").write_text("Random weights, ~50M-layout transformer with the smoke tokenizer: speed only.\n")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    path = build(args.out)
    n = sum(p.numel() for p in MMaDAModelLM.from_pretrained(path).parameters())
    print(f"wrote {path} ({n / 1e6:.1f}M parameters)")
