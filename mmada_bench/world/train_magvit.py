"""Train a small MAGVIT-v2 (LFQ) image tokenizer on world images, for a step count or a time budget, and evaluate it.

    python -m mmada_bench.world.train_magvit --out runs/world-magvit --steps 4362 --threads 2   # repeatable (the build)
    nice -n 10 python -m mmada_bench.world.train_magvit --out runs/world-magvit --minutes 12

``--steps`` trains a fixed number of steps with the schedule on the step count (the same weights wherever torch and
the thread count are the same); the build uses it. A time budget bounds the wall time instead, but the step count
and the learning-rate schedule then follow the machine's speed, so two machines train different tokenizers.

Model: :class:`mmada_ref.magvit.MAGVITv2` with a config in the layout of
``mmada_bench/assets/mmada-smoke/magvitv2/magvit_config.json`` (``--levels 3`` -> factor 4 -> 8 x 8 codes
for 32 px; ``--levels 4`` -> 4 x 4). Loss: L1 + MSE reconstruction (pixels in [-1, 1]) + the LFQ
commitment and entropy losses. ``code_colour_purity`` (held-out metric) says how far each code names its patch's
colour: ~0.50 with the plain losses, whose decoder reads colour partly from neighbouring codes (one "filled
interior" code serves red, yellow and green shapes); 1.0 with ``--semantic-weight`` (below). Training images
come from the ``train`` split seeds, held-out images from the ``world`` split (see :mod:`mmada_bench.world.seeds`).
Writes ``magvit_config.json`` + ``pytorch_model.safetensors`` (official layout) and ``metrics.json`` (PSNR, code
usage, oracle rate, purities).

``--semantic-weight W`` (a world-recipe choice, not part of MAGVIT-v2) adds, during training only, two linear
read-outs of each quantised code (10 signs -> the colour of its 4 x 4 patch, and -> the shape of the object in
that patch), cross-entropy times ``W``. They make every code name its patch's colour and its object's shape, so
the transformer can read an object from any one of its codes; the read-outs are discarded, the saved folder is
a plain MAGVIT-v2. ``code_shape_purity`` measures the shape half as ``code_colour_purity`` the colour.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from mmada_ref.magvit import CoderConfig, MAGVITConfig, MAGVITv2, QuantizerConfig

from .oracle import classify_pixels, scene_found
from .scene import CANVAS, CELL, CELLS, COLOURS, SHAPES, draw, sample_scene
from .seeds import (
    DEFAULT_EVAL_SEED,
    DEFAULT_TRAIN_SEED,
    EVAL_SPLIT,
    TRAIN_SPLIT,
    item_rng,
)

STREAM = "magvit"


def world_config(levels: int = 3, ch: int = 32, codebook_dim: int = 10, blocks: int = 1) -> MAGVITConfig:
    """A small MAGVIT-v2 for 32 px world images: ``levels`` levels -> downsample 2**(levels-1)."""
    mult = [1] * (levels - 1) + [2]

    def tower(resolution: int) -> CoderConfig:
        return CoderConfig(ch=ch, ch_mult=list(mult), num_res_blocks=[blocks] * levels, attn_resolutions=[5],
                           dropout=0.0, in_ch=3, out_ch=3, resolution=resolution, z_channels=codebook_dim,
                           double_z=False)

    return MAGVITConfig(encoder=tower(CANVAS), decoder=tower(CANVAS),
                        quantizer=QuantizerConfig(num_codebook_entry=-1, codebook_dim=codebook_dim, beta=0.25,
                                                  entropy_multiplier=0.1, commit_loss_multiplier=0.1))


def to_pixels(images) -> torch.Tensor:
    """PIL images -> ``[B, 3, H, W]`` float in [-1, 1]."""
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def patch_labels(scenes: list, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``([B, side, side], [B, side, side])`` long: each code patch's colour (0 background, 1.. the oracle's
    palette order) and the shape of the object covering it (0 none, 1.. :data:`SHAPES` order)."""
    pixels = np.stack([classify_pixels(draw(s)) for s in scenes])
    f = CANVAS // side
    colour = pixels.reshape(len(scenes), side, f, side, f).max(axis=(2, 4))
    shape = np.zeros_like(colour)
    per_cell = CELL // f
    for i, scene in enumerate(scenes):
        for o in scene.objects:
            x0, y0 = (c // f for c in CELLS[o.cell])
            cell = colour[i, y0:y0 + per_cell, x0:x0 + per_cell]
            shape[i, y0:y0 + per_cell, x0:x0 + per_cell][cell > 0] = SHAPES.index(o.shape) + 1
    return torch.from_numpy(colour).long(), torch.from_numpy(shape).long()


def scene_codes(model: MAGVITv2, scenes: list, batch: int = 256) -> torch.Tensor:
    """``[len(scenes), codes per image]`` MAGVIT codes of the drawn ``scenes`` (no grad, ``batch`` at a time)."""
    with torch.no_grad():
        return torch.cat([model.get_code(to_pixels([draw(s) for s in scenes[i:i + batch]]))
                          for i in range(0, len(scenes), batch)])


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """``[B, 3, H, W]`` in [-1, 1] -> ``[B, H, W, 3]`` uint8 (official ``clamp((x+1)/2)*255``, truncated)."""
    x = ((pixels.clamp(-1, 1) + 1) / 2 * 255).permute(0, 2, 3, 1)
    return x.detach().cpu().numpy().astype(np.uint8)


def world_scenes(n: int, split: str, seed: int, stream: str = STREAM) -> list:
    """``n`` scenes of ``split`` (any 1..3 objects, repeats allowed as in counting items)."""
    scenes = []
    for i in range(n):
        rng = item_rng(seed, split, stream, i)
        scenes.append(sample_scene(rng, allow_repeats=bool(rng.integers(0, 4) == 0)))
    return scenes


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean per-image PSNR (dB) of uint8 images."""
    err = ((reference.astype(np.float64) - test.astype(np.float64)) ** 2).reshape(len(reference), -1).mean(1)
    return float(np.mean(10 * np.log10(255.0 ** 2 / np.maximum(err, 1e-10))))


@torch.no_grad()
def evaluate(model: MAGVITv2, scenes: list, batch: int = 128) -> dict:
    """PSNR, code usage and oracle-on-reconstruction rate on ``scenes``."""
    model.eval()
    originals, recons, codes = [], [], []
    for start in range(0, len(scenes), batch):
        images = [draw(s) for s in scenes[start:start + batch]]
        pixels = to_pixels(images)
        c = model.get_code(pixels)
        recons.append(to_uint8(model.decode_code(c)))
        originals.append(np.stack([np.asarray(im) for im in images]))
        codes.append(c)
    originals, recons, codes = np.concatenate(originals), np.concatenate(recons), torch.cat(codes)
    counts = torch.bincount(codes.reshape(-1), minlength=model.codebook_size).double()
    probs = counts / counts.sum()
    entropy = float(-(probs[probs > 0] * probs[probs > 0].log()).sum())
    found = [scene_found(s, r) for s, r in zip(scenes, recons)]
    model.train()
    return {"images": len(scenes), "psnr_db": psnr(originals, recons),
            "codes_used": int((counts > 0).sum()), "codebook_size": model.codebook_size,
            "code_usage": float((counts > 0).float().mean()), "code_perplexity": math.exp(entropy),
            "oracle_found_rate": float(np.mean(found)), "tokens_per_image": int(codes.shape[1]),
            **code_purities(scenes, codes)}


def code_purities(scenes: list, codes: torch.Tensor) -> dict:
    """``code_colour_purity`` / ``code_shape_purity``: share of an object's patches whose code is one that (in
    these images) mostly sits on that patch's colour / object shape. 1.0 means every code names it."""
    side = int(round(codes.shape[1] ** 0.5))
    colour, shape = patch_labels(scenes, side)
    flat_codes, keep = codes.reshape(-1).numpy(), colour.reshape(-1).numpy() > 0
    out = {}
    for name, labels in (("colour", colour), ("shape", shape)):
        flat = labels.reshape(-1).numpy()
        if not keep.any():
            out[f"code_{name}_purity"] = float("nan")
            continue
        table = np.zeros((int(flat_codes.max()) + 1, int(flat.max()) + 1), dtype=np.int64)
        np.add.at(table, (flat_codes[keep], flat[keep]), 1)
        out[f"code_{name}_purity"] = float(table.max(-1).sum() / keep.sum())
    return out


def train(out: Path, minutes: float, levels: int, ch: int, codebook_dim: int, batch: int, lr: float,
          train_images: int, heldout_images: int, seed: int, log_every: int = 50,
          semantic_weight: float = 0.0, steps: Optional[int] = None) -> dict:
    """Train until the time budget is spent (or for ``steps`` optimiser steps, with the schedule following the step
    count: the same weights on any machine with the same torch and thread count), then save the model and its
    held-out metrics (``semantic_weight``: the code read-out loss of the module docstring; 0 = plain MAGVIT-v2)."""
    torch.manual_seed(seed)
    config = world_config(levels, ch, codebook_dim)
    model = MAGVITv2(config)
    scenes = world_scenes(train_images, TRAIN_SPLIT, DEFAULT_TRAIN_SEED + seed)
    pixels = to_pixels([draw(s) for s in scenes])
    params = list(model.parameters())
    if semantic_weight > 0:
        colour_labels, shape_labels = patch_labels(scenes, CANVAS // 2 ** (levels - 1))
        readout = torch.nn.Conv2d(codebook_dim, 1 + len(COLOURS) + 1 + len(SHAPES), 1)  # colour | shape logits
        params += list(readout.parameters())
    heldout = world_scenes(heldout_images, EVAL_SPLIT, DEFAULT_EVAL_SEED)
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99))
    budget, start, step, log = minutes * 60.0, time.time(), 0, []
    gen = torch.Generator().manual_seed(seed)
    while (step < steps) if steps else (time.time() - start < budget):
        frac = step / steps if steps else min((time.time() - start) / budget, 1.0)
        for group in opt.param_groups:  # cosine decay over the steps (or the time budget), 2 % warm-up
            group["lr"] = lr * min(1.0, frac / 0.02 + 1e-3) * 0.5 * (1 + math.cos(math.pi * frac))
        pick = torch.randint(len(pixels), (batch,), generator=gen)
        x = pixels[pick]
        q = model.quantize(model.encode_z(x))
        recon = model.decoder(q["z"])
        rec = F.l1_loss(recon, x) + F.mse_loss(recon, x)
        loss = rec + q["quantizer_loss"] + q["entropy_loss"]
        if semantic_weight > 0:
            logits = readout(q["z"])
            n_colour = 1 + len(COLOURS)
            semantic = (F.cross_entropy(logits[:, :n_colour], colour_labels[pick])
                        + F.cross_entropy(logits[:, n_colour:], shape_labels[pick]))
            loss = loss + semantic_weight * semantic
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % log_every == 0:
            row = {"step": step, "seconds": round(time.time() - start, 1), "loss": loss.item(),
                   "recon": rec.item(), "lr": opt.param_groups[0]["lr"],
                   **({"semantic": semantic.item()} if semantic_weight > 0 else {})}
            log.append(row)
            print(json.dumps(row), flush=True)
    seconds = time.time() - start
    model.eval().save_pretrained(out)
    metrics = {"train_seconds": round(seconds, 1), "steps": step, "batch": batch, "train_images": train_images,
               "semantic_weight": semantic_weight,
               "threads": torch.get_num_threads(), "parameters": sum(p.numel() for p in model.parameters()),
               "heldout": evaluate(model, heldout),
               "heldout_jitter0": evaluate(model, _rejitter(heldout, 0)),
               "train_sample": evaluate(model, world_scenes(heldout_images, TRAIN_SPLIT, DEFAULT_TRAIN_SEED + seed)),
               "log": log}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    return metrics


def other_programs(n: int) -> dict:
    """Held-out scenes as 'another program' could draw them: four shapes, jitter -2..+2 (distinct colours,
    so that neighbouring shapes of one colour cannot merge)."""
    from .scene import sample_scene

    four = [sample_scene(item_rng(DEFAULT_EVAL_SEED, EVAL_SPLIT, "magvit-four", i), n_objects=4) for i in range(n)]
    wide = [sample_scene(item_rng(DEFAULT_EVAL_SEED, EVAL_SPLIT, "magvit-jitter2", i), jitter=2) for i in range(n)]
    return {"four_shapes": four, "jitter2": [s for s in wide if len({o.colour for o in s.objects}) == len(s.objects)]}


def evaluate_folder(folder: Path, n: int) -> dict:
    """Every held-out evaluation of a saved MAGVIT folder (written to ``eval.json``)."""
    model = MAGVITv2.from_pretrained(folder)
    heldout = world_scenes(n, EVAL_SPLIT, DEFAULT_EVAL_SEED)
    report = {"heldout": evaluate(model, heldout), "heldout_jitter0": evaluate(model, _rejitter(heldout, 0))}
    report.update({f"heldout_{k}": evaluate(model, v) for k, v in other_programs(n).items()})
    (Path(folder) / "eval.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def _rejitter(scenes: list, jitter: int) -> list:
    """The same scenes with every object's jitter set to ``(jitter, -jitter)`` (an 'other program' test)."""
    from dataclasses import replace

    from .scene import Scene

    return [Scene(tuple(replace(o, jitter=(jitter, -jitter)) for o in s.objects)) for s in scenes]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mmada_bench.world.train_magvit", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output folder (MAGVIT-v2 official layout)")
    p.add_argument("--minutes", type=float, default=12.0, help="wall-clock training budget")
    p.add_argument("--steps", type=int, default=None,
                   help="train exactly this many steps instead (schedule by step: repeatable; --minutes is ignored)")
    p.add_argument("--levels", type=int, default=3, help="3 -> 8x8 codes, 4 -> 4x4 codes for 32 px")
    p.add_argument("--ch", type=int, default=32)
    p.add_argument("--codebook-dim", type=int, default=10, help="LFQ bits per code (2**dim codes)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--train-images", type=int, default=20000)
    p.add_argument("--heldout-images", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--semantic-weight", type=float, default=0.0,
                   help="weight of the code read-out loss (each code names its patch's colour and shape); 0 = off")
    p.add_argument("--eval-only", action="store_true", help="evaluate the MAGVIT already in --out")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.eval_only:
        print(json.dumps(evaluate_folder(args.out, args.heldout_images), indent=1))
        return 0
    metrics = train(args.out, args.minutes, args.levels, args.ch, args.codebook_dim, args.batch, args.lr,
                    args.train_images, args.heldout_images, args.seed, semantic_weight=args.semantic_weight,
                    steps=args.steps)
    print(json.dumps({k: v for k, v in metrics.items() if k != "log"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
