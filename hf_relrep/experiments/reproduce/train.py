"""One classifier per (method, language, seed): build it on the language's backbone and train it with TopoTrainer."""

import copy
from pathlib import Path
from typing import Any

import torch
from transformers import DataCollatorWithPadding
from transformers.trainer_callback import PrinterCallback

from ...configuration import RelativeEncoderConfig
from ...errors import ConfigurationError
from ...modeling import RelativeModelForSequenceClassification
from ...topology.densification import death_times_by_class
from ...training import TopoTrainer, TopoTrainingArguments
from .config import Method, ReproduceConfig
from .data import LanguageData
from .features import FeatureDataset, LanguageSetup, collate_rows, model_inputs, train_dataset


def common_latent_size(config: ReproduceConfig, setups: dict[str, LanguageSetup]) -> int | None:
    """One latent size for both languages, so that the absolute baseline can be stitched at all.

    With an adapter, its output size is set to the larger hidden size; without one, the hidden sizes must agree.
    """
    sizes = {setup.backbone.config.hidden_size for setup in setups.values()}
    if config.adapter != "none":
        return max(sizes)
    if len(sizes) > 1 and "absolute" in config.methods:
        raise ConfigurationError(
            f"The backbones' hidden sizes differ ({sorted(sizes)}): absolute models cannot be stitched. Use an adapter "
            "(adapter='linear' or 'mlp') or drop the 'absolute' method."
        )
    return None


def build_model(
    config: ReproduceConfig, method: Method, setup: LanguageSetup, data: LanguageData, label_names: list[str],
    language: str, latent_size: int | None = None,
) -> RelativeModelForSequenceClassification:  # fmt: skip
    """A fresh classifier of `method` on this language's backbone (shared, not copied, when frozen)."""
    relative = method.representation == "relative"
    model_config = RelativeEncoderConfig(
        backbone=copy.deepcopy(setup.backbone.config),
        pooling=setup.pooling,
        adapter=config.adapter,
        adapter_size=latent_size,
        representation=method.representation,
        normalization=method.normalization,
        stats=config.stats,
        anchor_refresh_steps=config.anchor_refresh_steps,
        whiten_shrinkage=method.whiten_shrinkage,
        anchor_texts=data.anchor_texts if relative else None,
        anchor_set_id=f"{config.dataset}/anchors/{len(data.anchor_texts)}" if relative else None,
        anchor_text_prefix=setup.prefix,
        anchor_max_length=setup.max_length,
        head=config.head,
        id2label=dict(enumerate(label_names)),
        base_model=config.encoders[language],
    )
    backbone = setup.backbone if config.frozen_backbone else copy.deepcopy(setup.backbone)
    model = RelativeModelForSequenceClassification(model_config, backbone=backbone)
    if relative:
        model.encoder.set_anchors(data.anchor_texts, setup.tokenizer)
        if config.frozen_backbone:
            model.encoder.set_anchor_features(setup.anchor_features)
        if setup.token_states is not None:
            model.encoder.set_anchor_inputs(setup.token_states["anchors"])
    return model


def balanced_probe(labels: list[int], n: int, seed: int) -> list[int]:
    """Row indices of a fixed probe set: up to 4 × `n` training rows per class, whole groups of `n` only."""
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for label in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == label]
        order = torch.randperm(len(members), generator=generator)[: (len(members) // n) * n][: 4 * n]
        picks.extend(members[i] for i in order.tolist())
    return picks


def probe_death_times(model, inputs: dict, labels: torch.Tensor, n: int) -> dict[str, dict[int, torch.Tensor]]:
    """Death times per class of the probe, per space: ``"pre"`` (the latent) and ``"post"`` (the relative vector)."""
    model.eval()
    with torch.no_grad():
        outputs = model(**{k: v.to(model.device) for k, v in inputs.items()})
    return {
        space: death_times_by_class(outputs[key], labels.to(model.device), samples_per_class=n)
        for space, key in (("pre", "latents"), ("post", "relative"))
        if getattr(outputs, key) is not None
    }


def median_deaths(model, inputs: dict, labels: torch.Tensor, n: int) -> dict[str, float]:
    """The median death time of the probe per space (the scale β is read against)."""
    return medians_of(probe_death_times(model, inputs, labels, n))


def death_times_for_plot(model, inputs: dict, labels: torch.Tensor, n: int) -> dict[str, dict[int, list[float]]]:
    """The probe's death times per space and class, as lists (for results and histograms)."""
    return lists_of(probe_death_times(model, inputs, labels, n))


def medians_of(deaths_by_space: dict[str, dict[int, torch.Tensor]]) -> dict[str, float]:
    """`median_deaths` of death times already computed by `probe_death_times`."""
    return {
        space: float(torch.cat(list(deaths.values())).median()) if deaths else float("nan")
        for space, deaths in deaths_by_space.items()
    }


def lists_of(deaths_by_space: dict[str, dict[int, torch.Tensor]]) -> dict[str, dict[int, list[float]]]:
    """`death_times_for_plot` of death times already computed by `probe_death_times`."""
    return {space: {c: d.tolist() for c, d in deaths.items()} for space, deaths in deaths_by_space.items()}


def train_one(
    config: ReproduceConfig, method: Method, setup: LanguageSetup, data: LanguageData, label_names: list[str],
    language: str, seed: int, work_dir: Path, latent_size: int | None = None,
) -> tuple[RelativeModelForSequenceClassification, dict[str, Any]]:  # fmt: skip
    """Train one classifier with TopoTrainer; densification weights are zero unless the method densifies."""
    torch.manual_seed(seed)
    model = build_model(config, method, setup, data, label_names, language, latent_size)
    dataset = train_dataset(setup, data)
    n = config.group_size or config.samples_per_class
    probe = balanced_probe(data.train_labels, n, seed)
    probe_inputs = model_inputs(setup, dataset, probe)
    probe_labels = torch.tensor([data.train_labels[i] for i in probe])
    probe_before = probe_death_times(model, probe_inputs, probe_labels, n)  # one probe pass, read twice
    info: dict[str, Any] = {"death_median_before": medians_of(probe_before)}

    topo: dict[str, Any] = {"topo_weight_pre": 0.0, "topo_weight_post": 0.0}
    if method.densify:
        before = info["death_median_before"]
        beta_pre = config.beta_pre if config.beta_pre is not None else config.beta_scale * before["pre"]
        beta_post = config.beta_post if config.beta_post is not None else config.beta_scale * before.get("post", 0)
        topo = {
            "topo_weight_pre": config.topo_weight_pre, "topo_weight_post": config.topo_weight_post,
            "topo_beta_pre": beta_pre, "topo_beta_post": beta_post,
        }  # fmt: skip
        info["beta"] = {"pre": beta_pre, "post": beta_post}
        info["death_times_before"] = lists_of(probe_before)
    args = TopoTrainingArguments(
        output_dir=str(work_dir),
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        topo_placement="both" if method.representation == "relative" else "pre",
        topo_samples_per_class=config.samples_per_class,
        topo_group_size=n,
        topo_classes_per_batch=config.classes_per_batch,
        topo_schedule=config.topo_schedule,
        seed=seed,
        save_strategy="no",
        report_to=[],
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        dataloader_pin_memory=False,
        **topo,
    )
    if config.frozen_backbone:  # only the adapter and head train; skip Trainer's walk over the whole backbone
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizers = (torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay), None)
    elif config.backbone_learning_rate is not None:
        optimizers = (two_speed_adamw(model, config), None)
    else:
        optimizers = (None, None)
    collator = collate_rows if isinstance(dataset, FeatureDataset) else DataCollatorWithPadding(setup.tokenizer)
    trainer = TopoTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator, optimizers=optimizers)
    trainer.remove_callback(PrinterCallback)  # one progress bar over all models instead of a log line per model
    trainer.train()
    probe_after = probe_death_times(model, probe_inputs, probe_labels, n)
    info["death_median_after"] = medians_of(probe_after)
    info["steps"] = trainer.state.global_step
    if method.densify:
        info["death_times"] = lists_of(probe_after)
    model.eval()
    return model, info


def two_speed_adamw(model, config: ReproduceConfig) -> torch.optim.Optimizer:
    """AdamW with the paper's two learning rates: the backbone's (3.5e-5) and the rest's (2e-4).

    The paper mentions layer-wise decay, but its released code accepts and ignores the setting; its numbers come
    from these two rates, so that is what the preset uses.
    """
    backbone = [p for n, p in model.named_parameters() if n.startswith("encoder.backbone.") and p.requires_grad]
    rest = [p for n, p in model.named_parameters() if not n.startswith("encoder.backbone.") and p.requires_grad]
    return torch.optim.AdamW(
        [{"params": backbone, "lr": config.backbone_learning_rate}, {"params": rest, "lr": config.learning_rate}],
        weight_decay=config.weight_decay,
    )


__all__ = [
    "balanced_probe",
    "build_model",
    "common_latent_size",
    "death_times_for_plot",
    "lists_of",
    "median_deaths",
    "medians_of",
    "train_one",
    "two_speed_adamw",
]
