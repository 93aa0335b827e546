"""Training relative models: class-balanced batches, the densification loss and `TopoTrainer`."""

from .arguments import SCHEDULES, TopoTrainingArguments
from .losses import PLACEMENTS, DensificationLoss
from .sampler import ClassBalancedBatchSampler
from .trainer import TopoTrainer, unwrap_model


__all__ = [
    "PLACEMENTS",
    "SCHEDULES",
    "ClassBalancedBatchSampler",
    "DensificationLoss",
    "TopoTrainer",
    "TopoTrainingArguments",
    "unwrap_model",
]
