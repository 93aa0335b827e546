"""The GPU measurements of issue 12 in one JSON: what `benchmarks/run_gpu.sh` runs on a CUDA machine.

Parts (each timed out and recorded separately, so one failure does not lose the others):

- ``death_times``: hf-relrep's persistence per call on the GPU (median of CUDA-synchronized calls), forward and
  forward + backward, at 5×16×768 (the paper's 5 classes × 16 per class, roberta-base latents; target < 0.2 ms),
  8×64×128 and 2×256×64; and one densification step of both spaces (latents 768, relative vectors 768) as
  TopoTrainer runs it;
- ``no_host_sync``: that step and ``relative_transform`` run under ``torch.cuda.set_sync_debug_mode("error")``;
- ``epoch``: one epoch of the reproduce paper preset's training loop (TopoTrainer, roberta-base-sized backbone fully
  fine-tuned, 5 classes × 16, sequences of 128 tokens, 768 anchors of 32 tokens, two learning rates), on random
  weights and random tokens of the preset's size (2,000 reviews per language), since the real weights and data are
  not reachable offline: seconds per epoch and per optimizer step, for the absolute-free robust+topo method.

    python benchmarks/gpu_suite.py --out gpu_results.json [--parts death_times,no_host_sync,epoch]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch


def cuda_ms(fn, repeats: int, warmup: int = 10) -> float:
    """Median milliseconds of ``fn()`` between synchronizations."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def part_death_times(repeats: int) -> dict:
    from hf_relrep.topology.densification import densification
    from hf_relrep.topology.persistence import death_times

    out = {}
    for b, n, d in ((5, 16, 768), (8, 64, 128), (2, 256, 64)):
        x = torch.randn(b, n, d, device="cuda")
        xg = x.clone().requires_grad_(True)

        def forward_backward(xg=xg):
            death_times(xg).sum().backward()

        out[f"{b}x{n}x{d}"] = {
            "forward_ms": cuda_ms(lambda x=x: death_times(x), repeats),
            "forward_backward_ms": cuda_ms(forward_backward, repeats),
        }
    labels = torch.arange(5, device="cuda").repeat_interleave(16)
    latents = torch.randn(80, 768, device="cuda", requires_grad=True)
    relative = torch.randn(80, 768, device="cuda", requires_grad=True)

    def step():
        pre, post = densification([latents, relative], labels, betas=[0.5, 2.0], samples_per_class=16)
        (pre.loss / pre.num_groups + post.loss / post.num_groups).backward()

    out["densification_step_both_spaces_80x768_ms"] = cuda_ms(step, repeats)
    out["target_forward_ms_5x16x768"] = 0.2
    return out


def part_no_host_sync() -> dict:
    from hf_relrep import relative_transform
    from hf_relrep.checks import raise_deferred_errors
    from hf_relrep.topology.densification import densification

    labels = torch.arange(5, device="cuda").repeat_interleave(16)
    latents = torch.randn(80, 768, device="cuda", requires_grad=True)
    anchors = torch.randn(768, 768, device="cuda")

    def step():
        relative = relative_transform(latents, anchors, normalization="robust", stats="anchors")
        pre, post = densification([latents, relative], labels, betas=[0.5, 2.0], samples_per_class=16)
        (pre.loss / pre.num_groups + post.loss / post.num_groups).backward()

    step()
    torch.cuda.synchronize()
    result = {}
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
        result["synchronizations"] = "none"
    except RuntimeError as error:
        result["synchronizations"] = f"found: {error}"
    finally:
        torch.cuda.set_sync_debug_mode("default")
    raise_deferred_errors()
    return result


def part_epoch(reviews: int, max_steps: int | None, smoke: bool = False) -> dict:
    """One epoch of the paper preset's loop on a random roberta-base-sized model (see the module docstring)."""
    from datasets import Dataset
    from transformers import RobertaConfig
    from transformers.utils import logging as hf_logging

    from hf_relrep import RelativeEncoderConfig, RelativeModelForSequenceClassification
    from hf_relrep.training import TopoTrainer, TopoTrainingArguments

    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.manual_seed(0)
    backbone = RobertaConfig()  # roberta-base: 12 layers, hidden 768, 12 heads, vocabulary 50,265
    anchors, anchor_length, seq = 768, 32, 128
    if smoke:  # a CPU check of this code path, not a measurement
        backbone = RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
        anchors, anchor_length, seq = 16, 8, 16
    config = RelativeEncoderConfig(
        backbone=backbone,
        anchor_texts=[f"anchor {i}" for i in range(anchors)],
        num_labels=5,
        normalization="robust",
    )
    model = RelativeModelForSequenceClassification(config)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 50000, (anchors, anchor_length), generator=generator)
    model.encoder.anchor_input_ids[:, :anchor_length] = ids
    model.encoder.anchor_attention_mask[:, :anchor_length] = 1
    ids = torch.randint(1000, 50000, (reviews, seq), generator=generator)
    dataset = Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": [[1] * seq] * reviews, "labels": [i % 5 for i in range(reviews)]}
    )
    with tempfile.TemporaryDirectory() as out:
        args = TopoTrainingArguments(
            out,
            num_train_epochs=1,
            max_steps=max_steps or -1,
            learning_rate=2e-4,
            topo_placement="both",
            topo_samples_per_class=16,
            topo_classes_per_batch=5,
            topo_beta_pre=3.0,
            topo_beta_post=3.0,
            report_to=[],
            save_strategy="no",
            logging_steps=10,
            disable_tqdm=True,
            use_cpu=smoke,
        )
        backbone_params = [p for n, p in model.named_parameters() if n.startswith("encoder.backbone.")]
        rest = [p for n, p in model.named_parameters() if not n.startswith("encoder.backbone.")]
        optimizer = torch.optim.AdamW([{"params": backbone_params, "lr": 3.5e-5}, {"params": rest, "lr": 2e-4}])
        trainer = TopoTrainer(model=model, args=args, train_dataset=dataset, optimizers=(optimizer, None))
        synchronize = (lambda: None) if smoke else torch.cuda.synchronize
        synchronize()
        start = time.perf_counter()
        trainer.train()
        synchronize()
        seconds = time.perf_counter() - start
    steps = trainer.state.global_step
    return {
        "reviews": reviews,
        "steps": steps,
        "seconds": seconds,
        "ms_per_step": seconds / max(steps, 1) * 1e3,
        "seconds_per_epoch_estimate": seconds / max(steps, 1) * (reviews // 80),
        "note": "random roberta-base-sized weights and tokens (the preset's real weights and data are not offline)",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="gpu_results.json")
    parser.add_argument("--parts", default="death_times,no_host_sync,epoch")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--reviews", type=int, default=2000, help="training reviews for the epoch part")
    parser.add_argument("--max-steps", type=int, default=None, help="cap the epoch part's steps (then extrapolated)")
    parser.add_argument("--smoke", action="store_true", help="check the epoch part's code on CPU with a tiny model")
    args = parser.parse_args()
    if args.smoke:
        print(json.dumps(part_epoch(reviews=160, max_steps=2, smoke=True)))
        return 0
    if not torch.cuda.is_available():
        print("gpu_suite: no CUDA device", file=sys.stderr)
        return 2
    path = Path(args.out)
    results = json.loads(path.read_text()) if path.exists() else {}
    results["device"] = torch.cuda.get_device_name()
    results["torch"] = torch.__version__
    runners = {
        "death_times": lambda: part_death_times(args.repeats),
        "no_host_sync": part_no_host_sync,
        "epoch": lambda: part_epoch(args.reviews, args.max_steps),
    }
    status = 0
    for name in args.parts.split(","):
        start = time.perf_counter()
        try:
            results[name] = runners[name]()
        except Exception:  # record and go on: one broken part must not lose the others
            results[name] = {"error": traceback.format_exc(limit=5)}
            status = 1
        results[name]["wall_seconds"] = round(time.perf_counter() - start, 2)
        print(f"gpu_suite: {name}: {json.dumps(results[name])[:400]}", file=sys.stderr)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=2))
        tmp.replace(path)
    return status


if __name__ == "__main__":
    sys.exit(main())
