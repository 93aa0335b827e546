"""`TopoTrainingArguments`: `TrainingArguments` plus the densification settings, validated early."""

import math
from dataclasses import dataclass, field

from transformers import TrainingArguments

from ..errors import ConfigurationError
from .losses import PLACEMENTS


SCHEDULES = ("constant", "cyclic")


@dataclass
class TopoTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus topological densification.

    Defaults: β, λ and the cyclic schedule follow the paper (García-Castellanos et al. 2024, §5: λ_pre = 2e-3,
    λ_post = 1.8e-2, β = 3, ramp 0 → λ over 75% of each of 4 cycles), with λ × 5 because the terms here are averaged
    over the b = 5 groups the paper sums over; n = 16 samples per class is Hofer et al.'s (ICML 2020) and the paper's.
    β is a target edge length: read it against the median death time logged per space (``topo_death_median_*``) —
    a β above the typical MST edge spreads the classes instead of densifying them.
    """

    topo_placement: str = field(default="both", metadata={"help": "'pre' (latent), 'post' (relative) or 'both'."})
    topo_beta_pre: float = field(default=3.0, metadata={"help": "Target death time β on the latent (paper: 3)."})
    topo_beta_post: float = field(default=3.0, metadata={"help": "Target death time β on the relative vector."})
    topo_weight_pre: float = field(default=1e-2, metadata={"help": "λ_pre (paper 2e-3 on a sum over 5 groups)."})
    topo_weight_post: float = field(default=9e-2, metadata={"help": "λ_post (paper 1.8e-2 on a sum over 5 groups)."})
    topo_samples_per_class: int = field(
        default=16, metadata={"help": "n: samples of each class in a batch, as one contiguous class-pure block."}
    )
    topo_group_size: int | None = field(
        default=None,
        metadata={
            "help": "Size of the class-pure groups whose death times the loss reads (Hofer's and the paper's 16); "
            "None = topo_samples_per_class. Smaller groups let one batch hold several groups per class."
        },
    )
    topo_classes_per_batch: int | None = field(
        default=None, metadata={"help": "b: classes per batch; None = every class (the paper: all 5)."}
    )
    topo_schedule: str = field(default="cyclic", metadata={"help": "'constant' or 'cyclic' (the paper's ramp)."})
    topo_schedule_cycles: int = field(default=4, metadata={"help": "Cycles of the cyclic schedule (paper: 4)."})
    topo_schedule_ramp_ratio: float = field(
        default=0.75, metadata={"help": "Fraction of each cycle over which the weight ramps 0 → λ (paper: 0.75)."}
    )
    topo_stats_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Size of the ordinary random sub-batch forwarded each step (no loss) to update running "
            "statistics of stats='running' models; None = per_device_train_batch_size for such models, else 0."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.topo_placement not in PLACEMENTS:
            raise ConfigurationError(f"topo_placement must be one of {PLACEMENTS}, got {self.topo_placement!r}.")
        if self.topo_schedule not in SCHEDULES:
            raise ConfigurationError(f"topo_schedule must be one of {SCHEDULES}, got {self.topo_schedule!r}.")
        if self.topo_samples_per_class < 2:
            raise ConfigurationError("topo_samples_per_class must be ≥ 2: a group of one sample has no MST edge.")
        if self.topo_group_size is not None and not 2 <= self.topo_group_size <= self.topo_samples_per_class:
            raise ConfigurationError(
                f"topo_group_size must lie in [2, topo_samples_per_class={self.topo_samples_per_class}], got "
                f"{self.topo_group_size}."
            )
        numbers = {name: getattr(self, name) for name in ("topo_beta_pre", "topo_beta_post", "topo_weight_pre",
                                                           "topo_weight_post")}  # fmt: skip
        bad = {name: value for name, value in numbers.items() if not (math.isfinite(value) and value >= 0)}
        if bad:
            raise ConfigurationError(f"topo_beta_* and topo_weight_* must be finite and ≥ 0, got {bad}.")
        if not 0.0 < self.topo_schedule_ramp_ratio <= 1.0 or self.topo_schedule_cycles < 1:
            raise ConfigurationError("topo_schedule_ramp_ratio must lie in (0, 1] and topo_schedule_cycles be ≥ 1.")

    def topo_weight_scale(self, step: int, max_steps: int) -> float:
        """The schedule's factor in [0, 1] at optimizer step `step` of `max_steps`."""
        if self.topo_schedule == "constant" or max_steps <= 0:
            return 1.0
        cycle_length = max_steps / self.topo_schedule_cycles
        position = (step % cycle_length) / cycle_length if cycle_length > 0 else 1.0
        return min(1.0, position / self.topo_schedule_ramp_ratio)
