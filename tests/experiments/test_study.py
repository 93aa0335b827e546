"""`hf-relrep study`: the invariance table, batch statistics, paired intervals and the study output folders."""

import json

import pytest
import torch

from hf_relrep.cli import main
from hf_relrep.errors import ConfigurationError, OutputExistsError
from hf_relrep.experiments.study import intertwiner_agreement
from hf_relrep.experiments.study.batch_stats import batch_sensitivity, run_batch_stats
from hf_relrep.experiments.study.densification import plan, stratified_subset
from hf_relrep.experiments.study.intertwiners import TRANSFORMS, expected_invariant, in_group
from hf_relrep.experiments.study.invariance import SETTINGS, measure
from hf_relrep.experiments.study.io import prepare_out_dir
from hf_relrep.experiments.study.paired import bootstrap_interval, excludes_zero, paired_t_interval


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one torch thread is faster, and on a shared machine two threads of small kernels spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("stats", ["anchors", "batch", "running"])
def test_robust_is_blind_to_relu_intertwiners_and_vanilla_is_not(stats):
    assert intertwiner_agreement("relu", "robust", "intertwiner", stats=stats) == 1.0
    assert intertwiner_agreement("relu", "none", "intertwiner", stats=stats) < 1.0


def test_measured_invariance_matches_theory_on_one_network():
    # whitening is exact only up to the ε² ridge its Cholesky factorization adds (it matters for near-dead units)
    tolerance = {"none": 1e-9, "robust": 1e-9, "whiten": 1e-2}
    for transform in TRANSFORMS:
        for normalization, stats in SETTINGS:
            result = measure("relu", normalization, transform, stats=stats)
            if expected_invariant("relu", normalization, transform):
                assert result.agreement == 1.0, (transform, normalization, stats)
                assert result.max_delta_relative < tolerance[normalization], (transform, normalization, stats)
            else:
                assert result.max_delta_relative > 1e-2, (transform, normalization, stats)


def test_group_membership_follows_the_activation():
    assert in_group("relu", "diagonal_scaling") and not in_group("gelu", "diagonal_scaling")
    assert in_group("tanh", "sign_flip") and not in_group("relu", "sign_flip")
    assert in_group("elu", "permutation") and in_group("silu", "intertwiner")
    assert in_group("relu", "latent_rotation") is None
    # permutations are orthogonal: even vanilla removes GELU's whole group, not ReLU's
    assert expected_invariant("gelu", "none", "intertwiner") and not expected_invariant("relu", "none", "intertwiner")


def test_cli_invariance_quick_pins_relu_intertwiners(tmp_path, capsys):
    out = tmp_path / "inv"
    assert main(["study", "invariance", "--quick", "--out", str(out)]) == 0
    assert "## Intertwiner groups" in capsys.readouterr().out
    files = {p.name for p in out.iterdir()}
    assert {"results.json", "table.md", "invariance.png"} <= files and not [n for n in files if ".tmp" in n]
    saved = json.loads((out / "results.json").read_text())
    rows = {(r["activation"], r["transform"], r["normalization"], r["stats"]): r for r in saved["summary"]}
    assert {r[0] for r in rows} == {"relu", "leaky_relu", "gelu", "silu", "elu", "tanh"}
    for stats in ("anchors", "batch", "running"):
        assert rows[("relu", "intertwiner", "robust", stats)]["agreement_min"] == 1.0
    assert rows[("relu", "intertwiner", "none", "anchors")]["agreement_min"] < 1.0
    assert rows[("tanh", "intertwiner", "robust", "batch")]["agreement_min"] == 1.0
    assert rows[("relu", "latent_affine", "whiten", "anchors")]["agreement_min"] == 1.0
    assert rows[("relu", "latent_rotation", "robust", "anchors")]["agreement_min"] < 1.0
    assert all(r["agreement_min"] == 1.0 for r in saved["summary"] if r["expected_invariant"])
    assert "| relu (permutation × diagonal_scaling) |" in (out / "table.md").read_text()


def test_unknown_names_are_refused():
    with pytest.raises(ConfigurationError, match="activation"):
        intertwiner_agreement("swish", "robust", "intertwiner")
    with pytest.raises(ConfigurationError, match="transform"):
        intertwiner_agreement("relu", "robust", "shear")
    with pytest.raises(ConfigurationError, match="normalization"):
        intertwiner_agreement("relu", "robust", "intertwiner", stats="moving")


def test_batch_sensitivity_sees_only_batch_dependent_predictors():
    values = torch.linspace(-1, 1, 64)
    labels = (values > 0).long()
    by_sign = batch_sensitivity(lambda idx: (values[idx] > 0).long(), labels, batch_sizes=(2, 8), draws=4)
    by_batch_mean = batch_sensitivity(
        lambda idx: (values[idx] > values[idx].mean()).long(), labels, batch_sizes=(2, 8), draws=4
    )
    assert all(row["changed"] == 0 and row["flip_rate"] == 0 for row in by_sign.values())
    assert by_sign[2]["accuracy"] == 1.0
    assert by_batch_mean[2]["changed"] > 0.5 and by_batch_mean[2]["flip_rate"] > by_batch_mean[8]["flip_rate"]
    with pytest.raises(ConfigurationError, match="draws"):
        batch_sensitivity(lambda idx: idx, labels, draws=1)


def test_batch_stats_quick_only_batch_statistics_move(tmp_path):
    results = run_batch_stats(tmp_path / "bs", quick=True)
    rows = {(r["stats"], r["batch_size"]): r for r in results["summary"]}
    for stats in ("anchors", "running"):
        assert all(rows[(stats, size)]["native_changed"] == 0.0 for size in (2, 4, 8, 32, 128))
    assert rows[("batch", 2)]["native_changed"] > rows[("batch", 128)]["native_changed"] > 0
    assert rows[("batch", 2)]["stitched_accuracy"] < rows[("anchors", 2)]["stitched_accuracy"]
    assert {"results.json", "table.md", "batch_stats.png"} <= {p.name for p in (tmp_path / "bs").iterdir()}


def test_out_folder_of_another_kind_is_refused_and_the_same_study_continues(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="another --out"):
        prepare_out_dir(foreign, "invariance")
    assert (foreign / "notes.txt").read_text() == "mine"
    own = prepare_out_dir(tmp_path / "own", "densification")
    (own / "cell.json").write_text("{}")
    assert prepare_out_dir(own, "densification") == own
    with pytest.raises(OutputExistsError, match="densification"):
        prepare_out_dir(own, "invariance")


def test_paired_intervals():
    t = paired_t_interval([1.0, 1.2, 1.4])
    assert t["mean"] == pytest.approx(1.2) and t["low"] == pytest.approx(1.2 - 4.302653 * 0.2 / 3**0.5, rel=1e-5)
    assert excludes_zero(t) and not excludes_zero(paired_t_interval([-1.0, 1.0, 0.5]))
    assert paired_t_interval([0.3])["half_width"] == float("inf")
    boot = bootstrap_interval([0.5, 0.6, 0.7, 0.4, 0.55])
    assert 0.4 <= boot["low"] < boot["mean"] < boot["high"] <= 0.7


# ------------------------------------------------------------------------------ embedded data, tiny backbones
@pytest.fixture
def tiny_encoders(language_backbones, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_RELREP_CACHE", str(tmp_path / "cache"))  # embeddings of the tiny backbones go here
    english, french = language_backbones
    return ["--encoder-en", str(english), "--encoder-fr", str(french)]


def test_densification_quick_runs_pairs_and_continues_where_it_stopped(tiny_encoders, tmp_path, capsys):
    out = tmp_path / "dens"
    assert main(["study", "densification", "--quick", "--out", str(out), *tiny_encoders]) == 0
    printed = capsys.readouterr().out
    assert "| adapter | 250 |" in printed and str(out) in printed
    results = json.loads((out / "results.json").read_text())
    assert {(c["trainable"], c["size"]) for c in results["cells"]} == {(t, n) for t in ("head", "adapter")
                                                                         for n in (50, 250)}  # fmt: skip
    assert {"table.md", "densification.png"} <= {p.name for p in out.iterdir()}
    units = sorted((out / "units").glob("*.json"))
    assert len(units) == plan(quick=True)["units"] == 18
    for cell in results["cells"]:
        assert cell["seeds"] == 2 and set(cell["validation_gain"]) <= {"both-default", "both-strong"}
        if cell["trainable"] == "head":  # nothing before the head trains: same init, same batches, same predictions
            assert all(d == 0.0 for diff in cell["differences"].values() for d in diff["per_seed"])
    # a killed study: two units lost; the rerun recomputes them (deterministically) and reuses the others
    kept = {p.name: p.stat().st_mtime_ns for p in units[2:]}
    for lost in units[:2]:
        lost.unlink()
    assert main(["study", "densification", "--quick", "--out", str(out), *tiny_encoders]) == 0
    assert len(list((out / "units").glob("*.json"))) == 18
    assert all((out / "units" / name).stat().st_mtime_ns == mtime for name, mtime in kept.items())
    again = json.loads((out / "results.json").read_text())
    assert [c["differences"] for c in again["cells"]] == [c["differences"] for c in results["cells"]]


def test_batch_stats_on_the_embedded_data(tiny_encoders, tmp_path, language_backbones):
    english, french = language_backbones
    results = run_batch_stats(tmp_path / "bs", quick=True, text=True, encoders={"en": str(english), "fr": str(french)})
    text_rows = [r for r in results["summary"] if r["setup"].startswith("EN/FR")]
    assert {r["stats"] for r in text_rows} == {"anchors", "batch", "running"}
    for row in text_rows:
        if row["stats"] != "batch":  # the anchors' or running statistics do not see the batch
            assert row["native_changed"] == 0.0 and row["stitched_changed"] == 0.0
    assert next(r for r in text_rows if r["stats"] == "batch" and r["batch_size"] == 2)["native_changed"] > 0


def test_study_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["study", "densification", "--sizes", "10", "--out", str(tmp_path / "a")]) == 2
    assert main(["study", "densification", "--trainables", "everything", "--out", str(tmp_path / "b")]) == 2
    assert main(["study", "invariance", "--sizes", "50", "--out", str(tmp_path / "c")]) == 2
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert main(["study", "invariance", "--quick", "--out", str(tmp_path / "taken")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 4 and all(line.startswith("hf-relrep study: error: ") for line in errors)
    assert not (tmp_path / "a").exists() and (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def test_stratified_subsets_are_balanced_and_seeded():
    labels = [0] * 100 + [1] * 100
    picks = stratified_subset(labels, 50, seed=3, offset=0)
    assert len(set(picks)) == 50 and sum(labels[i] for i in picks) == 25
    assert picks == stratified_subset(labels, 50, seed=3, offset=0) != stratified_subset(labels, 50, seed=4, offset=0)


def test_validation_can_decline_to_densify(monkeypatch):
    from hf_relrep.experiments.study import densification as study

    trained = []

    def fake_unit(ctx, trainable, size, seed, setting):  # validation accuracy: robust 0.70, each setting its own
        if setting is not None and setting.is_off:
            setting = None
        trained.append(None if setting is None else setting.name)
        accuracy = 0.70 + (0.0 if setting is None else gains[setting.name])
        pairs = {f"{h}-{e}": {"accuracy": accuracy} for h, e in study.PAIRS}
        return {"scores": {"validation": pairs}}

    monkeypatch.setattr(study, "run_unit", fake_unit)
    candidates = [study.SETTINGS[name] for name in ("both-default", "post-strong", "none")]
    gains = {"both-default": -0.01, "post-strong": -0.002}  # both densified settings lose on validation
    best, measured = study.choose_setting(None, study.TRAINABLES["adapter"], 2000, candidates, range(2), lambda n: 0)
    assert best.name == "none" and measured["none"] == 0.0 and measured["post-strong"] < 0
    assert trained.count(None) == 2 and "none" not in trained  # λ = 0 reuses robust's units, trains nothing
    gains = {"both-default": -0.01, "post-strong": +0.004}
    best, _ = study.choose_setting(None, study.TRAINABLES["adapter"], 2000, candidates, range(2), lambda n: 0)
    assert best.name == "post-strong"
    with_none = plan(sizes=[100], trainables=["adapter"], settings=["post-strong", "none"], seeds=4)
    without = plan(sizes=[100], trainables=["adapter"], settings=["post-strong"], seeds=4)
    assert with_none["units"] == without["units"]  # the progress total counts only units that train
