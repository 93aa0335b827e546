"""`hf-relrep reproduce-vision`: zero-shot stitching across two vision architectures, offline.

For each seed, a ViT and a ConvNeXt built from configs are trained from scratch (different seeds) on scikit-learn's
handwritten digits (1,797 8×8 images, 10 classes, shipped inside the scikit-learn wheel): the offline stand-in for
two pretrained vision backbones. Then, as Moschella et al. (ICLR 2023) do with frozen pretrained ViTs and ResNets,
each frozen backbone gets a fresh linear head per method — reading its absolute latent, its vanilla relative vector
or its robust relative vector against the same 100 anchor images — and every (head γ, encoder φ) pair is stitched
with `hf_relrep.stitch` and scored on held-out digits.
"""

import argparse
import dataclasses
import json
import time
import warnings
from typing import Any

import numpy as np
import torch
from transformers import ConvNextConfig, PreTrainedConfig, ViTConfig
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from ...configuration import RelativeEncoderConfig
from ...errors import DataError
from ...modeling import RelativeModelForImageClassification
from ...stitching.relative import AbsoluteStitchingWarning, stitch
from ...utils.files import atomic_write_text


ARCHITECTURES = ("vit", "convnext")
VISION_METHODS = {
    "absolute": {"representation": "absolute"},
    "vanilla": {"normalization": "none"},
    "robust": {"normalization": "robust"},
    "whiten": {"normalization": "whiten", "whiten_shrinkage": 0.5},  # ablation: invariant to any affine map
}
IMAGE_SIZE = 16  # the 8×8 digits, upsampled


@dataclasses.dataclass
class VisionStitchingConfig:
    """Settings of `run_vision_stitching` (defaults: the README table, a few minutes on one CPU thread)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = tuple(VISION_METHODS)
    num_anchors: int = 100
    test_fraction: float = 0.3
    epochs: tuple[int, int] = (25, 12)  # per architecture, in ARCHITECTURES order: each to ~94% test accuracy
    learning_rates: tuple[float, float] = (3e-3, 2e-3)
    head_epochs: int = 300
    batch_size: int = 64
    latent_size: int = 64
    threads: int = 1


def load_digits_images() -> tuple[list[np.ndarray], np.ndarray]:
    """scikit-learn's digits as H×W×3 ``uint8`` images (gray levels 0–16 scaled to 0–255) and their labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise DataError(
            "The vision stitching run reads scikit-learn's digits: pip install 'hf-relrep[vision]'."
        ) from error
    digits = load_digits()
    gray = np.clip(digits.images * 16, 0, 255).astype(np.uint8)
    return [np.repeat(image[:, :, None], 3, axis=2) for image in gray], digits.target.astype(np.int64)


def split(labels: np.ndarray, test_fraction: float, num_anchors: int) -> dict[str, np.ndarray]:
    """A fixed stratified split: test, and train; anchors are drawn class-balanced from train."""
    rng = np.random.default_rng(12345)
    test, train, anchors = [], [], []
    classes = np.unique(labels)
    for label in classes:
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = int(round(test_fraction * len(members)))
        test.extend(members[:cut])
        train.extend(members[cut:])
        anchors.extend(members[cut : cut + num_anchors // len(classes)])
    return {"train": np.asarray(train), "test": np.asarray(test), "anchors": np.asarray(anchors)}


def backbone_config(architecture: str, latent_size: int) -> PreTrainedConfig:
    """Small backbones of two families whose last stage has `latent_size` channels."""
    if architecture == "vit":
        return ViTConfig(
            image_size=IMAGE_SIZE, patch_size=4, hidden_size=latent_size, num_hidden_layers=3, num_attention_heads=4,
            intermediate_size=2 * latent_size, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        )  # fmt: skip
    if architecture == "convnext":
        return ConvNextConfig(
            image_size=IMAGE_SIZE, patch_size=2, num_stages=2, hidden_sizes=[latent_size // 2, latent_size],
            depths=[2, 2],
        )  # fmt: skip
    raise DataError(f"Unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}.")


def image_processor() -> ViTImageProcessorPil:
    return ViTImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )


def build_classifier(
    architecture: str,
    method: str,
    anchors: list[np.ndarray],
    seed: int,
    config: VisionStitchingConfig,
    backbone: Any = None,
) -> RelativeModelForImageClassification:
    """An image classifier of one architecture reading one method's representation of the anchor images; a fresh
    backbone from its config, or `backbone` (trained) with a fresh head."""
    torch.manual_seed(seed)
    model_config = RelativeEncoderConfig(
        backbone=backbone_config(architecture, config.latent_size),
        anchor_count=len(anchors) if method != "absolute" else None,
        id2label={i: str(i) for i in range(10)},
        pooling="cls" if architecture == "vit" else "pooler",  # as ViT/ConvNextForImageClassification read
        **VISION_METHODS[method],
    )
    model = RelativeModelForImageClassification(model_config, backbone=backbone)
    if method != "absolute":
        model.encoder.set_anchors(anchors, image_processor(), anchor_set_id="sklearn-digits/anchors@1")
    else:
        model.encoder.processor = image_processor()
    return model


def train_classifier(
    model: RelativeModelForImageClassification,
    pixel_values: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> RelativeModelForImageClassification:
    """Plain AdamW on cross-entropy with a linear decay, end to end (anchors, if any, re-embedded every step)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    steps = epochs * ((len(labels) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / steps)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator).split(batch_size):
            loss = model(pixel_values=pixel_values[batch], labels=labels[batch]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: RelativeModelForImageClassification, pixel_values: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    predictions = torch.cat([model(pixel_values=chunk).logits.argmax(-1) for chunk in pixel_values.split(256)])
    return float((predictions == labels).float().mean())


def fit_head(
    model: RelativeModelForImageClassification, features: torch.Tensor, labels: torch.Tensor, *, epochs: int, seed: int
) -> RelativeModelForImageClassification:
    """Train only the head, full batch, on cached pooled backbone outputs of a frozen backbone."""
    torch.manual_seed(seed)
    model.encoder.requires_grad_(False)
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=1e-2, weight_decay=0.01)
    model.train()
    for _ in range(epochs):
        loss = model(backbone_features=features, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@torch.no_grad()
def pooled_features(model: RelativeModelForImageClassification, pixel_values: torch.Tensor) -> torch.Tensor:
    model.eval()
    inputs = [{"pixel_values": chunk} for chunk in pixel_values.split(256)]
    return torch.cat([model.encoder.backbone_features(batch)[0] for batch in inputs])


def run_vision_stitching(config: VisionStitchingConfig | None = None, *, progress: bool = False) -> dict[str, Any]:
    """Train, stitch and score; returns ``{"config", "data", "scores": {method: {"γ→φ": [accuracy per seed]}}, ...}``.

    ``"vit→convnext"`` is the ViT's head on the ConvNeXt's encoder (γ = head, φ = encoder), scored on test digits
    through the full stitched model (pixels in, the encoder's anchors, the head's weights).
    """
    config = config or VisionStitchingConfig()
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _run(config, progress)
    finally:
        torch.set_num_threads(threads)


def _run(config: VisionStitchingConfig, progress: bool) -> dict[str, Any]:
    started = time.perf_counter()
    images, labels = load_digits_images()
    parts = split(labels, config.test_fraction, config.num_anchors)
    pixels = image_processor()(images=images, return_tensors="pt")["pixel_values"]
    targets = torch.from_numpy(labels)
    train, test = torch.from_numpy(parts["train"]), torch.from_numpy(parts["test"])
    anchors = [images[i] for i in parts["anchors"]]
    scores = {method: {f"{h}→{e}": [] for h in ARCHITECTURES for e in ARCHITECTURES} for method in config.methods}
    for seed in config.seeds:
        backbones, features = {}, {}
        for offset, architecture in enumerate(ARCHITECTURES):
            model_seed = 1000 * seed + offset  # different seeds: nothing but the anchors ties the two models
            pretrained = train_classifier(
                build_classifier(architecture, "absolute", anchors, model_seed, config), pixels[train],
                targets[train], epochs=config.epochs[offset], batch_size=config.batch_size,
                learning_rate=config.learning_rates[offset], seed=model_seed,
            )  # fmt: skip
            backbones[architecture] = pretrained.encoder.backbone
            features[architecture] = pooled_features(pretrained, pixels)
        for method in config.methods:
            models = {}
            for offset, architecture in enumerate(ARCHITECTURES):
                model = build_classifier(
                    architecture, method, anchors, 1000 * seed + offset, config, backbone=backbones[architecture]
                )
                if method != "absolute":
                    model.encoder.set_anchor_features(features[architecture][torch.from_numpy(parts["anchors"])])
                models[architecture] = fit_head(
                    model, features[architecture][train], targets[train], epochs=config.head_epochs, seed=seed
                )
            for head in ARCHITECTURES:
                for encoder in ARCHITECTURES:
                    model = models[head]
                    if head != encoder:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", AbsoluteStitchingWarning)
                            model = stitch(encoder_from=models[encoder], head_from=models[head], share_weights=True)
                    scores[method][f"{head}→{encoder}"].append(accuracy(model, pixels[test], targets[test]))
            if progress:
                latest = {pair: round(100 * values[-1], 1) for pair, values in scores[method].items()}
                print(f"seed {seed} {method}: {latest} ({time.perf_counter() - started:.0f} s)", flush=True)
    return {
        "config": dataclasses.asdict(config),
        "data": {"train": len(train), "test": len(test), "anchors": len(anchors)},
        "scores": scores,
        "seconds": time.perf_counter() - started,
    }


def format_vision_table(results: dict[str, Any]) -> str:
    """The README table: one row per (head γ, encoder φ), accuracy ×100 mean ± std over seeds per method."""
    methods = list(results["scores"])
    lines = ["| γ (head) | φ (encoder) | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for head in ARCHITECTURES:
        for encoder in ARCHITECTURES:
            cells = []
            for method in methods:
                values = 100 * np.asarray(results["scores"][method][f"{head}→{encoder}"])
                cell = f"{values.mean():.1f} ± {values.std():.1f}"
                cells.append(f"**{cell}**" if head != encoder else cell)
            lines.append(f"| {head} | {encoder} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_vision_from_args(args: argparse.Namespace) -> int:
    """Run `hf-relrep reproduce-vision` from parsed arguments and print the table."""
    if min(args.epochs) < 1 or args.anchors < 10:
        raise DataError("--epochs must be ≥ 1 and --anchors ≥ 10 (one per class at least).")
    config = VisionStitchingConfig(
        seeds=tuple(args.seeds), methods=tuple(args.methods), epochs=tuple(args.epochs), num_anchors=args.anchors,
        threads=args.threads,
    )  # fmt: skip
    results = run_vision_stitching(config, progress=not getattr(args, "quiet", False))
    print(format_vision_table(results))
    print(f"({len(config.seeds)} seeds, {results['data']['test']} test digits, {results['seconds']:.0f} s)")
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=1))
    return 0


__all__ = [
    "ARCHITECTURES",
    "VISION_METHODS",
    "VisionStitchingConfig",
    "accuracy",
    "backbone_config",
    "build_classifier",
    "fit_head",
    "format_vision_table",
    "image_processor",
    "load_digits_images",
    "pooled_features",
    "run_vision_from_args",
    "run_vision_stitching",
    "split",
    "train_classifier",
]
