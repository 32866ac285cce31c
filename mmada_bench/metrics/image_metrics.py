"""Scores of generated images: CLIP score and ImageReward, registered as the set metrics of the t2i cards.

A set metric here is ``fn(entries, options) -> [row]`` with entries ``{"item_id", "prompt", "image"}``
(``image``: a PNG path or a PIL image) and options from the card plus the ``run`` flags
(:data:`OPTION_FLAGS`). The row is ``{"metric", "label", "value", "n", "unit", "per_item", "item_errors"}``:
``value`` = mean of the per-image scores (CLIP: ``100 * max(cos, 0)`` per image; ImageReward: the
normalised reward), ``per_item`` = item id -> score, ``label`` = the scorer's identity (the leaderboard's
``filter`` column). Images are read and scored in chunks of ``batch_size``, so any number of images fits
in memory. Missing weights raise :class:`ScorerWeightsMissing` naming the flag to set.

Which CLIP scores (:func:`with_model_clip`): the ``--clip-*`` flags when any is given; else ``MODEL/clip/`` when
the evaluated checkpoint folder ships its own CLIP there (an open_clip folder, e.g. the world model's
``world-clip``); else the card's default (ViT-L-14 openai). The row's label names the CLIP used.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Sequence

from mmada_bench.registry import register_set_metric
from mmada_scoring.scorer_weights import ScorerWeightsMissing, to_pil_image

#: where the image-reward package stores ImageReward.pt + med_config.json (used when --imagereward-dir is not given)
DEFAULT_IMAGEREWARD_DIR = "~/.cache/ImageReward"
#: option -> the run flag that sets it
OPTION_FLAGS = {
    "clip_model": "--clip-model", "clip_pretrained": "--clip-pretrained", "clip_checkpoint": "--clip-checkpoint",
    "clip_dir": "--clip-dir", "imagereward_dir": "--imagereward-dir", "imagereward_tokenizer": "--imagereward-tokenizer",
}
UNIT = "score"  # printed as is (2 decimals), not as a percentage
CLIP_OPTIONS = ("clip_model", "clip_pretrained", "clip_checkpoint", "clip_dir")
#: sub-folder of a model checkpoint that holds the CLIP its text-to-image results are scored with
MODEL_CLIP_SUBDIR = "clip"

__all__ = ["ScorerWeightsMissing", "clip_label", "clip_score_metric", "imagereward_metric", "OPTION_FLAGS",
           "model_clip_dir", "with_model_clip"]


def model_clip_dir(model) -> Path | None:
    """``MODEL/clip`` when ``model`` is a checkpoint folder shipping an open_clip folder there, else None."""
    if not model or not Path(str(model)).is_dir():
        return None
    folder = Path(str(model)) / MODEL_CLIP_SUBDIR
    return folder if (folder / "open_clip_config.json").is_file() else None


def with_model_clip(scorers: dict, model) -> dict:
    """``scorers`` plus ``clip_dir = MODEL/clip`` when no ``--clip-*`` flag is given and the model ships a CLIP."""
    folder = model_clip_dir(model)
    if folder is None or any(scorers.get(name) is not None for name in CLIP_OPTIONS):
        return dict(scorers)
    return {**scorers, "clip_dir": str(folder)}


def clip_label(options: dict) -> str:
    """``MODEL:PRETRAINED[@checkpoint file]``, e.g. ``ViT-L-14:openai``; a ``clip_dir``: its config's ``name``
    (``world-clip``), else the folder name."""
    if options.get("clip_dir"):
        return _dir_name(Path(options["clip_dir"]).expanduser())
    label = f"{options.get('clip_model') or 'ViT-L-14'}:{_pretrained(options) or 'none'}"
    checkpoint = options.get("clip_checkpoint")
    return label + (f"@{Path(checkpoint).name}" if checkpoint else "")


def _dir_name(folder: Path) -> str:
    try:
        name = json.loads((folder / "open_clip_config.json").read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        name = None
    return name if isinstance(name, str) and name else folder.name


def _pretrained(options: dict):
    value = options.get("clip_pretrained", "openai")
    return None if value in (None, "", "none") else value


@register_set_metric("clip_score")
def clip_score_metric(entries: list[dict], options: dict) -> list[dict]:
    """CLIP score of each (image, prompt) with an open_clip backbone from local weights (default ViT-L-14 openai)."""
    from mmada_scoring.clip_score import (
        ClipScorer,  # torch + open_clip: imported when a task scores images
    )

    batch_size, device = int(options.get("batch_size", 16)), options.get("device", "cpu")
    if options.get("clip_dir"):
        others = [OPTION_FLAGS[k] for k in CLIP_OPTIONS[:3] if options.get(k) is not None]
        if others:
            raise ValueError(f"--clip-dir names the whole CLIP; drop {', '.join(others)}")
        scorer = ClipScorer.from_dir(options["clip_dir"], device=device, batch_size=batch_size)
    else:
        scorer = ClipScorer(options.get("clip_model") or "ViT-L-14", checkpoint=options.get("clip_checkpoint"),
                            device=device, pretrained=_pretrained(options), batch_size=batch_size)
    return [_summary("clip_score", clip_label(options), entries, lambda images, prompts: scorer.score(images, prompts),
                     int(options.get("batch_size", 16)))]


@register_set_metric("imagereward")
def imagereward_metric(entries: list[dict], options: dict) -> list[dict]:
    """ImageReward-v1.0 (normalised) of each (prompt, image) from ``imagereward_dir`` (ImageReward.pt + med_config.json)."""
    from mmada_scoring.imagereward import (
        ImageRewardScorer,  # torch + transformers BLIP: on use
    )

    folder = options.get("imagereward_dir") or DEFAULT_IMAGEREWARD_DIR
    try:
        scorer = ImageRewardScorer.from_folder(Path(folder).expanduser(), device=options.get("device", "cpu"),
                                               tokenizer_dir=options.get("imagereward_tokenizer"),
                                               batch_size=int(options.get("batch_size", 16)))
    except ScorerWeightsMissing as exc:
        if options.get("imagereward_dir"):
            raise
        raise ScorerWeightsMissing(f"no --imagereward-dir given and the default {folder} has no ImageReward weights: "
                                   f"{exc}") from None
    return [_summary("imagereward", "ImageReward-v1.0", entries, lambda images, prompts: scorer.score(prompts, images),
                     int(options.get("batch_size", 16)))]


clip_score_metric.outputs = ("clip_score",)
imagereward_metric.outputs = ("imagereward",)


def _summary(metric: str, label: str, entries: list[dict], score: Callable, chunk: int) -> dict:
    """Score ``entries`` in chunks (a failing chunk is retried image by image) and average the scores."""
    per_item, item_errors = {}, {}
    for start in range(0, len(entries), max(1, chunk)):
        part = entries[start: start + chunk]
        try:
            values = _score_chunk(score, part)
        except ScorerWeightsMissing:
            raise
        except Exception:  # noqa: BLE001 - find the image(s) at fault, score the others
            values = []
            for entry in part:
                try:
                    values.extend(_score_chunk(score, [entry]))
                except ScorerWeightsMissing:
                    raise
                except Exception as exc:  # noqa: BLE001
                    item_errors[entry["item_id"]] = f"{metric} failed: {type(exc).__name__}: {exc}"
                    values.append(None)
        for entry, value in zip(part, values):
            if value is not None:
                per_item[entry["item_id"]] = float(value)
    scores = list(per_item.values())
    return {"metric": metric, "label": label, "unit": UNIT, "n": len(scores),
            "value": sum(scores) / len(scores) if scores else math.nan, "per_item": per_item,
            "item_errors": item_errors}


def _score_chunk(score: Callable, part: Sequence[dict]) -> list[float]:
    images = [to_pil_image(e["image"]).convert("RGB") for e in part]
    return list(score(images, [e["prompt"] for e in part]))
