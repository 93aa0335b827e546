"""The densification study's report: paired differences per cell, the markdown table, the plot, results.json."""

from pathlib import Path

import numpy as np

from ...utils.plotting import save_figure
from .densification_grid import mean_score
from .io import markdown_table, write_json, write_text
from .paired import bootstrap_interval, excludes_zero, paired_t_interval


KINDS = ("stitched", "native")
METRICS = ("accuracy", "f1_weighted")


def summarize_cell(trainable, size: int, best, gains: dict[str, float], pairs: list[tuple[dict, dict]]) -> dict:
    """Test-split paired differences (robust + densification − robust, ×100 points) with 95 % intervals."""
    cell = {"trainable": trainable.name, "size": size, "setting": best.name, "validation_gain": gains,
            "seeds": len(pairs), "differences": {}, "robust": {}, "densified": {}}  # fmt: skip
    for kind in KINDS:
        for metric in METRICS:
            name = f"{kind}_{metric}"
            robust = np.array([mean_score(r, "test", metric, kind) for r, _ in pairs])
            densified = np.array([mean_score(d, "test", metric, kind) for _, d in pairs])
            differences = (densified - robust).tolist()
            cell["differences"][name] = {"per_seed": differences, "t": paired_t_interval(differences),
                                         "bootstrap": bootstrap_interval(differences)}  # fmt: skip
            cell["robust"][name], cell["densified"][name] = float(robust.mean()), float(densified.mean())
    cell["death_median_after"] = {
        method: {space: float(np.nanmean([u["models"][lang]["death_median_after"].get(space, np.nan)
                                           for u in units for lang in u["models"]]))
                 for space in ("pre", "post")}
        for method, units in (("robust", [r for r, _ in pairs]), ("densified", [d for _, d in pairs]))
    }  # fmt: skip
    cell["seconds_per_unit"] = float(np.mean([u["seconds"]["total"] for pair in pairs for u in pair]))
    return cell


def helps(cell: dict, name: str, threshold: float = 0.5) -> bool:
    """Densification adds ≥ `threshold` points of `name` with a t interval that excludes 0."""
    t = cell["differences"][name]["t"]
    return t["mean"] >= threshold and excludes_zero(t) and t["low"] > 0


def _delta(cell: dict, name: str) -> str:
    t = cell["differences"][name]["t"]
    mark = " **" if helps(cell, name) else ""
    return f"{t['mean']:+.2f} [{t['low']:+.2f}, {t['high']:+.2f}]{mark}"


def table(cells: list[dict]) -> str:
    """One row per cell: the chosen setting and the four paired differences with their 95 % t intervals."""
    rows = [
        [c["trainable"], c["size"], f"{c['setting']} ({c['validation_gain'][c['setting']]:+.2f})", c["seeds"],
         *(_delta(c, f"{k}_{m}") for m in METRICS for k in KINDS),
         f"{c['robust']['stitched_accuracy']:.1f} / {c['robust']['native_accuracy']:.1f}"]
        for c in sorted(cells, key=lambda c: (c["trainable"], c["size"]))
    ]  # fmt: skip
    headers = ["trains", "n/lang", "setting (val Δacc)", "seeds", "Δ stitched acc", "Δ native acc",
               "Δ stitched F1w", "Δ native F1w", "robust acc stitched / native"]  # fmt: skip
    return (
        "Robust + densification − robust on the test split, ×100 points: mean paired difference over seeds "
        "[95 % paired t interval]; ** marks ≥ +0.5 with an interval above 0. The setting was chosen per cell on "
        "validation with the first seeds (its validation gain in accuracy points).\n\n" + markdown_table(headers, rows)
    )


def plot(cells: list[dict], path: Path) -> None:
    """Paired differences against training size with their intervals, one line per trainable, stitched and native."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.6), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    for ax, kind in zip(axes, KINDS, strict=True):
        for trainable in dict.fromkeys(c["trainable"] for c in cells):
            members = sorted((c for c in cells if c["trainable"] == trainable), key=lambda c: c["size"])
            sizes = np.array([c["size"] for c in members], dtype=float)
            t = [c["differences"][f"{kind}_accuracy"]["t"] for c in members]
            means = np.array([x["mean"] for x in t])
            errors = np.array([[x["mean"] - x["low"] for x in t], [x["high"] - x["mean"] for x in t]])
            ax.errorbar(sizes, means, yerr=errors, marker="o", capsize=3, label=trainable)
        ax.axhline(0, color="k", lw=0.8)
        ax.axhline(0.5, color="gray", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("training sentences per language")
        ax.set_title(f"{kind} accuracy: densified − robust (points, 95 % t)", fontsize=9)
        ax.legend(fontsize=8)
    save_figure(figure, path)


def write_outputs(folder: Path, cells: list[dict], seconds: float, *, quick: bool) -> dict:
    """Write results.json, table.md and densification.png; returns the results."""
    headline = [
        {"trainable": c["trainable"], "size": c["size"], "metric": name, **c["differences"][name]["t"]}
        for c in cells for name in c["differences"] if helps(c, name)
    ]  # fmt: skip
    results = {"study": "densification", "quick": quick, "cells": cells, "headline": headline, "seconds": seconds,
               "out": str(folder)}  # fmt: skip
    write_json(folder / "results.json", results)
    write_text(folder / "table.md", "# Densification study\n\n" + table(cells) + "\n")
    plot(cells, folder / "densification.png")
    return results


__all__ = ["helps", "plot", "summarize_cell", "table", "write_outputs"]
