"""Confidence bounds the rollout gates compare with their thresholds (pure functions)."""

from __future__ import annotations

import math


def wilson_interval(successes: int, total: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion, `z` standard errors wide ((0, 1) without data)."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    z2 = z * z
    centre = p + z2 / (2 * total)
    spread = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    scale = 1 + z2 / total
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


def rate_ratio_interval(
    events: int, exposure: float, base_events: int, base_exposure: float, z: float
) -> tuple[float, float] | None:
    """Interval of the ratio of two Poisson rates (log-normal); None without exposure.

    Half an event is added on each side so that no event yet is neither a ratio
    of 0 nor a division by zero.
    """
    if exposure <= 0 or base_exposure <= 0:
        return None
    treated = events + 0.5
    base = base_events + 0.5
    ratio = (treated / exposure) / (base / base_exposure)
    spread = math.exp(z * math.sqrt(1 / treated + 1 / base))
    return ratio / spread, ratio * spread


def smallest_confident_sample(rate: float, z: float) -> float:
    """Observations needed before all successes put the lower Wilson bound at `rate`."""
    if rate >= 1:
        return math.inf
    return z * z * rate / (1 - rate)
