"""Seeded bootstrap confidence intervals over test examples."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence


def resamples(n: int, count: int = 1000, seed: int = 0) -> list[list[int]]:
    """`count` bootstrap index lists over n examples; the same (n, count, seed) gives the same lists.

    All systems share them, so their intervals (and differences) are computed on the same resamples.
    """
    rng = random.Random(seed)
    return [[rng.randrange(n) for _ in range(n)] for _ in range(count)] if n else []


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..1) of already sorted values."""
    if not sorted_values:
        return float("nan")
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def bootstrap(
    statistic: Callable[[Sequence[int]], float], samples: list[list[int]], level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of `statistic(indices)` over the resampled index lists."""
    values = sorted(statistic(idx) for idx in samples)
    alpha = (1 - level) / 2
    return percentile(values, alpha), percentile(values, 1 - alpha)


def mean_ci(scores: Sequence[float], samples: list[list[int]], level: float = 0.95) -> tuple[float, float]:
    """Interval of the mean of per-example scores."""
    return bootstrap(lambda idx: sum(scores[i] for i in idx) / len(idx), samples, level)
