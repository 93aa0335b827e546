"""Plots: death-time histograms and any other figure the library or its experiments save.

Figures use matplotlib's Agg canvas directly (no pyplot: the global backend is left alone) and are saved atomically:
a PNG is written to a temporary sibling and renamed into place, so a crash never leaves half a picture.
"""

import os
import tempfile
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..errors import TopologyError


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A matplotlib ``Figure`` with an Agg canvas and constrained layout, independent of pyplot's global state."""
    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | PathLike[str], *, dpi: int = 120) -> Path:
    """Save ``figure`` as a PNG at ``path`` atomically (temporary sibling, then ``os.replace``)."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            figure.savefig(stream, dpi=dpi, format="png")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def plot_death_time_histograms(
    death_times_by_class_before: Mapping[int, torch.Tensor | Sequence[float]],
    death_times_by_class_after: Mapping[int, torch.Tensor | Sequence[float]] | None = None,
    path: str | PathLike[str] | None = None,
    *,
    beta: float | None = None,
    bins: int = 20,
) -> Figure:
    r"""Histograms of death times per class, before and (optionally) after training, as in the paper's Fig. 5–6.

    One panel per class, both histograms on shared bins; a dashed line marks :math:`\beta` when given. Uses
    matplotlib's Agg canvas directly (no pyplot, the global backend is left alone).

    Args:
        death_times_by_class_before: ``{class: death times}``, e.g. from :func:`death_times_by_class`.
        death_times_by_class_after: the same after training, or ``None`` for one histogram per panel.
        path: where to save a PNG; ``None`` saves nothing.
        beta: the densification target to mark, or ``None``.
        bins: number of histogram bins per panel.

    Returns:
        The matplotlib ``Figure``.

    Raises:
        TopologyError: there is no class to plot.

    Example:
        >>> before = {0: torch.tensor([1.0, 2.0, 2.5]), 1: torch.tensor([0.5, 3.0])}
        >>> after = {0: torch.tensor([0.6, 0.7, 0.8]), 1: torch.tensor([0.7, 0.9])}
        >>> figure = plot_death_time_histograms(before, after, beta=0.7)  # path="deaths.png" to save a PNG
        >>> [ax.get_title() for ax in figure.axes]
        ['class 0', 'class 1']
    """
    after = death_times_by_class_after or {}
    classes = sorted(set(death_times_by_class_before) | set(after))
    if not classes:
        raise TopologyError("No death times to plot; pass {class: death times}, e.g. from death_times_by_class().")

    def as_array(values: torch.Tensor | Sequence[float] | None) -> np.ndarray:
        if values is None:
            return np.empty(0)
        if isinstance(values, torch.Tensor):
            return values.detach().float().cpu().numpy().ravel()
        return np.asarray(values, dtype=float).ravel()

    columns = min(len(classes), 5)
    rows = -(-len(classes) // columns)
    figure = new_figure(figsize=(3.2 * columns, 2.6 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.flat[len(classes) :]:
        ax.set_visible(False)
    for ax, label in zip(axes.flat, classes, strict=False):
        before_values = as_array(death_times_by_class_before.get(label))
        after_values = as_array(after.get(label))
        both = np.concatenate([before_values, after_values])
        edges = np.histogram_bin_edges(both if both.size else np.zeros(1), bins=bins)
        if before_values.size:
            ax.hist(before_values, bins=edges, alpha=0.6, label="before")
        if after_values.size:
            ax.hist(after_values, bins=edges, alpha=0.6, label="after")
        if beta is not None:
            ax.axvline(beta, color="black", linestyle="--", linewidth=1, label="β")
        ax.set_title(f"class {label}")
        ax.set_xlabel("death time (MST edge length)")
        ax.set_ylabel("count")
        if death_times_by_class_after is not None or beta is not None:
            ax.legend(fontsize="small")
    if path is not None:
        save_figure(figure, path)
    return figure


def plot_heatmaps(
    grids: Mapping[str, np.ndarray | Sequence[Sequence[float]]],
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    path: str | PathLike[str] | None = None,
    *,
    title: str | None = None,
    colorbar_label: str | None = None,
    vmin: float = 0.0,
    vmax: float = 100.0,
) -> Figure:
    """Annotated heatmaps side by side on one colour scale, one panel per grid (e.g. accuracy per stitched pair).

    Args:
        grids: ``{panel title: [rows, columns] values}``, in panel order.
        row_labels, column_labels: tick labels of every panel.
        path: where to save a PNG (atomically); ``None`` saves nothing.
        title: the figure's title.
        colorbar_label: the label of the shared colour bar.
        vmin, vmax: the colour scale (values are written in each cell, white on the darker part of the scale).

    Returns:
        The matplotlib ``Figure``.
    """
    figure = new_figure(figsize=(2.6 * len(grids), 2.9))
    axes = figure.subplots(1, len(grids), squeeze=False)[0]
    for ax, (name, values) in zip(axes, grids.items(), strict=True):
        grid = np.asarray(values, dtype=float)
        image = ax.imshow(grid, vmin=vmin, vmax=vmax, cmap="viridis")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                dark = grid[i, j] < vmin + 0.6 * (vmax - vmin)
                ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", color="white" if dark else "k")
        ax.set_xticks(range(len(column_labels)), list(column_labels))
        ax.set_yticks(range(len(row_labels)), list(row_labels))
        ax.set_title(name)
    figure.colorbar(image, ax=list(axes), shrink=0.8, label=colorbar_label)
    if title:
        figure.suptitle(title)
    if path is not None:
        save_figure(figure, path)
    return figure
