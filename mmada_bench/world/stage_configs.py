"""Stage configs (``mmada_ref.training.stages`` YAML) for the world corpora (the shipped model's settings)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import yaml

from mmada_ref.sampling.presets import get_preset

from .sft import direct_chat_eot, direct_preset

DEFAULT_NUM_VQ_TOKENS = 64  # 8 x 8 codes of the default world MAGVIT (train_magvit --levels 3)
MODEL_PLACEHOLDER = "runs/world/init"  # a tiny MMaDA checkpoint folder in the official layout


def num_vq_tokens(magvit: Optional[str | Path]) -> int:
    """Codes per 32 px image of a MAGVIT folder (``DEFAULT_NUM_VQ_TOKENS`` without one)."""
    if not magvit:
        return DEFAULT_NUM_VQ_TOKENS
    config = json.loads((Path(magvit) / "magvit_config.json").read_text())
    side = 32 // 2 ** (len(config["encoder_kwargs"]["ch_mult"]) - 1)
    return side * side


#: text-loss weight of EOS / end-of-turn targets in ``stage2_turns`` and ``stage2_mmu`` (the official 1.0 keeps a
#: tiny model from learning answers that depend on the prompt; measured in docs/world/rounds.md)
WORLD_STRUCTURAL_WEIGHT = 0.1
#: Adam betas of the world's stages 1-2: the official beta2 = 0.999 (made for 10^5-step runs) keeps the first
#: steps' large gradients in the second moment for ~1,000 steps, i.e. the whole of a world stage, and holds the
#: answers on a plateau (twelfth round, docs/world/rounds.md)
WORLD_ADAM_BETAS = [0.9, 0.95]


#: the Flickr30k rows ``stage2_rehearse`` rehearses beside the direct answers (half of its mmu rows): with the
#: official random masks (not the answers' whole-response mask) and full weight on where a caption ends; either
#: one missing leaves captions that run on (seventeenth round, docs/world/rounds.md)
CAPTION_REHEARSAL = {"path": "stage2/mmu_captions.jsonl", "kind": "mmu", "weight": 1.0, "full_mask_prob": 0.0,
                     "structural_weight": 1.0}


#: text-to-image rows per ``stage2_rehearse`` step. After stage 3, 8 rows (build C) drew 40.8 % of single-object
#: prompts in one draw; 32 rows (build B3) draw 60.9 % over three sampling seeds (one draw moves by up to 9 points)
#: and caption best (Flickr30k 3.62x its shuffled control; twentieth and twenty-first rounds, docs/world/rounds.md)
REHEARSAL_T2I_BATCH = 32


def _sampler(preset: str) -> dict:
    settings = get_preset(preset).settings
    return {"gen_length": settings.gen_length, "steps": settings.steps, "block_length": settings.block_length}


#: ``stage2_answers`` stops once its loss, over the last 50 steps, is at or below this (``DEFAULT_STEPS`` is its
#: cap): the loss sits on a plateau (~0.016) until the answer is read from the image, and when it leaves it depends
#: on the start (round 14: ~150 steps, 0.0085 by step 325; eighteenth round: ~325, 0.009 by 700)
ANSWERS_STOP_LOSS = 0.0085

#: optimiser steps per stage config (``pipeline.SCALES`` scales them down for tests; ``stage2_mmu`` is written
#: but not in the default build, see ``pipeline.STAGES``); stage 3's 80 (100 until the twentieth round) pays for
#: the rehearsal's 32 text-to-image rows inside the 90-minute build
DEFAULT_STEPS = {"stage1": 900, "stage2": 1100, "stage2_answers": 1100, "stage2_turns": 150, "stage2_rehearse": 300,
                 "stage2_mmu": 500, "stage3": 80}


def stage_dicts(magvit: Optional[str | Path] = None, steps: Optional[dict] = None) -> dict:
    """Config dicts of stages 1-3 over the files of :data:`corpora.STAGE_FILES` (paths relative to ``out``).

    Stage 1 learns the plain formats (captions, plain GSM8K / MATH text, image captioning, t2i); stage 2 the
    harness's prompt layouts (:mod:`.sft`, ``think_format`` off because the rows carry the prompts);
    ``stage2_answers`` trains the one-token answers of the direct yes / no questions alone (the rows stage 3
    draws its prompts from; every response token masked, the layout's newline and end-of-turn not targets: the
    only objective measured to leave the answer plateau); ``stage2_turns`` continues on the same rows with every
    target (EOS / end-of-turn at :data:`WORLD_STRUCTURAL_WEIGHT`), so that the answer ends its turn;
    ``stage2_rehearse`` rehearses stage 2's text-to-image and caption rows beside those answers while the learning
    rate cools (the direct-answer stages alone make the model forget how to draw and caption; sixteenth and
    seventeenth rounds of docs/world/rounds.md);
    stage 3 is UniGRPO on those direct POPE / MME prompts with the harness's own sampler for them
    (:func:`.sft.direct_preset`) and the correctness reward. ``stage2_mmu`` (grounding rows, thinking-variant
    yes / no rows, EOS / end-of-turn down-weighted) is written for the thinking variant but not run by the
    default build: after ``stage2_answers`` it undoes the direct answers (thirteenth round, docs/world/rounds.md)."""
    from .corpora import STAGE_FILES

    steps = {**DEFAULT_STEPS, **(steps or {})}
    n_vq = num_vq_tokens(magvit)
    model = {"path": MODEL_PLACEHOLDER, "vq_model": str(Path(magvit).resolve()) if magvit else None}

    def sources(stage, weights):
        return [{"path": f"{stage}/{name}", "kind": kind, "weight": w}
                for (name, kind), w in zip(STAGE_FILES[stage], weights)]

    def train(stage, **extra):
        n = steps[stage]
        return {"max_steps": n, "seed": 10086, "log_every": max(1, min(25, n // 10)),
                "save_every": max(1, min(250, n)), "keep_last": 1, **extra}

    answers = {"name": "world-stage2-answers", "kind": "unified",
               "model": {**model, "path": "runs/world/stage2/last"},
               "data": {"max_seq_length": 72, "lm_max_length": 72, "num_vq_tokens": n_vq,
                        "batch_size": {"t2i": 0, "lm": 0, "mmu": 32}, "lm_format": "chat", "think_format": False,
                        "sources": [{"path": "stage3/mmu_prompts.jsonl", "kind": "mmu", "weight": 1.0}]},
               "objective": {"coefficients": {"t2i": 0.0, "lm": 0.0, "mmu": 1.0}, "structural_weight": 0.0,
                             "target_weights": {"\n": 0.0, direct_chat_eot(): 0.0}, "mmu_full_mask_prob": 1.0},
               "optim": {"lr": 1.0e-3, "warmup_steps": 0, "min_lr_scale": 1.0, "weight_decay": 0.0,
                         "betas": WORLD_ADAM_BETAS},
               "train": train("stage2_answers", stop_loss_below=ANSWERS_STOP_LOSS, stop_window=50)}
    turns = {**answers, "name": "world-stage2-turns", "model": {**model, "path": "runs/world/stage2_answers/last"},
             "objective": {**answers["objective"], "structural_weight": WORLD_STRUCTURAL_WEIGHT, "target_weights": {}},
             "train": train("stage2_turns")}
    return {
        "stage1": {"name": "world-stage1", "kind": "unified", "model": model,
                   "data": {"max_seq_length": 56, "lm_max_length": 200, "num_vq_tokens": n_vq,
                            "batch_size": {"t2i": 12, "lm": 8, "mmu": 12}, "lm_format": "plain",
                            "sources": sources("stage1", [1.0, 1.0, 1.0])},
                   "objective": {"coefficients": {"t2i": 1.0, "lm": 1.0, "mmu": 1.0}},
                   "optim": {"lr": 2.0e-3, "warmup_steps": min(100, steps["stage1"] // 10), "min_lr_scale": 0.1,
                             "weight_decay": 0.0, "betas": WORLD_ADAM_BETAS},
                   "train": train("stage1")},
        "stage2": {"name": "world-stage2", "kind": "unified", "model": {**model, "path": "runs/world/stage1/last"},
                   "data": {"max_seq_length": 144, "lm_max_length": 288, "num_vq_tokens": n_vq,
                            "batch_size": {"t2i": 4, "lm": 6, "mmu": 12}, "lm_format": "chat", "think_format": False,
                            "sources": sources("stage2", [1.0, 1.0, 1.0])},
                   "objective": {"coefficients": {"t2i": 0.5, "lm": 1.0, "mmu": 1.0}},
                   "optim": {"lr": 1.0e-3, "warmup_steps": min(50, steps["stage2"] // 10), "min_lr_scale": 0.05,
                             "weight_decay": 0.0, "betas": WORLD_ADAM_BETAS},
                   "train": train("stage2")},
        "stage2_answers": answers,
        "stage2_turns": turns,
        "stage2_rehearse": {**turns, "name": "world-stage2-rehearse",
                            "model": {**model, "path": "runs/world/stage2_turns/last"},
                            "data": {**turns["data"], "batch_size": {"t2i": REHEARSAL_T2I_BATCH, "lm": 0, "mmu": 48},
                                     "sources": [*turns["data"]["sources"],
                                                 {"path": "stage2/t2i.jsonl", "kind": "t2i", "weight": 1.0},
                                                 CAPTION_REHEARSAL]},
                            "objective": {**turns["objective"], "coefficients": {"t2i": 0.5, "lm": 0.0, "mmu": 1.0}},
                            "optim": {**turns["optim"], "lr": 3.0e-4, "min_lr_scale": 0.05},
                            "train": train("stage2_rehearse")},
        "stage2_mmu": {"name": "world-stage2-mmu", "kind": "unified",
                       "model": {**model, "path": "runs/world/stage2/last"},
                       "data": {"max_seq_length": 168, "lm_max_length": 288, "num_vq_tokens": n_vq,
                                "batch_size": {"t2i": 0, "lm": 2, "mmu": 32}, "lm_format": "chat",
                                "think_format": False,
                                "sources": [{"path": "stage2/mmu_cells.jsonl", "kind": "mmu", "weight": 1.0},
                                            {"path": "stage2/mmu_direct.jsonl", "kind": "mmu", "weight": 0.5},
                                            {"path": "stage2/mmu_think.jsonl", "kind": "mmu", "weight": 2.0},
                                            {"path": "stage2/text_cot.jsonl", "kind": "text", "weight": 1.0}]},
                       "objective": {"coefficients": {"t2i": 0.0, "lm": 0.5, "mmu": 1.0},
                                     "structural_weight": WORLD_STRUCTURAL_WEIGHT},
                       "optim": {"lr": 1.0e-3, "warmup_steps": min(50, steps["stage2_mmu"] // 10),
                                 "min_lr_scale": 0.05, "weight_decay": 0.0, "betas": WORLD_ADAM_BETAS},
                       "train": train("stage2_mmu")},
        "stage3": {"name": "world-stage3", "kind": "grpo",
                   "model": {**model, "path": "runs/world/stage2_rehearse/last"},
                   "data": {"max_seq_length": 72, "num_vq_tokens": n_vq, "think_format": False,
                            "sources": [{"path": "stage3/mmu_prompts.jsonl", "kind": "mmu", "weight": 1.0}]},
                   "optim": {"lr": 5.0e-5, "warmup_steps": 0, "min_lr_scale": 1.0, "weight_decay": 0.0},
                   "train": train("stage3", log_every=max(1, min(5, steps["stage3"]))),
                   "grpo": {"prompts_per_step": 16, "group_size": 8, "beta": 0.01,
                            "sampler": {**_sampler(direct_preset()), "temperature": 1.0},
                            "rewards": [{"name": "correctness", "weight": 1.0}]}},
    }


def write_stage_configs(out: str | Path, magvit: Optional[str | Path] = None, steps: Optional[dict] = None) -> list[str]:
    """Write ``stage{1,2,3}.yaml`` (+ ``stage3_t2i.yaml``: t2i prompts with the world-oracle reward, and
    ``stage3_text.yaml``: GSM8K prompts with correctness + format rewards) under ``out``."""
    out = Path(out)
    written = []
    configs = stage_dicts(magvit, steps)
    t2i = json.loads(json.dumps(configs["stage3"]))
    t2i.update(name="world-stage3-t2i")
    t2i["data"]["max_seq_length"] = configs["stage2"]["data"]["max_seq_length"]
    t2i["data"]["sources"] = [{"path": "stage3/t2i_prompts.jsonl", "kind": "t2i", "weight": 1.0}]
    t2i["grpo"].update(prompts_per_step=2, rewards=[{"name": "mmada_bench.world.rewards:oracle_reward", "weight": 1.0}])
    configs["stage3_t2i"] = t2i
    text = json.loads(json.dumps(configs["stage3"]))
    text.update(name="world-stage3-text")
    text["data"]["sources"] = [{"path": "stage3/text_prompts.jsonl", "kind": "text", "weight": 1.0}]
    text["grpo"].update(prompts_per_step=2, sampler={"gen_length": 128, "steps": 64, "block_length": 32,
                                                     "temperature": 0.8},
                        rewards=[{"name": "correctness", "weight": 2.0}, {"name": "format", "weight": 0.5}])
    configs["stage3_text"] = text
    for name, data in configs.items():
        path = out / f"{name}.yaml"
        path.write_text(f"# {name} on the shapes-world corpora (generated by mmada_bench.world; not tuned)\n"
                        + yaml.safe_dump(data, sort_keys=False))
        written.append(path.name)
    return written
