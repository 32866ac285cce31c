"""A CPU-sized demonstration of the three stages on synthetic data (also used by the tests).

    python -m mmada_ref.training.demo OUT_DIR [--model mmada_bench/assets/mmada-smoke] [--steps 40]

Writes synthetic jsonl data, runs stage 1 (unified pretraining), stage 2 (thinking-format SFT) and
stage 3 (UniGRPO with a verifiable toy reward) from the given small checkpoint, and leaves
``OUT_DIR/<stage>/curves/*.png`` plus a ``summary.json`` with the final losses, rewards and steps/s.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .plot import read_metrics
from .stages import stage_from_dict
from .trainer import Trainer

COLORS = ("red", "green", "blue", "yellow")
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "mmada_bench" / "assets" / "mmada-smoke"


def write_synthetic_data(folder: str | Path, num_vq_tokens: int = 16, codebook_size: int = 64) -> Path:
    """Small learnable data: arithmetic text, coloured-square images (fixed codes per colour), prompts."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    codes = {c: [(i * 7 + k * 13) % codebook_size for k in range(num_vq_tokens)] for i, c in enumerate(COLORS)}
    pairs = [(a, b) for a in range(5) for b in range(5)]
    files = {
        "text_plain": [{"text": f"{a} plus {b} equals {a + b}."} for a, b in pairs],
        "text_cot": [{"prompt": f"What is {a} plus {b}?", "reasoning": f"{a} and {b} make {a + b}",
                      "answer": str(a + b)} for a, b in pairs],
        "t2i": [{"caption": f"a {c} square", "image_codes": codes[c]} for c in COLORS],
        "t2i_cot": [{"caption": f"a {c} square", "reasoning": f"the square is {c}", "image_codes": codes[c]}
                    for c in COLORS],
        "mmu": [{"question": "What color is the square?", "image_codes": codes[c], "answer": c} for c in COLORS],
        "mmu_cot": [{"question": "What color is the square?", "image_codes": codes[c], "reasoning": f"it looks {c}",
                     "answer": c} for c in COLORS],
        "prompts": [{"prompt": f"Write number {i}.", "answer": str(i)} for i in range(6)],
    }
    for name, rows in files.items():
        (folder / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def low_id_reward(limit: int = 500):
    """Toy verifiable reward: share of response tokens with an id below ``limit``."""
    return lambda rollouts: [sum(t < limit for t in r.ids) / max(1, len(r.ids)) for r in rollouts]


def demo_stages(data: Path, model: str | Path, steps: int = 40) -> dict[str, dict]:
    """Stage dicts (see :func:`mmada_ref.training.stages.stage_from_dict`) for the synthetic data."""
    d = Path(data)
    common = {"model": {"path": str(model)}, "train": {"max_steps": steps, "log_every": 2, "save_every": steps}}
    stage1 = {"name": "stage1", "kind": "unified", **common,
              "data": {"max_seq_length": 32, "batch_size": {"t2i": 2, "lm": 2, "mmu": 2}, "lm_format": "plain",
                       "sources": [{"path": str(d / "text_plain.jsonl"), "kind": "text"},
                                   {"path": str(d / "t2i.jsonl"), "kind": "t2i"},
                                   {"path": str(d / "mmu.jsonl"), "kind": "mmu"}]},
              "objective": {"coefficients": {"t2i": 1.0, "lm": 0.1, "mmu": 1.0}, "cond_dropout_prob": 0.1},
              "optim": {"lr": 3e-3, "warmup_steps": 2, "min_lr_scale": 0.1}}
    stage2 = {"name": "stage2", "kind": "unified", **common,
              "data": {"max_seq_length": 160, "lm_max_length": 160, "batch_size": {"t2i": 1, "lm": 2, "mmu": 1},
                       "lm_format": "chat",
                       "think_format": True,
                       "sources": [{"path": str(d / "text_cot.jsonl"), "kind": "text"},
                                   {"path": str(d / "t2i_cot.jsonl"), "kind": "t2i"},
                                   {"path": str(d / "mmu_cot.jsonl"), "kind": "mmu"}]},
              "objective": {"coefficients": {"t2i": 1.0, "lm": 0.5, "mmu": 0.5}, "cond_dropout_prob": 0.1},
              "optim": {"lr": 3e-3, "warmup_steps": 2, "min_lr_scale": 0.1}}
    stage3 = {"name": "stage3", "kind": "grpo", **common,
              "data": {"sources": [{"path": str(d / "prompts.jsonl"), "kind": "text"}]},
              "optim": {"lr": 1e-3, "warmup_steps": 0, "min_lr_scale": 1.0},
              "grpo": {"prompts_per_step": 2, "group_size": 8, "beta": 0.01, "mask_times": 1, "iterations": 1,
                       "sampler": {"gen_length": 8, "steps": 8, "block_length": 8, "temperature": 1.0},
                       "rewards": [{"name": "mmada_ref.training.demo:low_id_reward", "weight": 1.0}]}}
    return {"stage1": stage1, "stage2": stage2, "stage3": stage3}


def run_demo(out_dir: str | Path, model: str | Path = DEFAULT_MODEL, steps: int = 40) -> dict:
    """Run the three demo stages; returns and writes ``summary.json``."""
    out = Path(out_dir)
    data = write_synthetic_data(out / "data")
    summary = {}
    for name, stage in demo_stages(data, model, steps).items():
        trainer = Trainer(stage_from_dict(stage), out / name, resume=False)
        start = time.perf_counter()
        trainer.train()
        elapsed = time.perf_counter() - start
        records = read_metrics(out / name)
        keys = ("loss", "loss_t2i", "loss_lm", "loss_mmu", "reward")
        summary[name] = {"steps": steps, "seconds": round(elapsed, 2), "steps_per_s": round(steps / elapsed, 2),
                         "first": {k: records[0][k] for k in keys if k in records[0]},
                         "last": {k: records[-1][k] for k in keys if k in records[-1]},
                         "curves": sorted(str(p) for p in (out / name / "curves").glob("*.png"))}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="small checkpoint folder to start from")
    parser.add_argument("--steps", type=int, default=40, help="optimiser steps per stage")
    args = parser.parse_args(argv)
    print(json.dumps(run_demo(args.out_dir, args.model, args.steps), indent=2))


if __name__ == "__main__":
    main()
