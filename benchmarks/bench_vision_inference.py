"""Inference time of a relative image classifier vs the plain classifier of the same vision backbone.

`ViTForImageClassification` and `RelativeModelForImageClassification` share one ViT backbone (ViT-S/16 shape at
224×224 by default) and see the same pixel batches; the relative model has its anchor latents cached (eval mode), so
the difference is the relative transform against the anchors and a head over them instead of over the latent. Prints
the median times side by side and their ratio (target ≤ 1.05×).

    python benchmarks/bench_vision_inference.py [--threads 1] [--batch 8] [--anchors 256] [--image-size 224]
"""

import argparse
import statistics
import time

import numpy as np
import torch
from transformers import ViTConfig, ViTForImageClassification, ViTModel
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from hf_relrep import RelativeEncoderConfig, RelativeModelForImageClassification


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--anchors", type=int, default=256)
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
    contenders = {"ViTForImageClassification": plain}
    contenders.update({f"RelativeModelForImageClassification ({name})": model for name, model in models.items()})
    times = {name: [] for name in contenders}
    with torch.no_grad():
        for model in contenders.values():
            model(pixel_values=pixel_values)  # warm-up
        for _ in range(args.repeats):  # interleaved, so that a busy machine slows every contender alike
            for name, model in contenders.items():
                start = time.perf_counter()
                model(pixel_values=pixel_values)
                times[name].append(time.perf_counter() - start)
    print(
        f"ViT-S/16 {args.layers} layers, {args.image_size}px, batch {args.batch}, {args.anchors} anchors, "
        f"{args.threads} thread(s); median of {args.repeats} interleaved rounds"
    )
    print(f"{'model':<46} {'ms/batch':>10} {'ratio':>7}")
    reference = statistics.median(times["ViTForImageClassification"])
    for name, measured in times.items():
        median = statistics.median(measured)
        print(f"{name:<46} {1000 * median:>10.1f} {median / reference:>7.3f}")


if __name__ == "__main__":
    main()
