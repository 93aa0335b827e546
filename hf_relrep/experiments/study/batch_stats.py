"""`hf-relrep study batch-stats`: what the statistics source does to a prediction when batches change.

With ``stats="batch"`` (the paper's definition) the relative vector of an input depends on the other inputs of its
batch: the same sentence can be classified differently depending on whom it is served with. ``"anchors"`` and
``"running"`` statistics do not depend on the batch. The study places every test input in batches of size
2, 4, 8, 32 and 128 drawn at random several times and measures

- *changed*: the fraction of inputs whose prediction is not the same in every draw;
- *flip rate*: the probability that two draws give an input different predictions (mean over pairs of draws);
- the accuracy of the native model and of the stitched models (encoder of one model, head of the other), by
  batch size.

The measurement ([`hf_relrep.experiments.study.batch_measure`]) takes any ``predict(indices) -> classes`` function,
so the same code runs on the synthetic setup here and on the embedded sentiment data
([`hf_relrep.experiments.study.batch_stats_text`]).
"""

import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ...errors import ConfigurationError
from ...utils.plotting import save_figure
from .batch_measure import BATCH_SIZES, STATS, Predictor, batch_sensitivity, merge
from .batch_stats_text import text_cells
from .io import markdown_table, prepare_out_dir, write_json, write_text
from .networks import DTYPE, RelativeMLP, TrainSettings, build_network, make_task, torch_threads, train_network


# ---------------------------------------------------------------------------------------------- synthetic setup
def _view(seed: int, size: int) -> torch.Tensor:
    """A fixed random invertible map: the second "encoder" sees every input through it."""
    generator = torch.Generator().manual_seed(seed)
    q1, _ = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=DTYPE))
    q2, _ = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=DTYPE))
    scales = torch.exp(torch.rand(size, generator=generator, dtype=DTYPE) * 2 - 1)
    return q1 @ torch.diag(scales) @ q2


def synthetic_predictors(
    stats: str, seed: int, settings: TrainSettings, *, test_size: int = 1024
) -> tuple[dict[str, Predictor], torch.Tensor]:
    """Two robust ReLU networks, each trained on its own view of the synthetic task with its own seed.

    Returns:
        Predictors over test indices — ``native_a``, ``native_b`` (each model on its own view), ``stitched_ab``
        (model A's encoder and relative step, model B's head) and ``stitched_ba`` — and the test labels.
    """
    task = make_task(seed, test_size=test_size)
    view = _view(seed + 1, task.train_x.shape[1])
    data = {"a": (task.train_x, task.test_x, task.anchor_x), "b": tuple(t @ view.T for t in (task.train_x,
            task.test_x, task.anchor_x))}  # fmt: skip
    models: dict[str, RelativeMLP] = {}
    for offset, name in enumerate(data):
        train_x, _, anchor_x = data[name]
        model = build_network(task, "relu", "robust", stats, settings, 1000 * offset + seed)
        models[name] = train_network(model, train_x, task.train_y, anchor_x, settings, 1000 * offset + seed)

    def predictor(encoder: str, head: str) -> Predictor:
        _, test_x, anchor_x = data[encoder]
        with torch.no_grad():  # latents are computed row by row; only the relative step sees the batch
            latents, anchors = models[encoder].latents(test_x), models[encoder].latents(anchor_x)

        @torch.no_grad()
        def predict(indices: torch.Tensor) -> torch.Tensor:
            return models[head].head(models[encoder].projection(latents[indices], anchors)).argmax(-1)

        return predict

    predictors = {"native_a": predictor("a", "a"), "native_b": predictor("b", "b"),
                  "stitched_ab": predictor("a", "b"), "stitched_ba": predictor("b", "a")}  # fmt: skip
    return predictors, task.test_y


# -------------------------------------------------------------------------------------------------------- report
def summarize(cells: list[dict]) -> list[dict]:
    """Mean over seeds per (setup, stats, batch size)."""
    groups: dict[tuple, list[dict]] = {}
    for cell in cells:
        groups.setdefault((cell["setup"], cell["stats"], cell["batch_size"]), []).append(cell)
    rows = []
    for (setup, stats, size), members in groups.items():
        row = {"setup": setup, "stats": stats, "batch_size": size, "seeds": len(members)}
        for key in members[0]:
            if key.startswith(("native_", "stitched_")):
                values = [m[key] for m in members]
                row[key], row[key + "_std"] = float(np.mean(values)), float(np.std(values))
        rows.append(row)
    return rows


def table(summary: list[dict]) -> str:
    """One markdown table per setup: stats × batch size → changed, flip rate, native and stitched accuracy."""
    parts = []
    for setup in dict.fromkeys(r["setup"] for r in summary):
        rows = [
            [r["stats"], r["batch_size"], f"{100 * r['native_changed']:.2f}", f"{100 * r['native_flip_rate']:.2f}",
             f"{100 * r['stitched_changed']:.2f}", f"{100 * r['native_accuracy']:.1f} ± {100 * r['native_accuracy_std']:.1f}",
             f"{100 * r['stitched_accuracy']:.1f} ± {100 * r['stitched_accuracy_std']:.1f}"]
            for r in summary if r["setup"] == setup
        ]  # fmt: skip
        headers = ["stats", "batch", "changed % (native)", "flip rate % (native)", "changed % (stitched)",
                   "native acc %", "stitched acc %"]  # fmt: skip
        parts += [f"## {setup}", "Mean over seeds (± std over seeds).", markdown_table(headers, rows)]
    return "\n\n".join(parts) + "\n"


def plot(summary: list[dict], path: Path) -> None:
    """Flip rate and stitched accuracy against batch size, one line per statistics source, one row per setup."""
    from matplotlib.figure import Figure

    setups = list(dict.fromkeys(r["setup"] for r in summary))
    figure = Figure(figsize=(9, 3.2 * len(setups)), layout="constrained")
    axes = figure.subplots(len(setups), 2, squeeze=False)
    for row, setup in zip(axes, setups, strict=True):
        for stats in STATS:
            members = sorted((r for r in summary if r["setup"] == setup and r["stats"] == stats),
                             key=lambda r: r["batch_size"])  # fmt: skip
            if not members:
                continue
            sizes = [r["batch_size"] for r in members]
            row[0].plot(sizes, [100 * r["native_flip_rate"] for r in members], marker="o", label=stats)
            row[1].plot(sizes, [100 * r["stitched_accuracy"] for r in members], marker="o", label=stats)
        for ax, ylabel in zip(row, ("flip rate % (native)", "stitched accuracy %"), strict=True):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("batch size")
            ax.set_ylabel(ylabel)
            ax.set_title(textwrap.fill(setup, 60), fontsize=8)
            ax.legend(fontsize=8)
    save_figure(figure, path)


def write_outputs(folder: Path, results: dict) -> None:
    """results.json, table.md and batch_stats.png of `results` (with its ``summary``)."""
    write_json(folder / "results.json", results)
    write_text(folder / "table.md", "# Batch statistics study\n\n" + table(results["summary"]))
    plot(results["summary"], folder / "batch_stats.png")


def run_batch_stats(
    out: str | Path | None = None,
    *,
    seeds: int = 3,
    quick: bool = False,
    draws: int = 8,
    text: bool = False,
    encoders: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run the batch-statistics study on the synthetic setup (and on the embedded sentiment data when `text`).

    Args:
        out: the output folder (created; see [`prepare_out_dir`]).
        seeds: model pairs per statistics source.
        quick: shorter training, one seed, 4 draws, 256 test inputs.
        draws: random batchings per batch size.
        text: also run on the embedded EN/FR sentiment data with the reproduce pipeline's frozen encoders
            ([`hf_relrep.experiments.study.batch_stats_text`]).
        encoders: ``{"en": ..., "fr": ...}`` backbones for `text` (default: the reproduce preset's).
        progress: called with one line per finished model pair; `None` is silent.

    Returns:
        The content of ``results.json``.
    """
    if seeds < 1:
        raise ConfigurationError(f"seeds must be ≥ 1, got {seeds}.")
    settings = TrainSettings(steps=150) if quick else TrainSettings()
    seeds, draws = (1, 4) if quick else (seeds, draws)
    folder = prepare_out_dir(out, "batch-stats")
    started = time.perf_counter()
    cells = []
    for stats in STATS:
        for seed in range(seeds):
            with torch_threads(1):
                predictors, labels = synthetic_predictors(stats, seed, settings, test_size=256 if quick else 1024)
                measured = {n: batch_sensitivity(p, labels, draws=draws, seed=seed) for n, p in predictors.items()}
            for size, row in merge(measured).items():
                cells.append({"setup": "synthetic (robust ReLU MLP)", "stats": stats, "seed": seed,
                              "batch_size": size, **row})  # fmt: skip
            if progress is not None:
                progress(f"batch-stats: synthetic stats={stats} seed {seed}")
    results = {"study": "batch-stats", "quick": quick, "seeds": seeds, "draws": draws,
               "train_settings": asdict(settings), "cells": cells}  # fmt: skip
    if text:
        cells += text_cells(seeds=seeds, draws=draws, quick=quick, encoders=encoders, progress=progress)
    results["summary"] = summarize(cells)
    results["seconds"] = time.perf_counter() - started
    results["out"] = str(folder)
    write_outputs(folder, results)
    return results


__all__ = ["BATCH_SIZES", "STATS", "batch_sensitivity", "merge", "run_batch_stats", "summarize", "table"]
