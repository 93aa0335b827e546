"""Zero-shot stitching across two vision architectures, offline: a ViT's head on a ConvNeXt's encoder, and back.

Two small backbones of different families are trained from scratch on scikit-learn's digits (they stand in for two
pretrained vision models; with the Hub at hand, use `RelativeModelForImageClassification.from_backbone_pretrained`
on e.g. a DINOv2 and a ConvNeXt checkpoint instead). Each frozen backbone then gets a relative head reading cosine
similarities to the same 100 anchor images; `stitch` puts one model's head on the other's encoder, which is saved and
loaded back through the Auto class and the image-classification pipeline like any model.

    python examples/vision_stitching.py            # 1–2 minutes on one CPU thread
    hf-relrep reproduce-vision                     # the README table: 4 methods × 3 seeds
"""

import tempfile

import torch
from PIL import Image
from transformers import AutoModelForImageClassification, pipeline

from hf_relrep import stitch
from hf_relrep.experiments.reproduce.vision import (
    VisionStitchingConfig,
    accuracy,
    build_classifier,
    fit_head,
    image_processor,
    load_digits_images,
    pooled_features,
    split,
    train_classifier,
)


def main() -> None:
    torch.set_num_threads(1)
    config = VisionStitchingConfig()
    images, labels = load_digits_images()  # 1,797 digits as 8×8×3 uint8 images
    parts = split(labels, config.test_fraction, config.num_anchors)
    pixels = image_processor()(images=images, return_tensors="pt")["pixel_values"]
    targets = torch.from_numpy(labels)
    train, test, anchor_ids = (torch.from_numpy(parts[name]) for name in ("train", "test", "anchors"))
    anchors = [images[i] for i in parts["anchors"]]  # raw images: saved with each model, as uint8

    models = {}
    for offset, architecture in enumerate(("vit", "convnext")):
        # 1. A backbone of each family, trained separately (its own seed) as a plain classifier.
        pretrained = train_classifier(
            build_classifier(architecture, "absolute", anchors, seed=offset, config=config), pixels[train],
            targets[train], epochs=config.epochs[offset], batch_size=config.batch_size,
            learning_rate=config.learning_rates[offset], seed=offset,
        )  # fmt: skip
        # 2. Frozen, it gets a relative head over the anchor images (robust normalization), trained on cached features.
        model = build_classifier(architecture, "robust", anchors, offset, config, backbone=pretrained.encoder.backbone)
        features = pooled_features(pretrained, pixels)
        model.encoder.set_anchor_features(features[anchor_ids])
        models[architecture] = fit_head(model, features[train], targets[train], epochs=config.head_epochs, seed=0)
        print(f"{architecture}: {100 * accuracy(models[architecture], pixels[test], targets[test]):.1f}% on its own")

    # 3. Zero-shot stitching: the ConvNeXt's encoder with the ViT's head. The same anchor images, so no declaration.
    stitched = stitch(encoder_from=models["convnext"], head_from=models["vit"])
    print(f"ViT head on the ConvNeXt encoder: {100 * accuracy(stitched, pixels[test], targets[test]):.1f}%")

    # 4. It saves, loads through the Auto class and runs in a pipeline like any image classifier.
    with tempfile.TemporaryDirectory() as folder:
        stitched.save_pretrained(folder)  # weights, config, anchors.safetensors (uint8), the image processor
        loaded = AutoModelForImageClassification.from_pretrained(folder)
        classify = pipeline("image-classification", model=folder)
        first = int(test[0])
        print("pipeline:", classify(Image.fromarray(images[first]), top_k=1), "true label:", int(labels[first]))
        assert loaded.config.provenance["encoder"]["content_sha256"]


if __name__ == "__main__":
    main()
