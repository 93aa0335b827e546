"""What one `hf-relrep reproduce` run depends on: the methods (the table's columns), the settings and the presets."""

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigurationError
from ...zoo import find_offline_encoder


LANGUAGES = ("en", "fr")


@dataclass(frozen=True)
class Method:
    """One column of the table: how the classifiers represent their inputs and whether they are densified.

    `anchor_strategy` chooses the anchors among a pool of parallel candidates (`hf_relrep.select_anchors`) instead of
    taking the dataset's; `translation` stitches through a latent translation fitted on the anchors
    (`hf_relrep.stitch_translated`, for absolute models). See `hf_relrep.experiments.reproduce.alignment`.
    """

    representation: str = "relative"
    normalization: str = "robust"
    densify: bool = False
    whiten_shrinkage: float = 0.0
    anchor_strategy: str | None = None
    translation: str | None = None


METHODS: dict[str, Method] = {
    "absolute": Method("absolute", "none"),  # the head reads the latent itself (the baseline)
    "vanilla": Method("relative", "none"),  # plain cosines to the anchors (Moschella et al. 2023)
    "robust": Method("relative", "robust"),  # standardized by anchor statistics (paper Def. 3.1)
    "robust+topo": Method("relative", "robust", densify=True),  # robust + topological densification
    "whiten": Method("relative", "whiten", whiten_shrinkage=0.5),  # whitened, shrinkage 0.5 (an ablation)
    "absolute+orthogonal": Method("absolute", "none", translation="orthogonal"),  # absolute, stitched by Procrustes
    "robust+kmeans": Method("relative", "robust", anchor_strategy="kmeans"),  # robust on k-means medoid anchors
}


@dataclass
class ReproduceConfig:
    """Everything one run depends on. Presets fill it; tests and the CLI override fields.

    Attributes:
        preset: the preset's name (recorded in results.json).
        encoders: backbone per language: an offline encoder name (``hf_relrep.zoo``), a local folder or a Hub id.
        pooling: pooling mode of every backbone; ``None`` takes each backbone's own: the pooling an offline encoder
            was trained with (its spec in ``hf_relrep.zoo.OFFLINE_ENCODERS``), else ``"mean"``.
        prefixes: text prefix per language; ``None`` (or a missing language) takes the offline encoder's prefix (e5
            wants ``"passage: "``), else none.
        dataset: ``"parallel-sentiment"`` (embedded) or a path/Hub id of Amazon Reviews multilingual.
        anchors_path: a file of parallel anchors (columns ``text_en``, ``text_fr``) for datasets without parallel
            anchors; ``None`` takes the dataset's own ``anchors`` split.
        num_anchors, train_size, test_size: how much data to use (``None`` = all).
        frozen_backbone: cache pooled backbone outputs and train the adapter and head only; otherwise fine-tune the
            whole model on tokenized text.
        adapter, head, stats, anchor_refresh_steps: model settings (see `RelativeEncoderConfig`).
        epochs, learning_rate, backbone_learning_rate, weight_decay: optimisation.
        samples_per_class, classes_per_batch: TopoTrainer's class-balanced batches (b × n).
        group_size: size of the class-pure groups the densification loss reads (the paper's and Hofer's 16).
        topo_weight_pre, topo_weight_post: λ of the densification terms (`TopoTrainingArguments` semantics).
        beta_scale: β per space = this × the median death time of that space at initialization (β must be read
            against the space's scale: the paper's fixed β = 3 spreads a space whose edges are ~1).
        beta_pre, beta_post: fixed β values instead of `beta_scale`.
        topo_schedule: ``"constant"`` or the paper's ``"cyclic"`` ramp.
        methods, seeds: the table's columns and how many seeds per cell.
        allow_pickle: let backbones load from pickle checkpoints (only for sources you trust).
    """

    preset: str = "quick"
    encoders: dict[str, str] = field(default_factory=lambda: {"en": "all-MiniLM-L6-v2", "fr": "multilingual-e5-small"})
    prefixes: dict[str, str] | None = None
    pooling: str | None = None
    dataset: str = "parallel-sentiment"
    anchors_path: str | None = None
    num_anchors: int | None = 768
    train_size: int | None = None
    test_size: int | None = None
    max_length: int = 128
    frozen_backbone: bool = True
    adapter: str = "mlp"
    head: str = "linear"
    stats: str = "anchors"
    anchor_refresh_steps: int = 1
    epochs: float = 3.0
    learning_rate: float = 2e-3
    backbone_learning_rate: float | None = None
    weight_decay: float = 0.01
    samples_per_class: int = 64
    group_size: int | None = 16
    classes_per_batch: int | None = None
    topo_weight_pre: float = 1e-2
    topo_weight_post: float = 2e-2
    beta_scale: float = 0.5
    beta_pre: float | None = None
    beta_post: float | None = None
    topo_schedule: str = "cyclic"
    methods: tuple[str, ...] = tuple(METHODS)
    seeds: int = 5
    allow_pickle: bool = False

    def validate(self) -> None:
        """Raise `ConfigurationError` on an unknown method, no method, fewer than one seed, or a missing encoder."""
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigurationError(f"Unknown method(s) {unknown}; choose from {', '.join(METHODS)}.")
        if not self.methods:
            raise ConfigurationError("Choose at least one method.")
        if self.seeds < 1:
            raise ConfigurationError(f"seeds must be ≥ 1, got {self.seeds}.")
        if set(self.encoders) != set(LANGUAGES):
            raise ConfigurationError(f"Give one encoder per language {LANGUAGES}, got {sorted(self.encoders)}.")
        self._check_numbers()

    def _check_numbers(self) -> None:
        """Every numeric setting finite and in range: a run of zero steps must not write a results table."""
        optional = {"backbone_learning_rate": self.backbone_learning_rate, "beta_pre": self.beta_pre,
                    "beta_post": self.beta_post}  # fmt: skip
        floats = {
            "epochs": (self.epochs, True),
            "learning_rate": (self.learning_rate, True),
            "weight_decay": (self.weight_decay, False),
            "topo_weight_pre": (self.topo_weight_pre, False),
            "topo_weight_post": (self.topo_weight_post, False),
            "beta_scale": (self.beta_scale, False),
            **{name: (value, name.endswith("rate")) for name, value in optional.items() if value is not None},
        }
        for name, (value, strict) in floats.items():
            if not _finite(value) or value < 0 or (strict and value == 0):
                raise ConfigurationError(f"{name} must be a finite number {'>' if strict else '≥'} 0, got {value!r}.")
        integers = {
            "seeds": (self.seeds, 1),
            "max_length": (self.max_length, 1),
            "anchor_refresh_steps": (self.anchor_refresh_steps, 1),
            "samples_per_class": (self.samples_per_class, 2),
            "num_anchors": (self.num_anchors, 2),
            "train_size": (self.train_size, 1),
            "test_size": (self.test_size, 1),
            "group_size": (self.group_size, 2),
            "classes_per_batch": (self.classes_per_batch, 2),
        }
        for name, (value, low) in integers.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ConfigurationError(f"{name} must be an integer ≥ {low}, got {value!r}.")

    def pooling_for(self, language: str) -> str:
        """The pooling of `language`'s backbone: `pooling`, else the offline encoder's own, else ``"mean"``."""
        if self.pooling is not None:
            return self.pooling
        spec = find_offline_encoder(self.encoders[language])
        return spec.pooling if spec is not None else "mean"

    def prefix_for(self, language: str) -> str:
        """The text prefix of `language`: from `prefixes`, else the offline encoder's own, else none."""
        if self.prefixes is not None and language in self.prefixes:
            return self.prefixes[language]
        spec = find_offline_encoder(self.encoders[language])
        return spec.prefix if spec is not None else ""


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


PRESETS: dict[str, ReproduceConfig] = {
    "quick": ReproduceConfig(),
    "paper": ReproduceConfig(
        preset="paper",
        encoders={"en": "FacebookAI/roberta-base", "fr": "ClassCat/roberta-base-french"},
        pooling="cls",
        dataset="mteb/amazon_reviews_multi",
        num_anchors=768,
        train_size=2000,
        test_size=None,
        max_length=256,
        frozen_backbone=False,
        adapter="none",
        stats="running",
        epochs=40,
        learning_rate=2e-4,
        backbone_learning_rate=3.5e-5,
        samples_per_class=16,
        classes_per_batch=5,
        beta_pre=3.0,
        beta_post=3.0,
        topo_weight_pre=1e-2,
        topo_weight_post=9e-2,
        topo_schedule="cyclic",
        # robust+kmeans chooses among cached features of a parallel pool, which fine-tuned backbones do not have.
        methods=tuple(name for name in METHODS if name != "robust+kmeans"),
    ),
}


def preset_config(name: str, **overrides: Any) -> ReproduceConfig:
    """The named preset with `overrides` applied; an unknown name or field is a `ConfigurationError`."""
    if name not in PRESETS:
        raise ConfigurationError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    fields = {f.name for f in dataclasses.fields(ReproduceConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigurationError(f"Unknown reproduce setting(s) {unknown}.")
    config = dataclasses.replace(PRESETS[name], **overrides)
    config.validate()
    return config


__all__ = ["LANGUAGES", "METHODS", "PRESETS", "Method", "ReproduceConfig", "preset_config"]
