"""`hf-relrep reproduce --anchor-sweep`: stitched accuracy against the number of anchors and how they are chosen.

For every strategy (``random``, ``kmeans``, ``fps``: `hf_relrep.select_anchors`), every anchor count k and every seed,
k anchors are chosen from the parallel pool (`hf_relrep.experiments.reproduce.alignment`), an English and a French robust
relative classifier are trained on them (different seeds, as in the main run) and stitched both ways; each stitched
model is scored on the encoder language's test set. The run writes ``anchor_sweep.json``, ``anchor_sweep.txt`` and
``anchor_sweep.png`` (stitched accuracy against k, one line per strategy, one panel per direction). It also records
how well each selection covers the pool: the mean distance of a pool point to its nearest anchor (English space).
"""

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ...metrics import load_metric
from ...utils.files import atomic_folder, check_output_dir
from ...utils.logs import transformers_errors_only
from ...utils.plotting import new_figure, save_figure
from .alignment import anchor_pool, choose, stitch_pair, with_anchors
from .config import LANGUAGES, METHODS, ReproduceConfig
from .data import load_task_data
from .features import predict_test_set, prepare_languages
from .report import summarize
from .train import common_latent_size, train_one


SWEEP_KS = (16, 32, 64, 128, 256, 768)
SWEEP_STRATEGIES = ("random", "kmeans", "fps")
SWEEP_METHOD = "robust"


def coverage(features: torch.Tensor, indices: torch.Tensor) -> float:
    """Mean Euclidean distance from each pool point to its nearest anchor: ``(1/n) Σ_i min_j ‖x_i − a_j‖``."""
    return float(torch.cdist(features, features[indices]).min(1).values.mean())


@transformers_errors_only()
def run_anchor_sweep(
    config: ReproduceConfig,
    out_dir: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    ks: Sequence[int] = SWEEP_KS,
    strategies: Sequence[str] = SWEEP_STRATEGIES,
) -> dict:
    """Train, stitch and score robust models for every (strategy, k, seed); write the sweep's files.

    Args:
        config: the run's settings (the quick preset: embedded parallel set, frozen backbones); `seeds`, training
            sizes and optimisation come from it, `methods` and `num_anchors` are not read.
        out_dir: the output folder; `None` makes ``runs/anchor-sweep-<timestamp>``.
        overwrite: as `run_reproduce`.
        ks: anchor counts (capped at the pool size).
        strategies: names in `hf_relrep.anchors.selection.ANCHOR_STRATEGIES`.

    Returns:
        The content of anchor_sweep.json: per strategy and k, the stitched and native accuracy (mean ± std over
        seeds) per (head, encoder) pair, the stitched/native ratio, and the pool coverage.
    """
    config.validate()
    out = check_output_dir(out_dir or Path("runs") / time.strftime("anchor-sweep-%Y%m%d-%H%M%S"), overwrite=overwrite)
    started = time.perf_counter()
    data, label_names = load_task_data(config)
    setups = prepare_languages(config, data)
    pool = anchor_pool(config, setups)
    latent_size = common_latent_size(config, setups)
    method, metric = METHODS[SWEEP_METHOD], load_metric()
    ks = [min(k, len(pool)) for k in ks]
    cells: dict = {}
    with (
        tempfile.TemporaryDirectory(prefix="hf-relrep-anchor-sweep-") as work_dir,
        tqdm(total=len(strategies) * len(ks) * config.seeds, desc="anchor sweep", unit="pair") as progress,
    ):
        for strategy in strategies:
            for k in ks:
                accuracy = {f"{h}-head/{e}-encoder": [] for h in LANGUAGES for e in LANGUAGES}
                covered = []
                for seed in range(config.seeds):
                    indices = choose(pool, k, strategy, seed)
                    covered.append(coverage(pool.features[LANGUAGES[0]], indices))
                    run_data, run_setups = with_anchors(pool, indices, data, setups)
                    models = {
                        language: train_one(
                            config, method, run_setups[language], run_data[language], label_names, language,
                            1000 * offset + seed, Path(work_dir), latent_size,
                        )[0]
                        for offset, language in enumerate(LANGUAGES)
                    }  # fmt: skip
                    for head in LANGUAGES:
                        for encoder in LANGUAGES:
                            stitched = stitch_pair(method, models, run_setups, run_data, encoder, head)
                            predictions = predict_test_set(stitched, run_setups[encoder], run_data[encoder])
                            result = metric.compute(predictions=predictions, references=data[encoder].test_labels)
                            accuracy[f"{head}-head/{encoder}-encoder"].append(float(result["accuracy"]))
                    progress.update()
                cells.setdefault(strategy, {})[str(k)] = cell_summary(accuracy, covered)
    results = {
        "preset": config.preset,
        "config": dataclasses.asdict(config),
        "method": SWEEP_METHOD,
        "ks": ks,
        "strategies": list(strategies),
        "pool_size": len(pool),
        "cells": cells,
        "seconds": time.perf_counter() - started,
    }
    check_output_dir(out, overwrite=overwrite)
    with atomic_folder(out, marker="reproduce") as tmp:
        write_sweep_outputs(tmp, results)
    return results


def cell_summary(accuracy: dict[str, list[float]], covered: list[float]) -> dict:
    """Mean ± std per (head, encoder) pair (and the per-seed values), stitched/native ratios per encoder language,
    and the pool coverage."""
    cell = {
        "accuracy": {pair: summarize(values) for pair, values in accuracy.items()},
        "ratio": {},
        "per_seed": accuracy,
    }
    for encoder in LANGUAGES:
        native = cell["accuracy"][f"{encoder}-head/{encoder}-encoder"]["mean"]
        for head in LANGUAGES:
            if head != encoder:
                stitched = cell["accuracy"][f"{head}-head/{encoder}-encoder"]["mean"]
                cell["ratio"][f"{head}-head/{encoder}-encoder"] = stitched / native if native else float("nan")
    cell["coverage"] = summarize(covered)
    return cell


def stitched_pairs() -> list[str]:
    return [f"{h}-head/{e}-encoder" for e in LANGUAGES for h in LANGUAGES if h != e]


def format_sweep(results: dict) -> str:
    """One row per (strategy, k): stitched accuracy ± std per direction, its ratio to native, and the coverage."""
    pairs = stitched_pairs()
    lines = [
        f"Anchor sweep ({results['method']} models; pool of {results['pool_size']} parallel rows; "
        "accuracy ×100, mean ± std over seeds; ratio = stitched / the encoder language's native accuracy)",
        f"{'strategy':<9}{'k':>5}" + "".join(f"{pair:>28}{'ratio':>7}" for pair in pairs) + f"{'coverage':>10}",
    ]
    for strategy in results["strategies"]:
        for k in results["ks"]:
            cell = results["cells"][strategy][str(k)]
            row = f"{strategy:<9}{k:>5}"
            for pair in pairs:
                acc = cell["accuracy"][pair]
                row += f"{acc['mean']:>21.1f} ± {acc['std']:<4.1f}{cell['ratio'][pair]:>7.3f}"
            lines.append(row + f"{cell['coverage']['mean']:>10.3f}")
    return "\n".join(lines)


def plot_sweep(results: dict, path: Path) -> None:
    """Stitched accuracy against k (log scale), one line per strategy with a ± std band, one panel per direction."""
    pairs = stitched_pairs()
    figure = new_figure(figsize=(5.5 * len(pairs), 4))
    axes = figure.subplots(1, len(pairs), sharey=True, squeeze=False)
    ks = np.asarray(results["ks"])
    for axis, pair in zip(axes[0], pairs, strict=True):
        for strategy in results["strategies"]:
            cells = [results["cells"][strategy][str(k)]["accuracy"][pair] for k in ks]
            mean, std = np.array([c["mean"] for c in cells]), np.array([c["std"] for c in cells])
            axis.plot(ks, mean, marker="o", label=strategy)
            axis.fill_between(ks, mean - std, mean + std, alpha=0.2)
        axis.set_xscale("log", base=2)
        axis.set_xticks(ks, [str(k) for k in ks])
        axis.set_xlabel("anchors k")
        axis.set_title(pair)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("stitched accuracy ×100")
    axes[0][0].legend(title="anchors")
    save_figure(figure, path)


def write_sweep_outputs(out: Path, results: dict) -> None:
    """anchor_sweep.json, anchor_sweep.txt and anchor_sweep.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "anchor_sweep.json").write_text(json.dumps(results, indent=2))
    (out / "anchor_sweep.txt").write_text(format_sweep(results) + "\n")
    plot_sweep(results, out / "anchor_sweep.png")


__all__ = ["SWEEP_KS", "SWEEP_STRATEGIES", "coverage", "format_sweep", "plot_sweep", "run_anchor_sweep"]
