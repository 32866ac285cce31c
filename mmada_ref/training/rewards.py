"""UniGRPO rewards: a registry of reward factories, configured per stage as ``[{name, weight, **options}]``.

Built in: ``correctness`` (math-verify, or exact yes/no when the gold answer is yes/no), ``format``
(``<think> ... </think> answer``), ``clip`` (CLIP score of generated images) and ``imagereward``. The image
scorers are imported and loaded only when a stage configures them, so missing scorer weights matter only then.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch

from mmada_scoring.yes_no import yorn_extraction


@dataclass
class Rollout:
    """One sampled response: the prompt row it answers, its decoded text and ids (or image)."""
    row: dict
    text: str = ""
    ids: list = field(default_factory=list)
    image: Any = None


RewardFn = Callable[[Sequence[Rollout]], Sequence[float]]
REWARDS: dict[str, Callable[..., RewardFn]] = {}


def register_reward(name: str):
    """Decorator: register ``factory(**options) -> reward_fn(rollouts) -> list[float]`` under ``name``."""
    def deco(factory):
        REWARDS[name] = factory
        return factory
    return deco


_THINK = re.compile(r"^\s*<think>(.+?)</think>\s*(\S.*)$", re.DOTALL)


def answer_part(text: str) -> str:
    """The answer after ``</think>`` (the whole text when there is no thought)."""
    return text.split("</think>", 1)[1] if "</think>" in text else text


@register_reward("correctness")
def correctness_reward(answer_key: str = "answer") -> RewardFn:
    """1.0 when the answer part is right: exact yes/no for yes/no gold answers, math-verify otherwise."""
    from mmada_scoring.math500 import (
        math_verify_correct,  # math_verify pulls in sympy (slow): loaded on first use
    )

    def fn(rollouts):
        scores = []
        for r in rollouts:
            if answer_key not in r.row:
                raise ValueError(f"correctness reward: prompt row has no {answer_key!r} field: keys {sorted(r.row)}")
            gold, pred = str(r.row[answer_key]).strip(), answer_part(r.text)
            if gold.lower() in ("yes", "no"):
                ok = yorn_extraction(pred) == gold.capitalize()
            else:
                ok = math_verify_correct(pred, gold)
            scores.append(1.0 if ok else 0.0)
        return scores
    return fn


@register_reward("format")
def format_reward() -> RewardFn:
    """1.0 for ``<think> reasoning </think> answer`` (non-empty reasoning and answer), else 0."""
    return lambda rollouts: [1.0 if _THINK.match(r.text) else 0.0 for r in rollouts]


def _image_prompts(rollouts, key: str):
    missing = [i for i, r in enumerate(rollouts) if r.image is None]
    if missing:
        raise ValueError(f"image reward on rollouts without an image (indices {missing[:5]}): configure CLIP / "
                         "ImageReward rewards only for text-to-image prompts")
    return [r.image for r in rollouts], [str(r.row.get(key, r.row.get("prompt", ""))) for r in rollouts]


@register_reward("clip")
def clip_reward(checkpoint: Optional[str] = None, model_name: str = "ViT-L-14", pretrained: str = "openai",
                device: str = "cpu", prompt_key: str = "caption", scale: float = 0.01) -> RewardFn:
    """CLIP score (``100 * max(cos, 0)``) times ``scale`` (default 0.01 -> cosine in [0, 1])."""
    from mmada_scoring.clip_score import (
        ClipScorer,  # torch + open_clip: loaded when images are scored
    )

    scorer = ClipScorer(model_name=model_name, checkpoint=checkpoint, pretrained=pretrained, device=device)

    def fn(rollouts):
        images, prompts = _image_prompts(rollouts, prompt_key)
        return [scale * s for s in scorer.score(images, prompts)]
    return fn


@register_reward("imagereward")
def imagereward_reward(folder: str = "", device: str = "cpu", prompt_key: str = "caption") -> RewardFn:
    """ImageReward score of (prompt, image) from a local ImageReward folder (``ImageReward.pt`` + configs)."""
    from mmada_scoring.imagereward import (
        ImageRewardScorer,  # torch + transformers BLIP: loaded when images are scored
    )

    scorer = ImageRewardScorer.from_folder(folder, device=device)

    def fn(rollouts):
        images, prompts = _image_prompts(rollouts, prompt_key)
        return scorer.score(prompts, images)
    return fn


def _factory(name: Optional[str]) -> Callable[..., RewardFn]:
    """A registered reward, or ``"package.module:factory"`` for a reward defined outside this module."""
    if name in REWARDS:
        return REWARDS[name]
    if name and ":" in name:
        module, attr = name.split(":", 1)
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"reward {name!r} could not be imported ({exc})") from exc
    raise ValueError(f"unknown reward {name!r}; known: {', '.join(sorted(REWARDS))} "
                     "(or give 'package.module:factory')")


class RewardSet:
    """Weighted sum of configured rewards; also reports each reward's mean."""
    def __init__(self, specs: Sequence[dict]):
        if not specs:
            raise ValueError("grpo.rewards is empty: configure at least one reward "
                             f"(known: {', '.join(sorted(REWARDS))})")
        self.parts = []
        for spec in specs:
            spec = dict(spec)
            name, weight = spec.pop("name", None), float(spec.pop("weight", 1.0))
            self.parts.append((str(name).split(":")[-1], weight, _factory(name)(**spec)))

    def __call__(self, rollouts: Sequence[Rollout]) -> tuple[torch.Tensor, dict[str, float]]:
        total = torch.zeros(len(rollouts))
        means = {}
        for name, weight, fn in self.parts:
            values = torch.tensor([float(v) for v in fn(rollouts)])
            if values.shape[0] != len(rollouts):
                raise ValueError(f"reward {name!r} returned {values.shape[0]} values for {len(rollouts)} rollouts")
            total += weight * values
            means[f"reward_{name}"] = float(values.mean())
        return total, means
