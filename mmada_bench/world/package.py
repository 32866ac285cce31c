"""Package a trained world checkpoint as a standard MMaDA folder: the harness's embedded default model.

The folder holds ``config.json`` + ``model.safetensors`` (bfloat16, to stay small), the tokenizer files,
``magvitv2/``, ``clip/`` (the tiny world CLIP, when built), ``harness_defaults.json`` (the label every output
carries, the world presets, the thinking variant of POPE / MME and 0-shot text tasks) and ``README.md`` (the
model card: data, stages, seeds, sizes, timings; a shipped card adds the whole-split scores from docs/world).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

import torch

from mmada_bench.models.defaults import DEFAULTS_FILE
from mmada_ref import MMaDAModelLM

from .init_model import TOKENIZER_FILES

WORLD_LABEL = "SHAPES-WORLD MODEL: trained on the synthetic shapes world, not a benchmark result"
WORLD_DEFAULTS = {
    "label": WORLD_LABEL,
    # POPE / MME run in the cards' default (official VLMEvalKit, 2-token direct) layout the model was trained in
    "task_presets": {"gsm8k": "world-text", "math500": "world-text"},
    "num_fewshot": {"gsm8k": 0, "math500": 0},  # trained 0-shot: 5 shots would make each prompt ~550 tokens
}
WEIGHTS_DTYPE = torch.bfloat16
#: one line per stage of the build, for the model card
STAGE_SUMMARIES = {
    "stage1": "unified masked-token pretraining (text, captioning, text-to-image)",
    "stage2": "mixed CoT fine-tuning in the harness's prompt layouts",
    "stage2_answers": "the direct POPE / MME yes / no answers alone, every response token masked",
    "stage2_turns": "the same rows with every target, so that the answer ends its turn",
    "stage2_rehearse": "stage 2's text-to-image and caption rows rehearsed beside those answers while the learning "
                       "rate cools",
    "stage3": "UniGRPO on the direct POPE / MME prompts with the correctness reward",
}


def package_model(checkpoint: str | Path, out: str | Path, clip_dir: Optional[str | Path] = None,
                  build: Optional[dict] = None) -> Path:
    """Copy ``checkpoint`` (a trainer ``step-N`` folder) into ``out`` in the shipped layout; returns ``out``."""
    checkpoint, out = Path(checkpoint), Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model = MMaDAModelLM.from_pretrained(str(checkpoint), torch_dtype=torch.float32)
    model.to(WEIGHTS_DTYPE).save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, out / name)
    shutil.copytree(checkpoint / "magvitv2", out / "magvitv2", ignore=shutil.ignore_patterns("DONE"))
    if clip_dir is not None and Path(clip_dir).is_dir():
        shutil.copytree(clip_dir, out / "clip", ignore=shutil.ignore_patterns("DONE"))
    (out / DEFAULTS_FILE).write_text(json.dumps(WORLD_DEFAULTS, indent=1) + "\n")
    (out / "README.md").write_text(model_card(model, build or {}))
    return out


def model_card(model, build: dict) -> str:
    """The model card: what the model is, how it was trained, and what it is not."""
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())
    lines = [
        "# mmada-world-tiny", "",
        f"**{WORLD_LABEL}.** A {n_params / 1e6:.1f} M-parameter MMaDA (LLaDA layout: {cfg.n_layers} layers, "
        f"d_model {cfg.d_model}, {cfg.n_heads} heads) trained from scratch by this project's own three stages on the "
        "synthetic shapes world (`shared/spec/shapes_world.md`, generator `mmada_bench.world`). It reads and writes "
        f"text ({cfg.llm_vocab_size} tokens, digits split) and 32 px images ({cfg.num_vq_tokens} MAGVIT-v2 codes of "
        f"{cfg.codebook_size}). Its numbers measure the harness and the training recipe on a toy world; they are "
        "never comparable to the paper's baselines.", "",
        "Rebuild from nothing: `python -m mmada_bench world build --out runs/world` (see `mmada_bench/world/README.md`).",
        "", "Stages (the project's one trainer, in order): " + "; ".join(
            f"`{name}` {STAGE_SUMMARIES.get(name, '')} ({n:,} steps)" for name, n in
            build.get("sizes", {}).get("steps", {}).items()) + ". Data: world corpora from the train seeds; "
        "scored on the held-out evaluation split.", "", "## Build", "", "```json", json.dumps(build, indent=1), "```", "",
    ]
    return "\n".join(lines) + "\n"
