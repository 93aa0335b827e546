"""`hf-relrep study densification`: does topological densification add accuracy on top of the robust transformation?

Paired comparisons on the embedded EN/FR sentiment data with the reproduce pipeline (`hf_relrep.experiments.reproduce`: its
feature cache, `train_one` and `stitch_pair`): for every grid cell and seed, robust and robust + densification models
are trained from the same initialisation on the same batches (same seeds; only the loss differs), then all four
(head language, encoder language) pairs are scored — the two native models and the two stitched ones.

The grid:

- training sentences per language (a stratified random subset per seed, the same for both methods);
- what trains (`TRAINABLES`): the head only (frozen backbone, no adapter: densification cannot move anything, a
  sanity check that must give differences of exactly 0), the MLP adapter and head on cached features (reproduce's
  quick preset), the top 1–2 transformer layers (on cached hidden states of the layer below, `top_layers`; the
  anchors re-embedded with gradients every `ANCHOR_REFRESH_STEPS` steps), or the whole backbone;
- the densification setting (`SETTINGS`: placement pre/post/both, λ, β fixed or per-space scale), chosen per cell on
  the VALIDATION split with the first `selection_seeds` seeds; the test split is reported for all seeds.

Small training sets get at least `MIN_STEPS` optimizer steps (more epochs), and class-balanced batches no larger than
the classes allow. Every (cell, method, seed) unit is cached as a content-keyed JSON file in ``<out>/units/``, written
atomically: a killed study continues where it stopped, and results are rewritten after every finished cell.
"""

import dataclasses
import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...utils.logs import transformers_errors_only
from .densification_grid import (
    MIN_STEPS,
    PAIRS,
    QUICK_MIN_STEPS,
    SETTINGS,
    SIZES,
    TRAINABLES,
    TopoSetting,
    Trainable,
    epochs_for,
    mean_score,
    plan,
    samples_per_class,
    stratified_subset,
)
from .densification_report import summarize_cell, write_outputs
from .io import prepare_out_dir, read_json, write_json


#: Bumped when what a unit computes changes for the same inputs (invalidates the cached units).
UNIT_FORMAT = 2
#: When backbone layers train, the anchors are re-embedded (with gradients) every this many steps, and read from the
#: last embedding in between: the paper's code refreshes them every few hundred steps; re-embedding 768 anchors at
#: every step would cost ~10× the step itself.
ANCHOR_REFRESH_STEPS = 15


# ----------------------------------------------------------------------------------------------------- context
@dataclass
class Context:
    """What every unit of a study shares: data, backbones and cached inputs, the metric, the output folder."""

    base: object  # ReproduceConfig
    data: dict  # language -> LanguageData (full training sets, test, anchors)
    validation: dict  # language -> (texts, labels)
    label_names: list[str]
    setups: dict  # setup_kind(trainable) -> language -> LanguageSetup
    validation_inputs: dict  # setup_kind -> language -> cached features or hidden states (None: the texts)
    metric: object
    fingerprint: str
    units_dir: Path
    work_dir: Path
    min_steps: int = MIN_STEPS


def setup_kind(trainable: Trainable) -> str:
    """Which prepared backbones a trainable reads: ``"frozen"`` (cached features), ``"top<k>"`` (the top k layers on
    cached hidden states) or ``"full"`` (the whole backbone on token ids)."""
    if trainable.frozen:
        return "frozen"
    return "full" if trainable.top_layers is None else f"top{trainable.top_layers}"


def build_context(encoders: dict[str, str] | None, trainables: Sequence[str], out: Path, work_dir: Path) -> Context:
    """Load the data and the backbones; cache the features (frozen trainables) or the hidden states below the trained
    layers (top-k trainables) of the training, validation, test and anchor texts."""
    from ...data import load_parallel_sentiment
    from ...metrics import load_metric
    from ..reproduce import preset_config
    from ..reproduce.data import load_task_data
    from ..reproduce.features import cached_embeddings, encoder_fingerprint, prepare_language
    from .top_layers import top_layers_setup

    overrides = {"encoders": dict(encoders)} if encoders else {}
    base = preset_config("quick", methods=("robust", "robust+topo"), seeds=1, **overrides)
    data, label_names = load_task_data(base)
    split = load_parallel_sentiment()["validation"]
    validation = {lang: (list(split[f"text_{lang}"]), list(split["label"])) for lang in data}
    setups, validation_inputs = {}, {}
    for trainable in sorted({TRAINABLES[t] for t in trainables}, key=setup_kind):
        kind = setup_kind(trainable)
        if kind in setups:
            continue
        config = dataclasses.replace(base, frozen_backbone=trainable.frozen)
        loaded = {lang: prepare_language(config, lang, data[lang]) for lang in data}
        setups[kind], validation_inputs[kind] = loaded, dict.fromkeys(data)
        for lang, setup in loaded.items():
            if trainable.frozen:
                validation_inputs[kind][lang] = cached_embeddings(
                    setup.backbone, setup.tokenizer, validation[lang][0], encoder_path=setup.encoder_path,
                    pooling=setup.pooling, prefix=setup.prefix, max_length=setup.max_length,
                    description=f"{lang} validation",
                )  # fmt: skip
            elif trainable.top_layers is not None:
                setups[kind][lang], validation_inputs[kind][lang] = top_layers_setup(
                    setup, data[lang], validation[lang][0], trainable.top_layers
                )
    any_setups = next(iter(setups.values()))
    fingerprint = json.dumps({lang: encoder_fingerprint(s.encoder_path) for lang, s in any_setups.items()})
    units_dir = out / "units"
    units_dir.mkdir(exist_ok=True)
    return Context(base, data, validation, label_names, setups, validation_inputs, load_metric(), fingerprint,
                   units_dir, work_dir)  # fmt: skip


def unit_config(base, trainable: Trainable, size: int, setting: TopoSetting | None, min_steps: int = MIN_STEPS):
    """The `ReproduceConfig` of one unit."""
    overrides = {
        "adapter": trainable.adapter, "frozen_backbone": trainable.frozen, "samples_per_class": samples_per_class(size),
        "epochs": float(epochs_for(size, min_steps)), "backbone_learning_rate": None if trainable.frozen else 1e-4,
    }  # fmt: skip
    if not trainable.frozen:
        overrides["anchor_refresh_steps"] = ANCHOR_REFRESH_STEPS
    if setting is not None:
        overrides.update(setting.overrides())
    return dataclasses.replace(base, **overrides)


def run_unit(ctx: Context, trainable: Trainable, size: int, seed: int, setting: TopoSetting | None) -> dict:
    """Train robust (`setting` None) or robust + densification models for both languages; score 4 pairs × 2 splits.

    Cached in ``units/<key>.json``, keyed by everything the result depends on. A setting with λ = 0 in both spaces
    (`TopoSetting.is_off`) is robust: its unit is robust's.
    """
    from ..reproduce import LANGUAGES, METHODS
    from ..reproduce.alignment import stitch_pair
    from ..reproduce.features import predict_test_set
    from ..reproduce.train import common_latent_size, train_one

    if setting is not None and setting.is_off:
        setting = None
    config = unit_config(ctx.base, trainable, size, setting, ctx.min_steps)
    method_name = "robust" if setting is None else "robust+topo"
    identity = {"format": UNIT_FORMAT, "encoders": ctx.fingerprint, "config": dataclasses.asdict(config),
                "trainable": dataclasses.asdict(trainable), "size": size, "seed": seed, "method": method_name}  # fmt: skip
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    path = ctx.units_dir / f"{key[:32]}.json"
    cached = read_json(path)
    if cached is not None and cached.get("key") == key:
        return cached

    started = time.perf_counter()
    kind = setup_kind(trainable)
    setups = ctx.setups[kind]
    latent_size = common_latent_size(config, setups)
    models, train_setups, train_data, info = {}, {}, {}, {}
    for offset, lang in enumerate(LANGUAGES):
        full = ctx.data[lang]
        picks = stratified_subset(full.train_labels, size, seed, offset)
        train_data[lang] = dataclasses.replace(
            full, train_texts=[full.train_texts[i] for i in picks], train_labels=[full.train_labels[i] for i in picks]
        )
        train_setups[lang] = training_subset(setups[lang], picks)
        models[lang], details = train_one(
            config, METHODS[method_name], train_setups[lang], train_data[lang], ctx.label_names, lang,
            1000 * offset + seed, ctx.work_dir, latent_size,
        )  # fmt: skip
        info[lang] = {
            k: details[k] for k in ("steps", "death_median_before", "death_median_after", "beta") if k in details
        }
    trained = time.perf_counter()
    scores = {}
    for split in ("validation", "test"):
        scores[split] = {}
        for head, encoder in PAIRS:
            setup, data = setups[encoder], ctx.data[encoder]
            if split == "validation":
                texts, labels = ctx.validation[encoder]
                data = dataclasses.replace(data, test_texts=texts, test_labels=labels)
                setup = with_test_inputs(setup, ctx.validation_inputs[kind][encoder])
            stitched = stitch_pair(METHODS[method_name], models, train_setups, train_data, encoder, head)
            result = ctx.metric.compute(
                predictions=predict_test_set(stitched, setup, data), references=data.test_labels
            )
            scores[split][f"{head}-{encoder}"] = {k: float(result[k]) for k in ("accuracy", "f1_weighted")}
    unit = {
        "key": key, "trainable": trainable.name, "size": size, "seed": seed, "method": method_name,
        "setting": None if setting is None else setting.name, "scores": scores, "models": info,
        "seconds": {"train": trained - started, "total": time.perf_counter() - started},
    }  # fmt: skip
    write_json(path, unit)
    return unit


def training_subset(setup, picks: list[int]):
    """`setup` with the cached training inputs (features or hidden states) of rows `picks` only."""
    if setup.train_features is not None:
        return dataclasses.replace(setup, train_features=setup.train_features[picks])
    if setup.token_states is not None:
        train = {name: value[picks] for name, value in setup.token_states["train"].items()}
        return dataclasses.replace(setup, token_states={**setup.token_states, "train": train})
    return setup


def with_test_inputs(setup, inputs):
    """`setup` scoring `inputs` (cached features or hidden states of another split) instead of its test inputs."""
    if setup.test_features is not None:
        return dataclasses.replace(setup, test_features=inputs)
    if setup.token_states is not None:
        return dataclasses.replace(setup, token_states={**setup.token_states, "test": inputs})
    return setup


# --------------------------------------------------------------------------------------------------------- study
def choose_setting(
    ctx: Context, trainable: Trainable, size: int, settings: Sequence[TopoSetting], seeds: Sequence[int], tick
) -> tuple[TopoSetting, dict[str, float]]:
    """The setting with the best mean validation accuracy (all four pairs) over `seeds`, and every setting's
    validation gain over robust (0 for a setting with λ = 0, which wins ties: densify only where validation says
    it helps)."""
    robust = [run_unit(ctx, trainable, size, s, None) for s in seeds]
    tick(len(seeds))
    gains = {}
    for setting in settings:
        units = robust if setting.is_off else [run_unit(ctx, trainable, size, s, setting) for s in seeds]
        tick(0 if setting.is_off else len(seeds))
        gains[setting.name] = float(np.mean([mean_score(u, "validation", "accuracy", "all") for u in units])
                                    - np.mean([mean_score(u, "validation", "accuracy", "all") for u in robust]))  # fmt: skip
    best = max(settings, key=lambda s: (gains[s.name], s.is_off))  # a tie with λ = 0 goes to λ = 0
    return best, gains


@transformers_errors_only()
def run_densification(
    out: str | Path | None = None,
    *,
    seeds: int = 20,
    quick: bool = False,
    encoders: dict[str, str] | None = None,
    sizes: Sequence[int] | None = None,
    trainables: Sequence[str] | None = None,
    settings: Sequence[str] | None = None,
    selection_seeds: int = 3,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Run the grid; after every finished cell, rewrite ``results.json``, ``table.md`` and the plot.

    Args:
        out: the output folder; a folder of an earlier densification study is continued (its units reused).
        seeds: seeds per cell (the test comparison); `quick` uses 2.
        quick: a reduced grid — 50 and 250 sentences, head and adapter, two settings, 2 seeds, 1 selection seed,
            `QUICK_MIN_STEPS` steps.
        encoders: ``{"en": ..., "fr": ...}`` backbones (offline names, folders); default: the reproduce preset's.
        sizes, trainables, settings: subsets of `SIZES`, `TRAINABLES`, `SETTINGS` (default: all).
        selection_seeds: the first seeds, whose VALIDATION scores choose the setting of each cell.
        progress: called with the number of units just finished (e.g. a progress bar's ``update``).

    Returns:
        The content of ``results.json``.
    """
    grid = plan(quick=quick, sizes=sizes, trainables=trainables, settings=settings, seeds=seeds,
                selection_seeds=selection_seeds)  # fmt: skip
    sizes, trainables, settings = grid["sizes"], grid["trainables"], grid["settings"]
    seeds, selection_seeds = grid["seeds"], grid["selection_seeds"]
    folder = prepare_out_dir(out, "densification")
    started = time.perf_counter()
    tick = progress or (lambda count: None)
    cells = []
    with tempfile.TemporaryDirectory(prefix="hf-relrep-study-") as work_dir:
        ctx = build_context(encoders, trainables, folder, Path(work_dir))
        ctx.min_steps = QUICK_MIN_STEPS if quick else MIN_STEPS
        for trainable_name in trainables:
            trainable = TRAINABLES[trainable_name]
            for size in sizes:
                candidates = [SETTINGS[s] for s in settings]
                if trainable.name == "head":  # nothing to choose: every setting leaves the frozen latents alone, and
                    # one that densifies is run as a check of the pairing (bit-identical predictions)
                    candidates = [c for c in candidates if not c.is_off][-1:] or candidates[-1:]
                best, gains = choose_setting(ctx, trainable, size, candidates, range(selection_seeds), tick)
                pairs = []
                for seed in range(seeds):
                    pairs.append(
                        (run_unit(ctx, trainable, size, seed, None), run_unit(ctx, trainable, size, seed, best))
                    )
                    tick(2 if seed >= selection_seeds else 0)
                cells.append(summarize_cell(trainable, size, best, gains, pairs))
                write_outputs(folder, cells, time.perf_counter() - started, quick=quick)
    return write_outputs(folder, cells, time.perf_counter() - started, quick=quick)


__all__ = [
    "MIN_STEPS",
    "PAIRS",
    "QUICK_MIN_STEPS",
    "SETTINGS",
    "SIZES",
    "TRAINABLES",
    "TopoSetting",
    "Trainable",
    "choose_setting",
    "epochs_for",
    "mean_score",
    "run_densification",
    "run_unit",
    "samples_per_class",
    "plan",
    "stratified_subset",
    "setup_kind",
    "unit_config",
]
