"""What one unit of `hf-relrep study densification` would cost when transformer layers train (top1, top2, full).

A unit trains an English and a French model (at least 45 optimizer steps each) and scores four (head, encoder) pairs
on the validation (500) and test (1,000) sentences. With a frozen backbone the models read cached features and a
unit takes seconds; when layers of the backbone train, every step runs the backbone on the batch *and* re-embeds the
768 anchors (``anchor_refresh_steps=1``, gradients through the trained layers), and every score runs the backbone on
the texts. This script times one optimizer step (forward, cross-entropy, backward, AdamW) on a class-balanced batch
of 128 training sentences and one eval pass over 128 test sentences (anchors already cached, as when a stitched model
scores a split), per language and trainable, with the offline
encoders, and prints the extrapolated unit time side by side with the frozen-adapter unit time measured by a study
(``--adapter-unit-seconds``, from its results.json ``seconds_per_unit``).

    python benchmarks/bench_study_finetune_unit.py --threads 1 [--trainables top1 top2 full] [--adapter-unit-seconds S]
"""

import argparse
import dataclasses
import time

import torch


def encode(setup, texts: list[str]) -> dict:
    """Token batch of `texts` as the language's models read them."""
    return setup.tokenizer([setup.prefix + t for t in texts], padding=True, truncation=True,
                           max_length=setup.max_length, return_tensors="pt")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--trainables", nargs="+", default=["top1", "top2", "full"])
    parser.add_argument("--adapter-unit-seconds", type=float, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transformers.utils import logging as hf_logging

    from hf_relrep.reproduce import LANGUAGES, METHODS, preset_config
    from hf_relrep.reproduce.data import load_task_data
    from hf_relrep.reproduce.features import prepare_language
    from hf_relrep.reproduce.train import build_model
    from hf_relrep.study.densification import MIN_STEPS, TRAINABLES, trainable_backbone, unit_config

    hf_logging.set_verbosity_error()
    base = preset_config("quick", methods=("robust",), seeds=1, frozen_backbone=False)
    data, label_names = load_task_data(base)
    print(f"{'trainable':<9} {'language':<8} {'s/step':>8} {'s/128 eval':>11} {'unit estimate (s)':>18}")
    for name in args.trainables:
        trainable = TRAINABLES[name]
        unit = 0.0
        for language in LANGUAGES:
            config = unit_config(base, trainable, 2000, None)
            setup = trainable_backbone(
                prepare_language(dataclasses.replace(config), language, data[language]), trainable
            )
            model = build_model(config, METHODS["robust"], setup, data[language], label_names, language)
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
            labels = data[language].train_labels
            rows = [i for i in range(len(labels)) if labels[i] == 0][:64] + [
                i for i in range(len(labels)) if labels[i]
            ][:64]
            batch = setup.tokenizer([setup.prefix + data[language].train_texts[i] for i in rows], padding=True,
                                    truncation=True, max_length=setup.max_length, return_tensors="pt")  # fmt: skip
            target = torch.tensor([labels[i] for i in rows])
            model.train()
            started = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(**batch).logits, target)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step = time.perf_counter() - started
            model.eval()

            with torch.no_grad():
                model(**encode(setup, data[language].test_texts[:2]))  # embeds and caches the anchors, as in scoring
                started = time.perf_counter()
                model(**encode(setup, data[language].test_texts[:128]))
            evaluation = time.perf_counter() - started
            # per language: MIN_STEPS steps; its encoder is scored in 2 pairs × (500 validation + 1,000 test)
            estimate = MIN_STEPS * step + 2 * 1500 / 128 * evaluation
            unit += estimate
            print(f"{name:<9} {language:<8} {step:>8.1f} {evaluation:>11.1f} {estimate:>18.0f}")
        ratio = f"  ({unit / args.adapter_unit_seconds:.0f}× the adapter unit)" if args.adapter_unit_seconds else ""
        print(f"{name:<9} {'unit':<8} {'':>8} {'':>11} {unit:>18.0f}{ratio}")


if __name__ == "__main__":
    main()
