"""Paired differences between two methods run on the same seeds: the mean and a 95 % interval.

A paired design (same seed, same initialisation, same batches; only the method differs) removes the seed-to-seed
spread the two methods share; what is left is the spread of the per-seed differences d_s = B_s − A_s.
"""

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as scipy_stats


def paired_t_interval(differences: Sequence[float], *, confidence: float = 0.95) -> dict[str, float]:
    """Mean of the paired differences and its Student-t interval.

    ``d̄ ± t_{(1+c)/2, n−1} · s_d / √n`` with s_d the sample standard deviation of the n differences. With one
    difference the interval is unbounded (``±inf``).
    """
    values = np.asarray(differences, dtype=np.float64)
    count = len(values)
    mean = float(values.mean()) if count else float("nan")
    if count < 2:
        return {"mean": mean, "low": -math.inf, "high": math.inf, "half_width": math.inf, "std": 0.0, "n": count}
    std = float(values.std(ddof=1))
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, count - 1) * std / math.sqrt(count))
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half, "std": std, "n": count}


def bootstrap_interval(
    differences: Sequence[float], *, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> dict[str, float]:
    """Mean of the paired differences and its percentile bootstrap interval over seeds."""
    values = np.asarray(differences, dtype=np.float64)
    if len(values) < 2:
        return {"mean": float(values.mean()) if len(values) else float("nan"), "low": -math.inf, "high": math.inf}
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return {"mean": float(values.mean()), "low": float(low), "high": float(high)}


def excludes_zero(interval: dict[str, float]) -> bool:
    """Whether the interval lies entirely on one side of 0."""
    return interval["low"] > 0 or interval["high"] < 0


__all__ = ["bootstrap_interval", "excludes_zero", "paired_t_interval"]
