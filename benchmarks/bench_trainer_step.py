"""Cost of topological densification: one TopoTrainer optimizer step vs one plain Trainer step, same model and batch.

Both trainers drive the same relative model (a MiniLM-L6-sized random BERT: 6 layers, hidden 384) on the same
prepared batch of b classes × n samples (class-pure groups, as TopoTrainer's sampler builds them). What is timed is
`trainer.training_step` (forward, loss, backward) plus the optimizer step and `zero_grad`; Trainer setup, data loading
and `train()`'s bookkeeping are outside the timer. Variants are measured interleaved (the order rotates every round,
so machine noise hits all alike) and summarized by medians: ms/step, and, paired within each round (so that slow
phases of a shared machine cancel), the extra time and the ratio of TopoTrainer over Trainer.

Two settings:
- full: backbone trained, token batches (the anchors are re-embedded every step, as `anchor_refresh_steps=1`);
- frozen: backbone frozen, cached pooled features fed as `backbone_features`, a linear adapter and the head trained.
  The anchors' pooled features are computed once; the step is tiny, so the persistence computation weighs relatively
  more.

On a machine whose cores are shared with other jobs, keep ``--threads 1``: with 2 threads and the other core busy,
OpenMP's waiting made a 32×384 matmul 60× slower here, which swamps what is measured.

    python benchmarks/bench_trainer_step.py [--threads 1] [--layers 6] [--hidden 384] [--repeats 7]
    python benchmarks/bench_trainer_step.py --arch roberta --hidden 768 --layers 12 --classes 5 --seq 128  # base size
"""

import argparse
import json
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable

import torch
from transformers import BertConfig, RobertaConfig, Trainer, TrainingArguments
from transformers.utils import logging as transformers_logging

from hf_relrep import RelativeEncoderConfig, RelativeModelForSequenceClassification, TopoTrainer, TopoTrainingArguments


PLACEMENTS = ("pre", "post", "both")


def build_model(args: argparse.Namespace, *, frozen: bool) -> RelativeModelForSequenceClassification:
    """A random relative classifier; anchors are random token ids (what they say does not matter for speed)."""
    config_class = RobertaConfig if getattr(args, "arch", "bert") == "roberta" else BertConfig
    backbone = config_class(
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=max(args.hidden // 64, 1) if config_class is RobertaConfig else args.hidden // 32,
        intermediate_size=4 * args.hidden,
    )
    config = RelativeEncoderConfig(
        backbone=backbone,
        anchor_texts=[f"anchor {i}" for i in range(args.anchors)],
        num_labels=args.classes,
        adapter="linear" if frozen else "none",
    )
    model = RelativeModelForSequenceClassification(config)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, min(backbone.vocab_size, 30000), (args.anchors, args.anchor_length), generator=generator)
    model.encoder.anchor_input_ids[:, : args.anchor_length] = ids
    model.encoder.anchor_attention_mask[:, : args.anchor_length] = 1
    if frozen:
        model.encoder.backbone.requires_grad_(False)
    return model


def make_batch(args: argparse.Namespace, *, frozen: bool) -> dict[str, torch.Tensor]:
    """b classes × n samples, each class a contiguous group (TopoTrainer's batch layout)."""
    generator = torch.Generator().manual_seed(2)
    size = args.classes * args.per_class
    labels = torch.arange(args.classes).repeat_interleave(args.per_class)
    if frozen:
        return {"backbone_features": torch.randn(size, args.hidden, generator=generator), "labels": labels}
    input_ids = torch.randint(1000, 30000, (size, args.seq), generator=generator)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}


def make_trainers(model, args: argparse.Namespace, output_dir: str) -> dict[str, Trainer]:
    """One plain Trainer and one TopoTrainer per placement, all on `model`, each with its own optimizer."""
    common = dict(
        output_dir=output_dir,
        per_device_train_batch_size=args.classes * args.per_class,
        learning_rate=1e-5,
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
        save_strategy="no",
    )
    trainers: dict[str, Trainer] = {"Trainer": Trainer(model=model, args=TrainingArguments(**common))}
    for placement in PLACEMENTS:
        topo_args = TopoTrainingArguments(
            **common,
            topo_placement=placement,
            topo_samples_per_class=args.per_class,
            topo_classes_per_batch=args.classes,
            topo_schedule="constant",
        )
        trainers[f"TopoTrainer {placement}"] = TopoTrainer(model=model, args=topo_args)
    for trainer in trainers.values():
        trainer.create_optimizer()
        trainer.current_gradient_accumulation_steps = 1  # set by train() in transformers 5; one micro-batch per step
    return trainers


def step_fn(trainer: Trainer, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    def step() -> None:
        trainer.training_step(trainer.model, dict(batch))
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    return step


def measure(steps: dict[str, Callable[[], None]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each function, `repeats` rounds, each round calling every function once (rotating order)."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    return times


def run(args: argparse.Namespace, *, frozen: bool) -> dict[str, list[float]]:
    torch.manual_seed(0)
    model = build_model(args, frozen=frozen)
    batch = make_batch(args, frozen=frozen)
    with tempfile.TemporaryDirectory() as output_dir:
        trainers = make_trainers(model, args, output_dir)
        steps = {name: step_fn(trainer, batch) for name, trainer in trainers.items()}
        repeats = args.frozen_repeats if frozen else args.repeats
        return measure(steps, repeats, args.warmup)


def print_table(title: str, times: dict[str, list[float]], target: float) -> None:
    """Median ms/step; the ratio and the extra time are medians over rounds of TopoTrainer vs Trainer in that round."""
    base = times["Trainer"]
    print(title)
    print(f"  {'trainer':<20}{'ms/step':>10}{'extra ms':>10}{'ratio':>8}")
    for name, values in times.items():
        ratio = statistics.median(t / b for t, b in zip(values, base, strict=True))
        extra = statistics.median(t - b for t, b in zip(values, base, strict=True))
        flag = "" if name == "Trainer" or ratio <= target else f"  > {target:.2f}x"
        print(f"  {name:<20}{statistics.median(values) * 1e3:>10.2f}{extra * 1e3:>10.2f}{ratio:>8.3f}{flag}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads; 1 is stable on a shared machine (see the docstring)"
    )
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--classes", type=int, default=2, help="b: classes per batch")
    parser.add_argument("--per-class", type=int, default=16, help="n: samples per class")
    parser.add_argument("--seq", type=int, default=64, help="tokens per sequence")
    parser.add_argument("--anchors", type=int, default=64)
    parser.add_argument("--anchor-length", type=int, default=16, help="tokens per anchor")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per variant, full setting")
    parser.add_argument("--frozen-repeats", type=int, default=60, help="timed steps per variant, frozen setting")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--target", type=float, default=1.10, help="ratio to flag")
    parser.add_argument("--skip-full", action="store_true", help="only the frozen + cached features setting")
    parser.add_argument("--arch", choices=("bert", "roberta"), default="bert", help="backbone config (random weights)")
    parser.add_argument("--json", help="also write the medians (ms/step) and paired ratios to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformers_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=UserWarning)

    device = "cuda" if torch.cuda.is_available() else f"cpu, {args.threads} threads"
    shape = (
        f"{args.layers} layers, hidden {args.hidden}; batch {args.classes} classes × {args.per_class} = "
        f"{args.classes * args.per_class} sequences of {args.seq} tokens; {args.anchors} anchors of "
        f"{args.anchor_length} tokens; {device}"
    )
    print(f"One optimizer step, TopoTrainer vs Trainer (medians, interleaved) — {shape}")
    results = {}
    if not args.skip_full:
        results["full"] = run(args, frozen=False)
        print_table(f"full: backbone trained, median of {args.repeats}", results["full"], args.target)
    frozen = f"frozen backbone + cached features (linear adapter + head trained), median of {args.frozen_repeats}"
    results["frozen"] = run(args, frozen=True)
    print_table(frozen, results["frozen"], args.target)
    if args.json:
        summary = {"setup": shape, "arch": args.arch}
        for setting, times in results.items():
            summary[setting] = {name: summarize(values, times["Trainer"]) for name, values in times.items()}
        with open(args.json, "w") as file:
            json.dump(summary, file, indent=2)


def summarize(values: list[float], base: list[float]) -> dict[str, float]:
    """Median ms/step, and the paired median ratio and extra ms against Trainer."""
    return {
        "ms_per_step": statistics.median(values) * 1e3,
        "ratio": statistics.median(t / b for t, b in zip(values, base, strict=True)),
        "extra_ms": statistics.median(t - b for t, b in zip(values, base, strict=True)) * 1e3,
    }


if __name__ == "__main__":
    main()
