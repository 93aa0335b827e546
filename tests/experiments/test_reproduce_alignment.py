"""reproduce's issue-11 parts on tiny local models: k-means anchors from the parallel pool, translated absolute
stitching, and the anchor sweep (files, structure, CLI flag)."""

import json

import pytest
import torch
from tiny_models import save_tiny_backbone

from hf_relrep import TranslatedModelForSequenceClassification
from hf_relrep.cli import main
from hf_relrep.data import load_parallel_sentiment
from hf_relrep.errors import ConfigurationError
from hf_relrep.experiments.reproduce import METHODS, preset_config
from hf_relrep.experiments.reproduce import run as reproduce_run
from hf_relrep.experiments.reproduce.alignment import (
    POOL_SPLITS,
    anchor_pool,
    anchor_variants,
    choose,
    stitch_pair,
    with_anchors,
)
from hf_relrep.experiments.reproduce.anchor_sweep import run_anchor_sweep
from hf_relrep.experiments.reproduce.data import load_task_data
from hf_relrep.experiments.reproduce.features import prepare_language
from hf_relrep.experiments.reproduce.train import train_one


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    english = save_tiny_backbone(tmp_path_factory.mktemp("en"), seed=1)
    french = save_tiny_backbone(tmp_path_factory.mktemp("fr"), seed=2, hidden_size=48, num_hidden_layers=1)
    return {"en": str(english), "fr": str(french)}


@pytest.fixture(scope="module")
def prepared(encoders, tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("HF_RELREP_CACHE", str(tmp_path_factory.mktemp("cache")))
    config = preset_config(
        "quick", encoders=encoders, train_size=48, test_size=32, num_anchors=12, seeds=1, epochs=1,
        samples_per_class=4, group_size=4,
    )  # fmt: skip
    data, labels = load_task_data(config)
    setups = {language: prepare_language(config, language, data[language]) for language in ("en", "fr")}
    yield config, data, labels, setups, anchor_pool(config, setups)
    monkeypatch.undo()


def test_the_pool_is_parallel_and_leaves_the_test_split_out(prepared):
    _, _, _, setups, pool = prepared
    splits = load_parallel_sentiment()
    assert len(pool) == sum(len(splits[name]) for name in POOL_SPLITS) == 4768
    assert pool.features["en"].shape == (4768, 32) and pool.features["fr"].shape == (4768, 48)
    test_texts = set(splits["test"]["text_en"])
    assert not test_texts & set(pool.texts["en"])
    row = splits["train_fr"][5]
    index = len(splits["anchors"]) + len(splits["train_en"]) + 5
    assert (pool.texts["en"][index], pool.texts["fr"][index]) == (row["text_en"], row["text_fr"])


def test_kmeans_anchors_are_parallel_pool_rows_with_their_features(prepared):
    config, data, _, setups, pool = prepared
    variants = anchor_variants(config, METHODS, data, setups)
    assert set(variants) == {"robust+kmeans"}
    chosen_data, chosen_setups = variants["robust+kmeans"]
    indices = choose(pool, 12, "kmeans")
    assert chosen_data["en"].anchor_texts == [pool.texts["en"][i] for i in indices.tolist()]
    assert chosen_data["fr"].anchor_texts == [pool.texts["fr"][i] for i in indices.tolist()]
    torch.testing.assert_close(chosen_setups["fr"].anchor_features, pool.features["fr"][indices])
    assert chosen_data["en"].anchor_texts != data["en"].anchor_texts
    assert chosen_data["en"].train_texts == data["en"].train_texts  # only the anchors change


def test_absolute_models_stitch_through_the_orthogonal_translation(prepared, tmp_path):
    config, data, labels, setups, _ = prepared
    method = METHODS["absolute+orthogonal"]
    models = {
        language: train_one(config, method, setups[language], data[language], labels, language, seed, tmp_path, 48)[0]
        for seed, language in enumerate(("en", "fr"))
    }
    stitched = stitch_pair(method, models, setups, data, "fr", "en")
    assert isinstance(stitched, TranslatedModelForSequenceClassification)
    assert stitched.config.num_anchors == 12 and stitched.config.translation == "orthogonal"
    features = setups["fr"].test_features[:4]
    with torch.no_grad():
        expected = models["en"].head(stitched.translation(models["fr"](backbone_features=features).latents))
        torch.testing.assert_close(stitched(backbone_features=features).logits, expected)
    native = stitch_pair(method, models, setups, data, "en", "en")
    assert not isinstance(native, TranslatedModelForSequenceClassification)  # its own head: nothing to translate


def test_anchor_sweep_writes_its_table_and_plot(prepared, tmp_path):
    config = prepared[0]
    results = run_anchor_sweep(config, tmp_path / "sweep", ks=(4, 8), strategies=("random", "kmeans", "fps"))
    assert {p.name for p in (tmp_path / "sweep").iterdir()} >= {
        "anchor_sweep.json",
        "anchor_sweep.txt",
        "anchor_sweep.png",
    }
    saved = json.loads((tmp_path / "sweep" / "anchor_sweep.json").read_text())
    assert saved["ks"] == [4, 8] and saved["strategies"] == ["random", "kmeans", "fps"]
    cell = saved["cells"]["kmeans"]["8"]
    assert set(cell["accuracy"]) == {
        "en-head/en-encoder",
        "en-head/fr-encoder",
        "fr-head/en-encoder",
        "fr-head/fr-encoder",
    }
    assert set(cell["ratio"]) == {"en-head/fr-encoder", "fr-head/en-encoder"} and cell["coverage"]["mean"] > 0
    assert len(cell["per_seed"]["en-head/fr-encoder"]) == config.seeds
    assert results["cells"] == saved["cells"]
    text = (tmp_path / "sweep" / "anchor_sweep.txt").read_text()
    assert "kmeans" in text and "coverage" in text


def test_choosing_anchors_needs_the_embedded_set_with_frozen_backbones(prepared):
    config, data, _, setups, _ = prepared
    unfrozen = preset_config("quick", encoders=config.encoders, frozen_backbone=False)
    with pytest.raises(ConfigurationError, match="parallel-sentiment"):
        anchor_pool(unfrozen, setups)
    assert "robust+kmeans" not in preset_config("paper").methods


def test_cli_flag_runs_the_sweep(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(reproduce_run, "run_anchor_sweep", lambda config, out, overwrite: calls.append(out) or {})
    monkeypatch.setattr(reproduce_run, "format_sweep", lambda results: "the sweep")
    assert main(["reproduce", "--anchor-sweep", "--seeds", "1", "--out", "somewhere"]) == 0
    assert calls == ["somewhere"] and "the sweep" in capsys.readouterr().out
    assert main(["reproduce", "--help"]) == 0
    assert "--anchor-sweep" in capsys.readouterr().out


def test_with_anchors_keeps_the_rest_of_the_setup(prepared):
    _, data, _, setups, pool = prepared
    new_data, new_setups = with_anchors(pool, torch.tensor([3, 1, 4]), data, setups)
    assert new_data["fr"].anchor_texts == [pool.texts["fr"][i] for i in (3, 1, 4)]
    assert new_setups["en"].train_features is setups["en"].train_features
