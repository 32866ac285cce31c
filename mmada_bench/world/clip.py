"""A tiny CLIP for the shapes world, trained on the world's image-caption pairs with open_clip's own classes.

    python -m mmada_bench.world clip --out DIR [--steps 600 --n 16000 --seed 0 --batch 128 --threads 2]

Model: ``open_clip.CLIP`` built from :func:`world_clip_config` (a ViT on 32 px images, patch 8, and a text transformer
over the world BPE tokenizer, read through open_clip's ``HFTokenizer`` and pooled at the first
``<|endoftext|>``, which is also the pad token). Loss: ``open_clip.ClipLoss``; AdamW, warm-up then cosine decay.
Pairs: ``n`` scenes of the ``train`` split (:func:`mmada_bench.world.seeds.item_rng`, stream ``clip``) drawn
with :func:`scene.draw`, each with one caption (a reference caption of :func:`language.captions` or a t2i
caption of :func:`corpora.t2i_caption`, half each). Held out: 100 scenes of the ``world`` split (eval seed),
captioned with every object and its cell; retrieval is measured on the saved folder, loaded the way the
harness scores (``ClipScorer.from_dir``).

``out/`` is a folder open_clip's ``local-dir:`` loader reads (``open_clip.create_model_and_transforms(
"local-dir:" + out)``, ``open_clip.get_tokenizer("local-dir:" + out)``):

    open_clip_config.json        {"name": "world-clip", "model_cfg": ..., "preprocess_cfg": ...}
    open_clip_model.safetensors  the weights (float16 by default: the folder stays well under 5 MB)
    tokenizer.json, tokenizer_config.json   the world BPE tokenizer
    clip_train.json              settings, times (wall and CPU), loss curve, held-out retrieval vs chance,
                                 folder_bytes (every file but this one)
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from . import language as L
from .corpora import t2i_caption
from .scene import CANVAS, draw, sample_scene
from .seeds import DEFAULT_EVAL_SEED, EVAL_SPLIT, TRAIN_SPLIT, item_rng

STREAM = "clip"
NAME = "world-clip"
CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
REPORT_FILE = "clip_train.json"
CONTEXT_LENGTH = 32
HELD_OUT = 100
MEAN = STD = (0.5, 0.5, 0.5)  # pixels -> [-1, 1]
LOG_POINTS = 60  # loss-curve points kept in clip_train.json


def world_clip_config(vocab_size: int, eos_id: int, width: int = 128, layers: int = 3, patch: int = 8,
                      embed_dim: int = 128, context_length: int = CONTEXT_LENGTH) -> dict:
    """``{"model_cfg", "preprocess_cfg"}`` of the world CLIP, as open_clip's HF-hub / local-dir loader reads it."""
    heads = max(1, width // 32)
    model_cfg = {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": CANVAS, "patch_size": patch, "width": width, "layers": layers,
                       "head_width": width // heads, "mlp_ratio": 4.0},
        "text_cfg": {"context_length": context_length, "vocab_size": vocab_size, "width": width, "heads": heads,
                     "layers": layers, "mlp_ratio": 4.0, "pool_type": "eos", "eos_id": eos_id, "pad_id": eos_id,
                     "hf_tokenizer_name": "world-bpe (tokenizer files beside this config)"},
    }
    preprocess_cfg = {"size": CANVAS, "mode": "RGB", "mean": list(MEAN), "std": list(STD),
                      "interpolation": "bicubic", "resize_mode": "shortest", "fill_color": 0}
    return {"name": NAME, "model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}


def training_pairs(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """``n`` (image, caption) pairs of the ``train`` split: uint8 ``[n, 3, 32, 32]`` and the captions."""
    images, texts = np.empty((n, 3, CANVAS, CANVAS), dtype=np.uint8), []
    for i in range(n):
        rng = item_rng(seed, TRAIN_SPLIT, STREAM, i)
        scene = sample_scene(rng)
        images[i] = np.asarray(draw(scene)).transpose(2, 0, 1)
        texts.append(t2i_caption(rng, scene) if rng.integers(0, 2) else L.captions(scene, rng, k=1)[0])
    return images, texts


def held_out_pairs(n: int = HELD_OUT, seed: int = DEFAULT_EVAL_SEED) -> tuple[list, list[str]]:
    """``n`` pairs of the ``world`` split: PIL images and their full captions (every object with its cell)."""
    scenes = [sample_scene(item_rng(seed, EVAL_SPLIT, STREAM, i)) for i in range(n)]
    return [draw(s) for s in scenes], [L.scene_caption(s) for s in scenes]


def train_world_clip(out: str | Path, steps: int = 600, n: int = 16000, seed: int = 0, batch: int = 128,
                     threads: int = 2, tokenizer: str | Path | None = None, lr: float = 2e-3,
                     width: int = 128, layers: int = 3, patch: int = 8, dtype: str = "float16",
                     context_length: int = CONTEXT_LENGTH) -> dict:
    """Train the world CLIP, save it into ``out`` (module docstring) and return the ``clip_train.json`` report.

    ``tokenizer``: an existing world tokenizer folder (default: train one with ``train_world_tokenizer``)."""
    import open_clip  # open_clip: loaded when a CLIP is trained
    from safetensors.torch import save_file  # safetensors: loaded when a CLIP is saved

    if min(steps, n, batch, threads) < 1 or batch > n:
        raise ValueError(f"steps, n, batch and threads must be >= 1 and batch <= n (got {steps}, {n}, {batch}, {threads})")
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be float16 or float32, not {dtype!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wall, cpu = time.perf_counter(), time.process_time()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        tok = _save_tokenizer(out, tokenizer)
        config = world_clip_config(len(tok), tok.pad_token_id, width=width, layers=layers, patch=patch,
                                   context_length=context_length)
        (out / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n")
        text_tokens = open_clip.get_tokenizer(f"local-dir:{out}")
        images, texts = training_pairs(n, seed)
        ids = text_tokens(texts)
        _check_fits(ids, texts, tok.pad_token_id)
        setup_s = time.perf_counter() - wall
        torch.manual_seed(seed)
        model = open_clip.CLIP(**config["model_cfg"])
        curve = _train(model, open_clip.ClipLoss(), images, ids, steps, batch, lr, seed)
        state = {k: v.detach().to(getattr(torch, dtype)).contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(out / WEIGHTS_FILE))
        train_s = time.perf_counter() - wall - setup_s
        retrieval = evaluate_retrieval(out)
    finally:
        torch.set_num_threads(previous_threads)
    report = {
        "name": NAME, "steps": steps, "n_pairs": n, "seed": seed, "batch": batch, "threads": threads, "lr": lr,
        "width": width, "layers": layers, "patch": patch, "context_length": context_length, "weights_dtype": dtype,
        "parameters": sum(p.numel() for p in model.parameters()), "vocab_size": len(tok),
        "seconds": {"setup": round(setup_s, 1), "train": round(train_s, 1),
                    "total": round(time.perf_counter() - wall, 1), "cpu": round(time.process_time() - cpu, 1)},
        "loss": {"first": curve[0][1], "last": curve[-1][1], "min": min(v for _, v in curve), "curve": curve},
        "retrieval": retrieval,
        "folder_bytes": sum(p.stat().st_size for p in out.iterdir() if p.is_file() and p.name != REPORT_FILE),
        "versions": {"open_clip": open_clip.__version__, "torch": torch.__version__},
    }
    (out / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
    return report


def _save_tokenizer(out: Path, tokenizer):
    """The world tokenizer, saved into ``out`` (trained there when no folder is given)."""
    from transformers import (
        AutoTokenizer,  # transformers is slow to import: loaded on use
    )

    from .tokenizer import train_world_tokenizer

    if tokenizer is None:
        return train_world_tokenizer(out)
    if not (Path(tokenizer) / "tokenizer.json").is_file():
        raise FileNotFoundError(f"tokenizer folder {tokenizer} has no tokenizer.json (train one with "
                                "python -m mmada_bench.world tokenizer --out DIR)")
    tok = AutoTokenizer.from_pretrained(str(tokenizer))
    tok.save_pretrained(str(out))
    return tok


def _check_fits(ids: torch.Tensor, texts: list[str], eos_id: int) -> None:
    """Every caption must leave room for the pooled ``<|endoftext|>`` within the context."""
    cut = (ids == eos_id).sum(dim=1) == 0
    if bool(cut.any()):
        raise ValueError(f"caption {texts[int(cut.nonzero()[0])]!r} fills all {ids.shape[1]} text positions")


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[B, 3, H, W]`` -> the normalised floats of the folder's preprocess (``(x / 255 - mean) / std``)."""
    x = torch.tensor(images, dtype=torch.float32) / 255.0
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _train(model, loss_fn, images: np.ndarray, ids: torch.Tensor, steps: int, batch: int, lr: float,
           seed: int) -> list:
    """AdamW steps over shuffled epochs of the pairs; returns ``[[step, mean loss since the last point], ...]``."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / steps))))
    order, rng = np.empty(0, dtype=np.int64), np.random.default_rng(seed)
    every = max(1, steps // LOG_POINTS)
    curve, window = [], []
    model.train()
    for step in range(1, steps + 1):
        if len(order) < batch:
            order = np.concatenate([order, rng.permutation(len(images))])
        idx, order = order[:batch], order[batch:]
        image_features = model.encode_image(to_pixels(images[idx]), normalize=True)
        text_features = model.encode_text(ids[torch.from_numpy(idx)], normalize=True)
        loss = loss_fn(image_features, text_features, model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        window.append(loss.item())
        if step % every == 0 or step == steps or step == 1:
            curve.append([step, round(sum(window) / len(window), 4)])
            window = []
    return curve


def evaluate_retrieval(folder: str | Path, n: int = HELD_OUT, seed: int = DEFAULT_EVAL_SEED) -> dict:
    """Held-out top-1 retrieval of the saved folder, loaded as the harness scores (``ClipScorer.from_dir``).

    A retrieved caption counts as right when its text equals the gold one (identical scenes have identical
    captions); chance = mean over items of (captions equal to the gold) / n."""
    from mmada_scoring.clip_score import (
        ClipScorer,  # torch + open_clip: loaded when images are scored
    )

    images, captions = held_out_pairs(n, seed)
    image_embeds, text_embeds = ClipScorer.from_dir(folder).embed(images, captions)
    sim = torch.nn.functional.normalize(image_embeds, dim=-1) @ torch.nn.functional.normalize(text_embeds, dim=-1).T
    gold = np.array(captions, dtype=object)
    i2t = float(np.mean(gold[sim.argmax(dim=1).numpy()] == gold))
    t2i = float(np.mean(gold[sim.argmax(dim=0).numpy()] == gold))
    chance = float(np.mean([(gold == c).sum() / n for c in captions]))
    return {"split": EVAL_SPLIT, "seed": seed, "n": n, "image_to_caption_top1": i2t, "caption_to_image_top1": t2i,
            "chance_top1": chance}
