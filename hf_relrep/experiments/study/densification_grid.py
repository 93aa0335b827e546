"""The grid of `hf-relrep study densification`: training sizes, what trains, the densification settings, the steps
and training subsets of a cell, the validated plan of a run, and the (head, encoder) pairs every unit is scored on."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigurationError


SIZES: tuple[int, ...] = (50, 100, 250, 500, 1000, 2000)
#: Optimizer steps every model gets at least (the 2,000-sentence default runs 3 epochs of 15 batches: 45 steps);
#: ``--quick`` uses `QUICK_MIN_STEPS`.
MIN_STEPS = 45
QUICK_MIN_STEPS = 15
#: The (head language, encoder language) pairs every unit is scored on; the first two are native, the last two stitched.
PAIRS = (("en", "en"), ("fr", "fr"), ("en", "fr"), ("fr", "en"))


@dataclass(frozen=True)
class Trainable:
    """What trains: the adapter, and how many of the backbone's top transformer layers (`None`: all of them)."""

    name: str
    adapter: str
    frozen: bool
    top_layers: int | None
    description: str


TRAINABLES: dict[str, Trainable] = {
    t.name: t
    for t in (
        Trainable("head", "none", True, 0, "linear head only, frozen backbone (densification has nothing to move)"),
        Trainable("adapter", "mlp", True, 0, "MLP adapter + head on cached features (reproduce's quick preset)"),
        Trainable(
            "top1", "none", False, 1, "top transformer layer + head, on cached hidden states of the layer below"
        ),
        Trainable("top2", "none", False, 2, "top 2 transformer layers + head, on cached hidden states below them"),
        Trainable("full", "none", False, None, "the whole backbone + head"),
    )
}


@dataclass(frozen=True)
class TopoSetting:
    """One densification setting: λ per space (0 = that space off) and β (fixed, or a multiple of the median death)."""

    name: str
    weight_pre: float
    weight_post: float
    beta_scale: float = 0.5
    beta: float | None = None

    @property
    def is_off(self) -> bool:
        """λ = 0 in both spaces: the loss is robust's, so its models are robust's (no unit of its own)."""
        return self.weight_pre == 0 and self.weight_post == 0

    def overrides(self) -> dict:
        """The `ReproduceConfig` fields of this setting."""
        return {"topo_weight_pre": self.weight_pre, "topo_weight_post": self.weight_post,
                "beta_scale": self.beta_scale, "beta_pre": self.beta, "beta_post": self.beta}  # fmt: skip


SETTINGS: dict[str, TopoSetting] = {
    s.name: s
    for s in (
        TopoSetting("both-default", 1e-2, 2e-2),  # reproduce's default
        TopoSetting("both-strong", 1e-1, 2e-1),  # 10×: the paper sums over groups where we average
        TopoSetting("pre-strong", 1e-1, 0.0),
        TopoSetting("post-strong", 0.0, 2e-1),
        TopoSetting("both-paper-beta3", 1e-2, 9e-2, beta=3.0),  # the paper's λ_post and fixed β = 3
        TopoSetting("none", 0.0, 0.0),  # λ = 0: robust itself, so that validation can decline to densify
    )
}


def samples_per_class(size: int, group_size: int = 16) -> int:
    """Class-balanced batches of up to 64 per class, whole loss groups only, no more than a class holds."""
    return max(group_size, min(64, group_size * ((size // 2) // group_size)))


def epochs_for(size: int, min_steps: int = MIN_STEPS) -> int:
    """Epochs so that a model sees at least `min_steps` batches (at least the default 3)."""
    per_class, spc = size // 2, samples_per_class(size)
    return max(3, math.ceil(min_steps / max(1, per_class // spc)))


def stratified_subset(labels: Sequence[int], size: int, seed: int, offset: int) -> list[int]:
    """`size` row indices, half per class (binary), drawn with the seed and the language's offset."""
    rng = np.random.default_rng([seed, offset])
    picks: list[int] = []
    classes = sorted(set(labels))
    for position, label in enumerate(classes):
        members = np.flatnonzero(np.asarray(labels) == label)
        take = size // len(classes) + (1 if position < size % len(classes) else 0)
        if take > len(members):
            raise ConfigurationError(f"Asked for {size} training sentences; class {label} has only {len(members)}.")
        picks += rng.choice(members, size=take, replace=False).tolist()
    return picks


def plan(
    *,
    quick: bool = False,
    sizes: Sequence[int] | None = None,
    trainables: Sequence[str] | None = None,
    settings: Sequence[str] | None = None,
    seeds: int = 20,
    selection_seeds: int = 3,
) -> dict:
    """The validated grid of `hf_relrep.experiments.study.densification.run_densification`'s arguments, with the number of units
    it trains (``units``).

    Raises:
        ConfigurationError: an unknown trainable or setting, a size outside 32..2000, or too few seeds.
    """
    sizes = tuple(sizes or ((50, 250) if quick else SIZES))
    trainables = tuple(trainables or (("head", "adapter") if quick else tuple(TRAINABLES)))
    settings = tuple(settings or (("both-default", "both-strong") if quick else tuple(SETTINGS)))
    seeds, selection_seeds = (2, 1) if quick else (seeds, selection_seeds)
    for name, chosen, known in (("trainable", trainables, TRAINABLES), ("setting", settings, SETTINGS)):
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise ConfigurationError(f"Unknown {name}(s) {unknown}; choose from {', '.join(known)}.")
    bad = [s for s in sizes if not 2 * 16 <= s <= 2000]
    if bad:
        raise ConfigurationError(f"Training sizes must lie in 32..2000 sentences per language, got {bad}.")
    if seeds < 2 or not 1 <= selection_seeds <= seeds:
        raise ConfigurationError(f"Need seeds ≥ 2 and 1 ≤ selection seeds ≤ seeds, got {seeds} and {selection_seeds}.")
    trained = sum(not SETTINGS[name].is_off for name in settings)  # λ = 0 reuses robust's units
    per_cell = [(1 if name == "head" else trained) * selection_seeds + selection_seeds
                + 2 * (seeds - selection_seeds) for name in trainables]  # fmt: skip
    return {"sizes": sizes, "trainables": trainables, "settings": settings, "seeds": seeds,
            "selection_seeds": selection_seeds, "units": len(sizes) * sum(per_cell)}  # fmt: skip


def mean_score(unit: dict, split: str, metric: str, kind: str) -> float:
    """The unit's mean `metric` over the native (``kind="native"``), stitched or all `PAIRS` of `split`."""
    pairs = {"native": PAIRS[:2], "stitched": PAIRS[2:], "all": PAIRS}[kind]
    return float(np.mean([unit["scores"][split][f"{h}-{e}"][metric] for h, e in pairs]))


__all__ = [
    "MIN_STEPS",
    "PAIRS",
    "QUICK_MIN_STEPS",
    "SETTINGS",
    "SIZES",
    "TRAINABLES",
    "TopoSetting",
    "Trainable",
    "epochs_for",
    "mean_score",
    "plan",
    "samples_per_class",
    "stratified_subset",
]
