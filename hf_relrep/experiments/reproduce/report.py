"""The run's results: mean ± std over seeds, the paper-layout table, stitching ratios, the densification effect, and
the files of the output folder (results.json, table.txt, the heatmap and the death-time histograms)."""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...utils.plotting import plot_death_time_histograms, plot_heatmaps
from .config import LANGUAGES


def summarize(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0}


def summarize_scores(scores: dict) -> dict:
    """``scores[method][head][encoder][metric]`` lists of per-seed values -> the same tree of `summarize` dicts."""
    return {
        m: {h: {e: {k: summarize(v) for k, v in cell.items()} for e, cell in row.items()} for h, row in table.items()}
        for m, table in scores.items()
    }


def format_table(summary: dict, methods: Sequence[str]) -> str:
    """The paper's layout: one row per (head language γ, encoder language φ), Acc / F1 / MAE per method."""
    width = 27
    lines = [
        "Accuracy / weighted F1 / MAE, x100, mean (± std of accuracy) over seeds; γ = head, φ = encoder",
        f"{'γ':<3}{'φ':<3}" + "".join(f"{m:>{width}}" for m in methods),
    ]
    for head in LANGUAGES:
        for encoder in LANGUAGES:
            cells = []
            for method in methods:
                cell = summary[method][head][encoder]
                acc, f1, mae = (cell[k]["mean"] for k in ("accuracy", "f1_weighted", "mae"))
                cells.append(f"{acc:5.1f}±{cell['accuracy']['std']:<4.1f}/{f1:5.1f} /{mae:6.1f}")
            lines.append(f"{head:<3}{encoder:<3}" + "".join(f"{c:>{width}}" for c in cells))
    return "\n".join(lines)


def stitching_ratios(summary: dict, methods: Sequence[str]) -> dict[str, dict[str, float]]:
    """Stitched accuracy over the encoder language's own accuracy, per method and encoder language."""
    ratios = {}
    for method in methods:
        ratios[method] = {}
        for encoder in LANGUAGES:
            native = summary[method][encoder][encoder]["accuracy"]["mean"]
            for head in LANGUAGES:
                if head != encoder:
                    stitched = summary[method][head][encoder]["accuracy"]["mean"]
                    ratios[method][f"{head}-head/{encoder}-encoder"] = stitched / native if native else float("nan")
    return ratios


def densification_effect(scores: dict) -> dict[str, dict[str, float]]:
    """robust+topo minus robust accuracy per (head, encoder) pair: mean and std of the per-seed differences."""
    effect = {}
    for head in LANGUAGES:
        for encoder in LANGUAGES:
            diff = np.subtract(
                scores["robust+topo"][head][encoder]["accuracy"], scores["robust"][head][encoder]["accuracy"]
            )
            effect[f"{head}-head/{encoder}-encoder"] = summarize(diff.tolist())
    return effect


def plot_heatmap(summary: dict, methods: Sequence[str], path: Path) -> None:
    """Accuracy of every (head, encoder) pair, one panel per method."""
    grids = {
        method: [[summary[method][h][e]["accuracy"]["mean"] for e in LANGUAGES] for h in LANGUAGES]
        for method in methods
    }
    plot_heatmaps(
        grids, [f"γ={lang}" for lang in LANGUAGES], [f"φ={lang}" for lang in LANGUAGES], path,
        title="Zero-shot stitching: head language γ × encoder language φ", colorbar_label="accuracy ×100",
    )  # fmt: skip


def write_outputs(out: Path, results: dict, histograms: dict) -> None:
    """Write results.json, table.txt, the stitching heatmap and the death-time histograms into `out` (created).

    Files of the same name are replaced; nothing else in `out` is touched.
    """
    methods = list(results["summary"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "table.txt").write_text(format_table(results["summary"], methods) + "\n")
    plot_heatmap(results["summary"], methods, out / "stitching_heatmap.png")
    for (method_name, language), (before, after) in histograms.items():
        for space in after:
            plot_death_time_histograms(
                _int_keys(before[space]), _int_keys(after[space]),
                path=out / f"death_times_{method_name}_{language}_{space}.png",
            )  # fmt: skip


def _int_keys(mapping: dict) -> dict[int, list[float]]:
    return {int(k): v for k, v in mapping.items()}


def report(results: dict) -> str:
    """The printed summary: the table, stitching ratios, the densification effect, and timings."""
    methods = list(results["summary"])
    lines = [format_table(results["summary"], methods), "", "Stitched accuracy / the encoder language's own accuracy:"]
    for method, ratios in results["stitching_ratio"].items():
        lines.append(f"  {method:<20}" + "  ".join(f"{pair} {ratio:.3f}" for pair, ratio in ratios.items()))
    if "densification" in results:
        lines += ["", "robust+topo − robust accuracy (mean ± std of per-seed differences):"]
        for pair, effect in results["densification"].items():
            lines.append(f"  {pair:<22} {effect['mean']:+6.2f} ± {effect['std']:.2f}")
    seconds = results["seconds"]
    lines += ["", f"{seconds['total']:.0f} s in all ({seconds['prepare']:.0f} s loading and embedding)"]
    return "\n".join(lines)


__all__ = [
    "densification_effect",
    "format_table",
    "plot_heatmap",
    "report",
    "stitching_ratios",
    "summarize",
    "summarize_scores",
    "write_outputs",
]
