"""Confidence intervals for per-item scores."""
from __future__ import annotations

import math
import random


def wilson_interval(successes: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95 % by default)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # clamp rounding noise: the interval always contains p (and is exactly 0 / 1 at the edges)
    return (min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))


def bootstrap_interval(values: list[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of the mean."""
    if not values:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    return (means[int(0.025 * resamples)], means[min(resamples - 1, int(0.975 * resamples))])


def mean_with_ci(values: list[float]) -> dict:
    """``{"value", "ci_low", "ci_high", "ci_method", "n"}`` for a list of per-item scores."""
    n = len(values)
    value = sum(values) / n if n else float("nan")
    if all(v in (0.0, 1.0) for v in values):
        low, high = wilson_interval(sum(values), n)
        method = "wilson"
    else:
        low, high = bootstrap_interval(values)
        method = "bootstrap-percentile-2000"
    return {"value": value, "ci_low": low, "ci_high": high, "ci_method": method, "n": n}
