"""A UniGRPO reward for text-to-image rollouts on the world: the world oracle's GenEval-style prompt score.

Configure as ``{name: "mmada_bench.world.rewards:oracle_reward", weight: 1.0}`` (``mmada_ref.training.rewards``
imports ``package.module:factory`` names).
"""
from __future__ import annotations

from .oracle import score_prompt


def oracle_reward(prompt_key: str = "caption"):
    """``factory() -> fn(rollouts) -> [1.0 | 0.0]``: does the generated image satisfy its prompt?"""

    def fn(rollouts):
        scores = []
        for r in rollouts:
            if r.image is None:
                raise ValueError("oracle reward needs decoded images: configure model.vq_model (MAGVIT folder)")
            scores.append(score_prompt(str(r.row.get(prompt_key, r.row.get("prompt", ""))), r.image))
        return scores

    return fn
