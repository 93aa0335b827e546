"""`hf-relrep reproduce` end to end on tiny local models: train, stitch, evaluate, write results and plots."""

import json
from pathlib import Path

import pytest
from tiny_models import save_tiny_backbone
from transformers.utils import logging as transformers_logging

from hf_relrep.errors import AnchorError, ConfigurationError, DataError, OutputExistsError
from hf_relrep.experiments.reproduce import METHODS, preset_config, report, run_reproduce
from hf_relrep.zoo import OFFLINE_ENCODERS


FIXTURES = Path(__file__).parent.parent / "fixtures" / "amazon_reviews_multi_tiny"


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    english = save_tiny_backbone(tmp_path_factory.mktemp("en"), seed=1)
    french = save_tiny_backbone(tmp_path_factory.mktemp("fr"), seed=2, hidden_size=48, num_hidden_layers=1)
    return {"en": str(english), "fr": str(french)}


@pytest.fixture(autouse=True)
def embedding_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_RELREP_CACHE", str(tmp_path / "cache"))


def tiny_quick(encoders, **overrides):
    settings = dict(encoders=encoders, train_size=48, test_size=32, num_anchors=12, seeds=2, epochs=1,
                    samples_per_class=4, group_size=4)  # fmt: skip
    settings.update(overrides)
    return preset_config("quick", **settings)


def test_quick_pipeline_end_to_end(encoders, tmp_path):
    transformers_logging.set_verbosity_warning()
    results = run_reproduce(tiny_quick(encoders), tmp_path / "out")
    # the backbones' load reports were silenced for the run only: the caller's transformers verbosity is back
    assert transformers_logging.get_verbosity() == transformers_logging.WARNING
    out = tmp_path / "out"
    assert {"results.json", "table.txt", "stitching_heatmap.png"} <= {p.name for p in out.iterdir()}
    assert list(out.glob("death_times_robust+topo_*_pre.png")) and list(out.glob("death_times_robust+topo_*_post.png"))
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(results["summary"]))
    for method in METHODS:
        for head in ("en", "fr"):
            for encoder in ("en", "fr"):
                scores = saved["scores"][method][head][encoder]
                assert len(scores["accuracy"]) == 2  # one per seed
                assert all(0 <= a <= 100 for a in scores["accuracy"]) and all(m >= 0 for m in scores["mae"])
                assert set(scores) == {"accuracy", "f1_weighted", "f1_macro", "mae"}
    # Models of the two languages come from different seeds; densified runs record the β they used per space.
    densified = [run for run in saved["runs"] if run["method"] == "robust+topo"]
    assert all(run["beta"]["pre"] > 0 and run["beta"]["post"] > 0 for run in densified)
    assert saved["encoders"]["fr"] == {"source": encoders["fr"], "pooling": "mean", "prefix": ""}
    assert set(saved["densification"]) == {"en-head/en-encoder", "en-head/fr-encoder", "fr-head/en-encoder",
                                           "fr-head/fr-encoder"}  # fmt: skip
    text = report(results)
    assert "γ  φ" in text and "robust+topo − robust" in text and "en-head/fr-encoder" in text
    assert (out / "table.txt").read_text().strip() in text


def test_embeddings_are_cached_between_runs_and_overwrite_keeps_other_files(encoders, tmp_path):
    config = tiny_quick(encoders, methods=("robust",), seeds=1)
    out = tmp_path / "first"
    run_reproduce(config, out)
    cache = sorted((tmp_path / "cache" / "embeddings").glob("*.safetensors"))
    assert len(cache) == 6  # train, test and anchors for each language
    stamps = [p.stat().st_mtime_ns for p in cache]
    first = json.loads((out / "results.json").read_text())
    (out / "notes.txt").write_text("mine")
    again = run_reproduce(config, out, overwrite=True)
    assert [p.stat().st_mtime_ns for p in cache] == stamps
    assert again["scores"]["robust"] == first["scores"]["robust"]
    # --overwrite: this run's outputs replace those of the same name, anything else in the folder stays.
    assert json.loads((out / "results.json").read_text())["seconds"] == again["seconds"] != first["seconds"]
    assert (out / "notes.txt").read_text() == "mine"


def test_pooling_and_prefix_come_from_the_offline_encoder_spec(encoders):
    quick = preset_config("quick")
    for language in ("en", "fr"):
        spec = OFFLINE_ENCODERS[quick.encoders[language]]
        assert (quick.pooling_for(language), quick.prefix_for(language)) == (spec.pooling, spec.prefix)
    local = tiny_quick(encoders)  # plain folders: mean pooling, no prefix, unless set
    assert (local.pooling_for("fr"), local.prefix_for("fr")) == ("mean", "")
    chosen = tiny_quick(encoders, pooling="cls", prefixes={"fr": "query: "})
    assert (chosen.pooling_for("fr"), chosen.prefix_for("fr"), chosen.prefix_for("en")) == ("cls", "query: ", "")


def test_paper_preset_code_path_on_tiny_stand_ins(encoders, tmp_path):
    anchors = tmp_path / "anchors.jsonl"
    rows = [{"text_en": f"english anchor {i} good", "text_fr": f"ancre {i} bon"} for i in range(10)]
    anchors.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    config = preset_config(
        "paper", encoders=encoders, dataset=str(FIXTURES / "language_dirs"), anchors_path=str(anchors),
        train_size=40, test_size=20, num_anchors=10, seeds=1, epochs=1, samples_per_class=4, group_size=4,
        classes_per_batch=5,
        methods=("absolute", "robust", "robust+topo"), adapter="linear",
    )  # fmt: skip
    assert not config.frozen_backbone and config.stats == "running" and config.pooling == "cls"
    results = run_reproduce(config, tmp_path / "paper")
    assert results["summary"]["robust"]["en"]["fr"]["accuracy"]["mean"] >= 0
    steps = {run["steps"] for run in results["runs"]}
    assert steps and min(steps) >= 1  # fine-tuned end to end, on tokenized text


def test_bad_input_is_refused_clearly(encoders, tmp_path):
    with pytest.raises(ConfigurationError, match="Unknown preset 'fast'"):
        preset_config("fast")
    with pytest.raises(ConfigurationError, match="Unknown method"):
        preset_config("quick", methods=("robust", "magic"))
    with pytest.raises(ConfigurationError, match="Unknown reproduce setting"):
        preset_config("quick", learning_rat=1.0)

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "results.json").write_text("{}")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        run_reproduce(tiny_quick(encoders), tmp_path / "taken")
    assert (tmp_path / "taken" / "results.json").read_text() == "{}"  # nothing lost

    paper = dict(encoders=encoders, train_size=40, test_size=20, num_anchors=10, seeds=1, epochs=1)
    with pytest.raises(DataError, match="anchors_path"):
        run_reproduce(preset_config("paper", dataset=str(FIXTURES / "language_dirs"), **paper), tmp_path / "a")
    uneven = tmp_path / "uneven.csv"
    uneven.write_text("text_en,text_fr\none,un\ntwo,\n")
    with pytest.raises((AnchorError, DataError)):
        run_reproduce(
            preset_config("paper", dataset=str(FIXTURES / "language_dirs"), anchors_path=str(uneven), **paper),
            tmp_path / "b",
        )
    no_columns = tmp_path / "no-columns"
    (no_columns / "en").mkdir(parents=True)
    (no_columns / "fr").mkdir()
    for language in ("en", "fr"):
        for split in ("train", "test"):
            (no_columns / language / f"{split}.jsonl").write_text('{"comment": "hello", "score": 3}\n')
    with pytest.raises(DataError, match="stars|label"):
        run_reproduce(
            preset_config("paper", dataset=str(no_columns), anchors_path=str(uneven), **paper), tmp_path / "c"
        )


def test_worker_processes_give_the_results_of_one_process(encoders, tmp_path):
    config = tiny_quick(encoders, methods=("absolute", "robust+topo"), seeds=2)
    alone = run_reproduce(config, tmp_path / "alone", workers=1)
    side_by_side = run_reproduce(config, tmp_path / "side-by-side", workers=2)
    assert side_by_side["scores"] == alone["scores"]
    assert [(r["method"], r["seed"], r["language"], r["steps"]) for r in side_by_side["runs"]] == [
        (r["method"], r["seed"], r["language"], r["steps"]) for r in alone["runs"]
    ]
    assert sorted(p.name for p in (tmp_path / "side-by-side").iterdir()) == sorted(
        p.name for p in (tmp_path / "alone").iterdir()
    )  # the death-time histograms of seed 0 come back from the workers too


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_worker_count_is_refused_before_any_work(encoders, tmp_path, workers):
    with pytest.raises(ConfigurationError, match="workers must be a positive integer"):
        run_reproduce(tiny_quick(encoders), tmp_path / "out", workers=workers)
    assert not (tmp_path / "out").exists()


def test_an_error_in_a_worker_process_reaches_the_caller_typed(encoders, tmp_path, monkeypatch):
    from hf_relrep.experiments.reproduce import units

    def failing_unit(context, method_name, seed):
        if seed == 1:
            raise DataError(f"unit {method_name}/{seed} failed")
        return original(context, method_name, seed)

    original = units.run_unit
    monkeypatch.setattr(units, "run_unit", failing_unit)  # before the fork: the workers inherit it
    with pytest.raises(DataError, match="unit robust/1 failed"):
        run_reproduce(tiny_quick(encoders, methods=("robust",), seeds=3), tmp_path / "out", workers=2)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_default_workers_one_per_core_for_frozen_backbones_on_cpu(monkeypatch):
    from hf_relrep.experiments.reproduce import units

    quick, paper = preset_config("quick"), preset_config("paper")
    monkeypatch.setattr(units.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(units.os, "sched_getaffinity", lambda pid: set(range(2)), raising=False)
    assert units.default_workers(quick) == 2 and units.default_workers(paper) == 1  # fine-tuned backbones: one
    monkeypatch.setattr(units.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert units.default_workers(quick) == units.MAX_DEFAULT_WORKERS
    monkeypatch.setattr(units.torch.cuda, "is_available", lambda: True)
    assert units.default_workers(quick) == 1  # CUDA cannot be forked
