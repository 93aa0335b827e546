"""Inference time of a relative image classifier vs the plain classifier of the same vision backbone.

`ViTForImageClassification` and `RelativeModelForImageClassification` share one ViT backbone (ViT-S/16 shape at
224×224 by default) and see the same pixel batches; the relative model has its anchor latents cached (eval mode), so
the difference is the relative transform against the anchors and a head over them instead of over the latent. Prints
the median times side by side and their ratio (target ≤ 1.05×).

    python benchmarks/bench_vision_inference.py [--threads 1] [--batch 8] [--anchors 768] [--image-size 224]
"""

import argparse
import statistics
import time

import numpy as np
import torch
from transformers import ViTConfig, ViTForImageClassification, ViTModel
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from hf_relrep import RelativeEncoderConfig, RelativeModelForImageClassification


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--anchors", type=int, default=768)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    backbone_config = ViTConfig(
        image_size=args.image_size, patch_size=16, hidden_size=384, num_hidden_layers=args.layers,
        num_attention_heads=6, intermediate_size=1536, num_labels=10,
    )  # fmt: skip
    plain = ViTForImageClassification(backbone_config).eval()
    backbone = ViTModel(backbone_config, add_pooling_layer=False).eval()
    backbone.load_state_dict(plain.vit.state_dict())

    rng = np.random.default_rng(0)
    anchors = [
        rng.integers(0, 256, (args.image_size, args.image_size, 3), dtype=np.uint8) for _ in range(args.anchors)
    ]
    processor = ViTImageProcessorPil(size={"height": args.image_size, "width": args.image_size})
    models = {}
    for normalization in ("none", "robust"):
        config = RelativeEncoderConfig(
            backbone=backbone_config, anchor_count=args.anchors, num_labels=10, normalization=normalization
        )
        model = RelativeModelForImageClassification(config, backbone=backbone).eval()
        model.encoder.set_anchors(anchors, processor)
        with torch.no_grad():
            model.encoder.anchor_latents()  # embed and cache the anchors once, as a deployed model has
        models[normalization] = model

    pixel_values = torch.randn(args.batch, 3, args.image_size, args.image_size)
    with torch.no_grad():
        for model in (plain, *models.values()):
            model(pixel_values=pixel_values)  # warm-up
        plain_time = median_time(lambda: plain(pixel_values=pixel_values), args.repeats)
        print(
            f"ViT-S/16 {args.layers} layers, {args.image_size}px, batch {args.batch}, {args.anchors} anchors, "
            f"{args.threads} thread(s); median of {args.repeats}"
        )
        print(f"{'model':<38} {'ms/batch':>10} {'ratio':>7}")
        print(f"{'ViTForImageClassification':<38} {1000 * plain_time:>10.1f} {1.0:>7.3f}")
        for normalization, model in models.items():
            relative_time = median_time(lambda model=model: model(pixel_values=pixel_values), args.repeats)
            name = f"RelativeModelForImageClassification ({normalization})"
            print(f"{name:<38} {1000 * relative_time:>10.1f} {relative_time / plain_time:>7.3f}")


if __name__ == "__main__":
    main()
