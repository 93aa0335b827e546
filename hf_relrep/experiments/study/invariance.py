"""`hf-relrep study invariance`: which transformations of the latent space each normalization removes.

Two networks that differ only by a relabelling and rescaling of hidden units compute latents related by an element
of the activation's intertwiner group ([`hf_relrep.experiments.study.intertwiners`]); a relative step that is invariant to
ρ(G_σ) gives both networks the same relative vectors, so the same head gives the same predictions. The study applies to small trained networks ([`hf_relrep.experiments.study.networks`]):

- *pre-activation* maps (a change of the last layer's weights): a random group element, and permutations, sign flips,
  positive diagonal scalings, rotations and bias shifts, each inside or outside the activation's group;
- *latent* maps ``z ↦ Mz + h`` applied to z itself (isotropic and diagonal scaling, rotation, shift, general affine):
  the invariance classes of the normalizations (none: αU; robust: DP + h; whiten: every invertible affine map).

and reports, per normalization and statistics source, the fraction of identical predictions and the largest change
of a relative coordinate. The statistics B transform with the latents: anchors and batches pass through the
transformed network, running statistics are re-estimated from the same stream of batches.
"""

import functools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...errors import ConfigurationError
from ...utils.plotting import save_figure
from .intertwiners import INTERTWINER_GROUPS, TRANSFORMS, expected_invariant, in_group, transformed
from .io import markdown_table, prepare_out_dir, write_json, write_text
from .networks import (
    ACTIVATIONS,
    RelativeMLP,
    TrainSettings,
    build_network,
    calibrate_running,
    make_task,
    predict,
    torch_threads,
    train_network,
)


DEFAULT_SETTINGS = TrainSettings()

#: The (normalization, stats) columns of the table; "none" ignores the statistics source.
SETTINGS: tuple[tuple[str, str], ...] = (
    ("none", "anchors"),
    ("robust", "anchors"),
    ("robust", "batch"),
    ("robust", "running"),
    ("whiten", "anchors"),
    ("whiten", "batch"),
    ("whiten", "running"),
)


# ------------------------------------------------------------------------------------------------- measurement
@dataclass(frozen=True)
class InvarianceResult:
    """What a transformation did to a trained network's outputs."""

    agreement: float  # fraction of test inputs with the same predicted class
    max_delta_relative: float  # max over test inputs and anchors of |r'_i − r_i|
    accuracy: float  # the original network's test accuracy
    accuracy_transformed: float


@functools.lru_cache(maxsize=256)
def trained(activation: str, normalization: str, stats: str, seed: int, settings: TrainSettings) -> RelativeMLP:
    """The trained network of one cell (cached in memory: the transforms of one cell share it)."""
    task = make_task(seed, test_size=settings.test_size)
    model = build_network(task, activation, normalization, stats, settings, seed)
    return train_network(model, task.train_x, task.train_y, task.anchor_x, settings, seed)


def measure(
    activation: str,
    normalization: str,
    transform: str,
    *,
    stats: str = "anchors",
    seed: int = 0,
    settings: TrainSettings = DEFAULT_SETTINGS,
) -> InvarianceResult:
    """Train (or reuse) the network of one cell, apply one random `transform`, compare predictions on the test set.

    With ``stats="batch"`` the whole test set is one batch, for both networks. Runs on one torch thread.
    """
    if activation not in ACTIVATIONS:
        raise ConfigurationError(f"Unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}.")
    if transform not in TRANSFORMS:
        raise ConfigurationError(f"Unknown transform {transform!r}; choose one of {', '.join(TRANSFORMS)}.")
    if (normalization, stats) not in SETTINGS and normalization != "none":
        raise ConfigurationError(
            f"Unknown normalization/stats {normalization!r}/{stats!r}; normalization is one of none, robust, whiten "
            "and stats one of anchors, batch, running."
        )
    stats = "anchors" if normalization == "none" else stats
    with torch_threads(1):
        task = make_task(seed, test_size=settings.test_size)
        model = trained(activation, normalization, stats, seed, settings)
        other = transformed(model, activation, transform, task.anchor_x, seed)
        calibrate_running(other, task.train_x, task.anchor_x, settings, seed)
        relative, predicted = predict(model, task.test_x, task.anchor_x)
        relative_t, predicted_t = predict(other, task.test_x, task.anchor_x)
    return InvarianceResult(
        agreement=float((predicted == predicted_t).double().mean()),
        max_delta_relative=float((relative - relative_t).abs().max()),
        accuracy=float((predicted == task.test_y).double().mean()),
        accuracy_transformed=float((predicted_t == task.test_y).double().mean()),
    )


def intertwiner_agreement(
    activation: str, normalization: str, transform: str, *, stats: str = "anchors", seed: int = 0
) -> float:
    """Fraction of identical predictions of a small trained network before and after a random `transform`.

    Args:
        activation: one of ``relu``, ``leaky_relu``, ``gelu``, ``silu``, ``elu``, ``tanh``.
        normalization: ``"none"`` (vanilla), ``"robust"`` or ``"whiten"``.
        transform: a name in `TRANSFORMS`: ``"intertwiner"`` (a random element of the activation's intertwiner group
            applied to the layer before the relative step) or a named map inside or outside it.
        stats: the statistics source, ``"anchors"``, ``"batch"`` or ``"running"``.
        seed: the data, the network's initialisation and the transform's draw.

    Example:

    ```python
    >>> from hf_relrep.experiments.study import intertwiner_agreement
    >>> intertwiner_agreement("relu", "robust", "intertwiner")
    1.0
    ```
    """
    return measure(activation, normalization, transform, stats=stats, seed=seed).agreement


# -------------------------------------------------------------------------------------------------------- study
def _label(normalization: str, stats: str) -> str:
    return "vanilla" if normalization == "none" else f"{normalization}/{stats}"


def summarize(cells: list[dict]) -> list[dict]:
    """One row per (activation, transform, setting): min and mean agreement over seeds, max |Δ relative|."""
    groups: dict[tuple, list[dict]] = {}
    for cell in cells:
        groups.setdefault((cell["activation"], cell["transform"], cell["normalization"], cell["stats"]), []).append(
            cell
        )
    rows = []
    for (activation, transform, normalization, stats), members in groups.items():
        agreements = [m["agreement"] for m in members]
        rows.append({
            "activation": activation, "transform": transform, "normalization": normalization, "stats": stats,
            "in_group": in_group(activation, transform),
            "expected_invariant": expected_invariant(activation, normalization, transform),
            "agreement_min": min(agreements), "agreement_mean": float(np.mean(agreements)),
            "max_delta_relative": max(m["max_delta_relative"] for m in members), "seeds": len(members),
        })  # fmt: skip
    return rows


def _cell(row: dict) -> str:
    return f"{row['agreement_min']:.3f} ({row['max_delta_relative']:.0e})"


def tables(summary: list[dict]) -> str:
    """The markdown report: intertwiners per activation, latent maps, maps outside each group, and the full grid."""
    index = {(r["activation"], r["transform"], _label(r["normalization"], r["stats"])): r for r in summary}
    labels = [_label(n, s) for n, s in SETTINGS]
    activations = [a for a in ACTIVATIONS if any(k[0] == a for k in index)]
    headers = ["", *labels]

    def row(activation: str, transform: str, name: str) -> list[str]:
        return [name] + [_cell(index[(activation, transform, label)]) for label in labels]

    def worst(transform: str) -> list[str]:
        cells = []
        for label in labels:
            members = [index[(a, transform, label)] for a in activations]
            cells.append(
                f"{min(m['agreement_min'] for m in members):.3f} ({max(m['max_delta_relative'] for m in members):.0e})"
            )
        return [transform.removeprefix("latent_"), *cells]

    intertwiners = [row(a, "intertwiner", f"{a} ({' × '.join(INTERTWINER_GROUPS[a])})") for a in activations]
    latent = [worst(t) for t, spec in TRANSFORMS.items() if spec.level == "latent"]
    outside = [
        row(a, t, f"{a}: {t}") for a in activations for t, spec in TRANSFORMS.items() if in_group(a, t) is False
    ]
    full = [row(a, t, f"{a}: {t}") for a in activations for t in TRANSFORMS]
    legend = "Cells: agreement of predictions, min over seeds (max \\|Δ relative\\| over seeds and inputs)."
    return "\n\n".join([
        "## Intertwiner groups (a random group element applied to the layer before the relative step)", legend,
        markdown_table(["activation (group)", *labels], intertwiners),
        "## Maps of the latent itself (z ↦ Mz + h), worst case over activations", legend,
        markdown_table(["latent map", *labels], latent),
        "## Pre-activation maps outside each activation's group", legend, markdown_table(headers, outside),
        "## Every cell", legend, markdown_table(headers, full),
    ]) + "\n"  # fmt: skip


def plot(summary: list[dict], path: Path) -> None:
    """Heatmaps of the agreement and of log10 max |Δ relative|, one row per (activation, transform)."""
    from matplotlib.figure import Figure

    labels = [_label(n, s) for n, s in SETTINGS]
    keys = sorted({(r["activation"], r["transform"]) for r in summary}, key=lambda k: (
        list(ACTIVATIONS).index(k[0]), list(TRANSFORMS).index(k[1])))  # fmt: skip
    index = {(r["activation"], r["transform"], _label(r["normalization"], r["stats"])): r for r in summary}
    agreement = np.array([[index[(*k, label)]["agreement_min"] for label in labels] for k in keys])
    delta = np.array(
        [[np.log10(max(index[(*k, label)]["max_delta_relative"], 1e-17)) for label in labels] for k in keys]
    )
    figure = Figure(figsize=(11, 0.22 * len(keys) + 1.6), layout="constrained")
    for ax, values, title, cmap, bounds in zip(
        figure.subplots(1, 2), (agreement, delta), ("agreement of predictions (min over seeds)",
        "log10 max |Δ relative|"), ("viridis", "magma"), ((0.5, 1.0), (-16, 0)), strict=True,
    ):  # fmt: skip
        image = ax.imshow(values, aspect="auto", cmap=cmap, vmin=bounds[0], vmax=bounds[1])
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(
            range(len(keys)), [f"{a}: {t}" + ("  ∈G" if in_group(a, t) else "") for a, t in keys], fontsize=6
        )
        ax.set_title(title, fontsize=9)
        figure.colorbar(image, ax=ax, shrink=0.6)
    save_figure(figure, path)


def run_invariance(
    out: str | Path | None = None,
    *,
    seeds: int = 3,
    quick: bool = False,
    activations: tuple[str, ...] = tuple(ACTIVATIONS),
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Build the invariance table: every activation × setting × transform × seed; write results, table and plot.

    Args:
        out: the output folder (created; see [`prepare_out_dir`]).
        seeds: networks (data, initialisation and transform draws) per cell.
        quick: shorter training (100 steps), 512 test inputs and one seed.
        activations: a subset of `ACTIVATIONS`.
        progress: called with one line per trained network (e.g. ``print``); `None` is silent.

    Returns:
        The content of ``results.json``: settings, per-seed cells, the summary and timings.
    """
    unknown = [a for a in activations if a not in ACTIVATIONS]
    if unknown:
        raise ConfigurationError(f"Unknown activation(s) {unknown}; choose from {', '.join(ACTIVATIONS)}.")
    if seeds < 1:
        raise ConfigurationError(f"seeds must be ≥ 1, got {seeds}.")
    settings = TrainSettings(steps=100, test_size=512) if quick else TrainSettings()
    seeds = 1 if quick else seeds
    folder = prepare_out_dir(out, "invariance")
    started = time.perf_counter()
    cells = []
    for seed in range(seeds):
        for activation in activations:
            for normalization, stats in SETTINGS:
                for transform in TRANSFORMS:
                    result = measure(activation, normalization, transform, stats=stats, seed=seed, settings=settings)
                    cells.append({"activation": activation, "normalization": normalization, "stats": stats,
                                  "transform": transform, "seed": seed, **asdict(result)})  # fmt: skip
                if progress is not None:
                    progress(f"invariance: seed {seed} {activation} {_label(normalization, stats)}")
    trained.cache_clear()
    summary = summarize(cells)
    results = {
        "study": "invariance",
        "quick": quick,
        "seeds": seeds,
        "train_settings": asdict(settings),
        "transforms": {name: asdict(spec) for name, spec in TRANSFORMS.items()},
        "intertwiner_groups": INTERTWINER_GROUPS,
        "summary": summary,
        "cells": cells,
        "seconds": time.perf_counter() - started,
        "out": str(folder),
    }
    write_json(folder / "results.json", results)
    write_text(folder / "table.md", "# Invariance study\n\n" + tables(summary))
    plot(summary, folder / "invariance.png")
    return results


__all__ = ["SETTINGS", "InvarianceResult", "intertwiner_agreement", "measure", "run_invariance", "tables"]
