"""The run: train, stitch and score every method, seed and (head, encoder) pair; and the command line around it."""

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ...errors import ConfigurationError
from ...evaluation import METRIC_KEYS
from ...metrics import load_metric
from ...modeling.loading import check_loadable
from ...utils.files import atomic_folder, check_output_dir
from ...utils.logs import transformers_errors_only
from ...zoo import find_offline_encoder
from .alignment import anchor_variants
from .anchor_sweep import format_sweep, run_anchor_sweep
from .config import LANGUAGES, METHODS, PRESETS, ReproduceConfig, preset_config
from .data import load_task_data
from .features import prepare_languages
from .report import densification_effect, report, stitching_ratios, summarize_scores, write_outputs
from .train import common_latent_size
from .units import RunContext, default_workers, run_units


def default_out_dir() -> Path:
    """``runs/reproduce-<timestamp>``."""
    return Path("runs") / time.strftime("reproduce-%Y%m%d-%H%M%S")


@transformers_errors_only()
def run_reproduce(
    config: ReproduceConfig,
    out_dir: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    workers: int | None = None,
) -> dict:
    """Train, stitch and score every method, seed and (head, encoder) pair; write results.json and the plots.

    Args:
        config: the run's settings (`preset_config` makes one).
        out_dir: the output folder; `None` makes ``runs/reproduce-<timestamp>``.
        overwrite: accept an `out_dir` that an earlier run wrote: once this run's outputs are complete they replace
            that run's, anything else in the folder is kept (see `hf_relrep.utils.files`). Without it, a non-empty folder
            is refused before any work starts; with it, so is a folder hf-relrep did not write.
        workers: processes that train (method, seed) units side by side; `None`: one per core for frozen backbones
            on CPU, else 1 (see `hf_relrep.experiments.reproduce.units`). The results do not depend on it.

    Returns:
        The content of results.json: the config, per-run details, the summary table and the stitching ratios.

    Raises:
        OutputExistsError: `out_dir` holds files and `overwrite` is false.
    """
    config.validate()
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigurationError(f"workers must be a positive integer (or None for one per core), got {workers!r}.")
    out = check_output_dir(out_dir if out_dir is not None else default_out_dir(), overwrite=overwrite)
    for language in LANGUAGES:  # a missing or pickle-only encoder is said before any work
        if find_offline_encoder(config.encoders[language]) is None:
            check_loadable(config.encoders[language], f"{language} encoder", allow_pickle=config.allow_pickle)
    started = time.perf_counter()
    data, label_names = load_task_data(config)
    setups = prepare_languages(config, data)
    prepared = time.perf_counter()
    metric = load_metric()
    latent_size = common_latent_size(config, setups)
    variants = anchor_variants(config, METHODS, data, setups)  # methods that choose their own anchors

    units = [(method_name, seed) for method_name in config.methods for seed in range(config.seeds)]
    scores = {m: {h: {e: {k: [] for k in METRIC_KEYS} for e in LANGUAGES} for h in LANGUAGES} for m in config.methods}
    with (
        tempfile.TemporaryDirectory(prefix="hf-relrep-reproduce-") as work_dir,
        tqdm(total=len(units) * len(LANGUAGES), desc="training", unit="model") as progress,
    ):
        context = RunContext(config, data, setups, variants, label_names, metric, latent_size, Path(work_dir))
        workers = default_workers(config) if workers is None else workers
        results_by_unit = run_units(context, units, workers, lambda unit: progress.update(len(unit.runs)))
    runs, histograms = [], {}
    for unit in results_by_unit:
        runs += unit.runs
        for head, by_encoder in unit.scores.items():
            for encoder, metrics in by_encoder.items():
                for key, value in metrics.items():
                    scores[unit.method][head][encoder][key].append(value)
        if unit.seed == 0:
            histograms.update({(unit.method, language): deaths for language, deaths in unit.death_times.items()})

    summary = summarize_scores(scores)
    results = {
        "preset": config.preset,
        "config": dataclasses.asdict(config),
        "encoders": {
            language: {"source": config.encoders[language], "pooling": setup.pooling, "prefix": setup.prefix}
            for language, setup in setups.items()
        },
        "summary": summary,
        "scores": scores,
        "stitching_ratio": stitching_ratios(summary, config.methods),
        "runs": runs,
        "seconds": {"prepare": prepared - started, "total": time.perf_counter() - started},
        "versions": _versions(),
    }
    if "robust" in config.methods and "robust+topo" in config.methods:
        results["densification"] = densification_effect(scores)
    save_outputs(out, results, histograms, overwrite=overwrite)
    return results


def save_outputs(out: str | os.PathLike, results: dict, histograms: dict, *, overwrite: bool = False) -> None:
    """Write a run's outputs (`write_outputs`) as one folder swapped in place of `out` once complete.

    A crash at any instant leaves the previous outputs or the new ones; files in `out` that no hf-relrep run wrote
    are kept (`hf_relrep.utils.files.atomic_folder`).

    Raises:
        OutputExistsError: see `hf_relrep.utils.files.check_output_dir` (checked again: someone may have written meanwhile).
    """
    check_output_dir(out, overwrite=overwrite)
    with atomic_folder(out, marker="reproduce") as tmp:
        write_outputs(tmp, results, histograms)


def _versions() -> dict[str, str]:
    import transformers

    from ... import __version__

    return {"hf_relrep": __version__, "torch": torch.__version__, "transformers": transformers.__version__}


# ------------------------------------------------------------------------------------------------------------ CLI
def config_from_args(args: argparse.Namespace) -> ReproduceConfig:
    """The preset named by ``--preset`` with the options given on the command line."""
    overrides: dict[str, Any] = {}
    if args.seeds is not None:
        overrides["seeds"] = args.seeds
    if args.methods:
        overrides["methods"] = tuple(args.methods)
    if args.dataset:
        overrides["dataset"] = args.dataset
    if args.anchors:
        overrides["anchors_path"] = args.anchors
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.allow_pickle:
        overrides["allow_pickle"] = True
    if args.encoder_en or args.encoder_fr:
        encoders = dict(PRESETS.get(args.preset, ReproduceConfig()).encoders)
        encoders.update({k: v for k, v in (("en", args.encoder_en), ("fr", args.encoder_fr)) if v})
        overrides["encoders"] = encoders
    return preset_config(args.preset, **overrides)


def run_from_args(args: argparse.Namespace) -> int:
    """Run `hf-relrep reproduce` from parsed arguments and print the report."""
    config = config_from_args(args)
    if getattr(args, "anchor_sweep", False):
        print(format_sweep(run_anchor_sweep(config, args.out, overwrite=args.overwrite)))
        return 0
    results = run_reproduce(config, args.out, overwrite=args.overwrite, workers=args.workers)
    print(report(results))
    return 0


__all__ = ["config_from_args", "default_out_dir", "run_from_args", "run_reproduce", "save_outputs"]
