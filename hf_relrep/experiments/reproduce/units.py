"""The units of a reproduce run, and running many of them on worker processes.

A unit is one (method, seed): it trains the English and the French classifier, stitches all four (head, encoder)
pairs and scores each on the encoder language's test set. Units share nothing but the read-only `RunContext`, so
they run in any order and on any process with the same results: every model is seeded by its (language, seed) alone.

On a CPU, one process trains small models poorly in parallel: its Python and its small kernels run on one core, and a
second torch thread only shares the larger matmuls (the quick preset ran 1.34× faster on 2 threads than on 1; two
1-thread processes run it 1.9× faster). So `run_units` forks ``workers`` processes that inherit the context
(backbones, cached features, data) without copying it, each running units with ``threads // workers`` torch threads,
and hands results back in unit order.
"""

import gc
import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...evaluation import METRIC_KEYS
from .alignment import stitch_pair
from .config import LANGUAGES, METHODS, ReproduceConfig
from .data import LanguageData
from .features import LanguageSetup, predict_test_set
from .train import train_one


@dataclass
class RunContext:
    """What every unit reads: the run's settings, per-language data and backbones, and the per-method variants of
    them (methods that choose their own anchors)."""

    config: ReproduceConfig
    data: dict[str, LanguageData]
    setups: dict[str, LanguageSetup]
    variants: dict[str, tuple[dict[str, LanguageData], dict[str, LanguageSetup]]]
    label_names: list[str]
    metric: Any
    latent_size: int | None
    work_dir: Path


@dataclass
class UnitResult:
    """One unit's outcome: per language the training details, per (head, encoder) pair the test metrics, and, for a
    densified method, the probe's death times before and after training per language."""

    method: str
    seed: int
    runs: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    death_times: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def run_unit(context: RunContext, method_name: str, seed: int) -> UnitResult:
    """Train both languages' models of one (method, seed), stitch every (head, encoder) pair and score it."""
    config, method = context.config, METHODS[method_name]
    data, setups = context.variants.get(method_name, (context.data, context.setups))
    result = UnitResult(method_name, seed)
    models = {}
    for offset, language in enumerate(LANGUAGES):
        # Different seeds per language: with one seed both models would share their initial adapter and head, and
        # even absolute stitching would look like it works.
        models[language], info = train_one(
            config, method, setups[language], data[language], context.label_names, language, 1000 * offset + seed,
            context.work_dir, context.latent_size,
        )  # fmt: skip
        before, after = info.pop("death_times_before", None), info.pop("death_times", None)
        if after:
            result.death_times[language] = (before, after)
        result.runs.append(_jsonable({"method": method_name, "seed": seed, "language": language, **info}))
    for head in LANGUAGES:
        result.scores[head] = {}
        for encoder in LANGUAGES:
            stitched = stitch_pair(method, models, setups, data, encoder, head)
            predictions = predict_test_set(stitched, context.setups[encoder], context.data[encoder])
            scored = context.metric.compute(predictions=predictions, references=context.data[encoder].test_labels)
            result.scores[head][encoder] = {key: float(scored[key]) for key in METRIC_KEYS}
    return result


# Default workers stop here: each holds its own models and activations (a few hundred MB on the quick preset), and a
# run of 35 units gains little from more.
MAX_DEFAULT_WORKERS = 8


def default_workers(config: ReproduceConfig) -> int:
    """One worker per available core (at most `MAX_DEFAULT_WORKERS`) for frozen backbones on CPU; one otherwise (CUDA
    cannot be forked, and a fine-tuned backbone per process would multiply the memory)."""
    if torch.cuda.is_available() or not config.frozen_backbone:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cores, MAX_DEFAULT_WORKERS)


def run_units(
    context: RunContext, units: list[tuple[str, int]], workers: int, on_done: Callable[[UnitResult], None]
) -> list[UnitResult]:
    """Every unit's result, in the order of `units`; `on_done` is called as each finishes (for progress).

    With ``workers > 1`` (and more than one unit) the units run on that many forked processes. Objects that exist
    before the fork are frozen out of the garbage collector meanwhile: Trainer runs ``gc.collect()`` per model, which
    would otherwise walk (and, in a forked worker, copy) every object the run has loaded.
    """
    workers = max(1, min(workers, len(units)))
    gc.freeze()
    try:
        if workers == 1:
            results = []
            for unit in units:
                results.append(run_unit(context, *unit))
                on_done(results[-1])
            return results
        return list(_forked(context, units, workers, on_done))
    finally:
        gc.unfreeze()


def _jsonable(info: dict) -> dict:
    return json.loads(json.dumps(info, default=float))


_context: RunContext | None = None  # set in the parent before the fork; workers inherit it


def _forked(
    context: RunContext, units: list[tuple[str, int]], workers: int, on_done: Callable[[UnitResult], None]
) -> Iterator[UnitResult]:
    """Results in unit order from `workers` forked processes. A unit's error is raised here, as raised there; a
    worker that dies (e.g. killed for memory) raises `BrokenProcessPool` instead of leaving the run waiting."""
    global _context
    _context = context
    threads = max(1, torch.get_num_threads() // workers)
    fork = multiprocessing.get_context("fork")
    try:
        with ProcessPoolExecutor(
            workers, mp_context=fork, initializer=torch.set_num_threads, initargs=(threads,)
        ) as pool:
            futures = [pool.submit(_run_in_worker, unit) for unit in units]
            try:
                for future in futures:
                    on_done(future.result())
                    yield future.result()
            except BaseException:  # an error in a unit, or an interrupt: the other units' results are not wanted
                _stop_workers(pool)  # (the pool then fails the pending units itself; cancelling them first races it)
                raise
    finally:
        _context = None


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now, running units included (leaving the pool would otherwise wait for them)."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    for process in list((pool._processes or {}).values()):
        process.terminate()


def _run_in_worker(unit: tuple[str, int]) -> UnitResult:
    assert _context is not None, "run_units sets the context before forking"
    return run_unit(_context, *unit)


__all__ = ["RunContext", "UnitResult", "default_workers", "run_unit", "run_units"]
