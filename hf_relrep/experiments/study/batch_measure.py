"""The measurement of the batch-statistics study: how often a prediction changes when the batches change.

`batch_sensitivity` takes any ``predict(indices) -> classes`` function, so the same code measures the synthetic
setup ([`hf_relrep.experiments.study.batch_stats`]) and the embedded sentiment data
([`hf_relrep.experiments.study.batch_stats_text`]); `merge` averages the two directions of native and stitched models.
"""

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ...errors import ConfigurationError


BATCH_SIZES: tuple[int, ...] = (2, 4, 8, 32, 128)
STATS: tuple[str, ...] = ("anchors", "batch", "running")

Predictor = Callable[[torch.Tensor], torch.Tensor]


def batch_sensitivity(
    predict: Predictor,
    labels: torch.Tensor,
    *,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    draws: int = 8,
    seed: int = 0,
) -> dict[int, dict[str, float]]:
    """Serve every input in `draws` random batchings per batch size; how often does its prediction change?

    Args:
        predict: maps a ``[b]`` tensor of input indices (one batch) to ``[b]`` predicted classes.
        labels: ``[n]`` true labels of the inputs. Every batch is full: a last partial batch is filled up with other
            inputs, whose predictions in that batch are not counted.
        batch_sizes: the batch sizes to try.
        draws: random batchings per batch size (≥ 2).
        seed: the batchings' random generator.

    Returns:
        Per batch size: ``changed`` (fraction of inputs not predicted the same in every draw), ``flip_rate`` (mean
        over pairs of draws of the fraction of inputs predicted differently), ``accuracy`` and ``accuracy_std``
        (mean and std over draws).
    """
    if draws < 2:
        raise ConfigurationError(f"draws must be ≥ 2 to see a prediction change, got {draws}.")
    count = labels.shape[0]
    generator = torch.Generator().manual_seed(seed)
    results = {}
    for size in batch_sizes:
        if size > count:
            raise ConfigurationError(f"Batch size {size} exceeds the {count} inputs.")
        predictions = torch.empty((draws, count), dtype=torch.long)
        for draw in range(draws):
            order = torch.randperm(count, generator=generator)
            # A last partial batch is filled up with inputs of the first batch, whose predictions there are ignored.
            order = torch.cat([order, order[: -count % size]])
            for start in range(0, len(order), size):
                batch = order[start : start + size]
                own = torch.arange(start, start + len(batch)) < count
                predictions[draw, batch[own]] = predict(batch).cpu()[own]
        changed = (predictions != predictions[0]).any(0).double().mean()
        pairs = itertools.combinations(range(draws), 2)
        flips = [float((predictions[a] != predictions[b]).double().mean()) for a, b in pairs]
        accuracies = [float((predictions[d] == labels).double().mean()) for d in range(draws)]
        results[size] = {
            "changed": float(changed), "flip_rate": float(np.mean(flips)), "accuracy": float(np.mean(accuracies)),
            "accuracy_std": float(np.std(accuracies)),
        }  # fmt: skip
    return results


def merge(per_predictor: dict[str, dict[int, dict[str, float]]]) -> dict[int, dict[str, float]]:
    """Native and stitched figures per batch size, averaged over the two directions of each."""
    sizes = next(iter(per_predictor.values())).keys()
    merged = {}
    for size in sizes:
        row = {}
        for kind in ("native", "stitched"):
            members = [v[size] for k, v in per_predictor.items() if k.startswith(kind)]
            for key in ("changed", "flip_rate", "accuracy"):
                row[f"{kind}_{key}"] = float(np.mean([m[key] for m in members]))
        merged[size] = row
    return merged


__all__ = ["BATCH_SIZES", "STATS", "Predictor", "batch_sensitivity", "merge"]
