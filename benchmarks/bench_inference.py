"""Inference time of a relative classifier vs a plain AutoModelForSequenceClassification on the same backbone.

Both models share the backbone weights and see the same token batches; the relative model has its anchor latents
cached (eval mode), so the difference is pooling + the relative transform + the head. Prints times and the ratio.

    python benchmarks/bench_inference.py [--threads 2] [--batch 32] [--seq 64] [--anchors 768]
"""

import argparse
import statistics
import time

import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertModel

from hf_relrep import RelativeEncoderConfig, RelativeModelForSequenceClassification


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--anchors", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    # MiniLM-L6 shape (the offline English encoder): 6 layers, hidden 384.
    backbone_config = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
    backbone = BertModel(backbone_config, add_pooling_layer=False).eval()
    plain = AutoModelForSequenceClassification.from_config(
        BertConfig(**backbone_config.to_dict(), num_labels=2)
    ).eval()
    plain.bert.load_state_dict(backbone.state_dict(), strict=False)

    anchor_texts = [f"anchor {i}" for i in range(args.anchors)]
    results = {}
    for normalization in ("none", "robust", "whiten"):
        config = RelativeEncoderConfig(
            backbone=backbone_config, anchor_texts=anchor_texts, num_labels=2, normalization=normalization,
            whiten_shrinkage=0.1 if normalization == "whiten" else 0.0,
        )  # fmt: skip
        model = RelativeModelForSequenceClassification(config, backbone=backbone).eval()
        ids = torch.randint(1000, 30000, (args.anchors, 16))
        model.encoder.anchor_input_ids[:, :16] = ids
        model.encoder.anchor_attention_mask[:, :16] = 1
        results[normalization] = model

    inputs = torch.randint(1000, 30000, (args.batch, args.seq))
    mask = torch.ones_like(inputs)
    with torch.inference_mode():
        for model in results.values():
            model(input_ids=inputs, attention_mask=mask)  # fills the anchor cache
        plain(input_ids=inputs, attention_mask=mask)
        # Interleave the measurements so that machine noise hits every variant alike.
        base = median_time(lambda: plain(input_ids=inputs, attention_mask=mask), args.repeats)
        rows = [(name, median_time(lambda m=m: m(input_ids=inputs, attention_mask=mask), args.repeats))
                for name, m in results.items()]  # fmt: skip
        base = min(base, median_time(lambda: plain(input_ids=inputs, attention_mask=mask), args.repeats))

    print(f"batch {args.batch} × seq {args.seq}, {args.anchors} anchors, MiniLM-L6-sized backbone, "
          f"{args.threads} threads, median of {args.repeats}")  # fmt: skip
    print(f"{'model':<34}{'ms/batch':>10}{'ratio':>8}")
    print(f"{'AutoModelForSequenceClassification':<34}{base * 1e3:>10.1f}{1.0:>8.3f}")
    for name, seconds in rows:
        print(f"{'relative, normalization=' + name:<34}{seconds * 1e3:>10.1f}{seconds / base:>8.3f}")


if __name__ == "__main__":
    main()
