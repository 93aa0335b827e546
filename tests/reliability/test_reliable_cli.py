"""Every failure of the command line is one line on stderr: exit 2 with the problem and the fix for a user error, exit 1
with where the traceback went for a bug, exit 130 when interrupted; never a traceback on the terminal."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import ANCHORS_EN, ANCHORS_FR, relative_classifier, save_tiny_backbone

from hf_relrep.cli import main, model_commands


@pytest.fixture(scope="module")
def saved(language_backbones, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-models")
    english = relative_classifier(language_backbones[0], ANCHORS_EN, 10)
    french = relative_classifier(language_backbones[1], ANCHORS_FR, 20)
    five = relative_classifier(language_backbones[1], ANCHORS_FR[:5], 30)
    for name, model in (("en", english), ("fr", french), ("five", five)):
        model.save_pretrained(root / name)
    (root / "empty").mkdir()
    for name, damage in (("truncated", "weights"), ("bad-json", "config")):
        english.save_pretrained(root / name)
        if damage == "weights":
            data = (root / name / "model.safetensors").read_bytes()
            (root / name / "model.safetensors").write_bytes(data[: len(data) // 2])
        else:
            (root / name / "config.json").write_text("{not json")
    (root / "a-file.txt").write_text("not a folder")
    data = root / "data.jsonl"
    data.write_text("\n".join(json.dumps({"text": t, "label": i % 2}) for i, t in enumerate(ANCHORS_EN)) + "\n")
    return root


def _fails_in_one_line(argv, capsys, *, status=2, expect=()):
    assert main(argv) == status
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for text in expect:
        assert text in err, err
    return err


def _stitch(saved, encoder="fr", head="en", out=None, *extra):
    encoder = encoder if "/" in encoder else str(saved / encoder)
    return [
        "stitch",
        "--encoder",
        encoder,
        "--head",
        str(saved / head),
        "--out",
        str(out or saved / "out"),
        "-q",
        *extra,
    ]


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("out-is-a-file", ["a-file.txt is a file"]),
        ("missing-encoder-folder", ["does not exist"]),
        ("folder-that-is-no-model", ["no config.json"]),
        ("truncated-weights", ["cannot be read", "save the model again"]),
        ("config-not-json", ["cannot be read"]),
        ("private-without-push", ["--push"]),
        ("anchor-sets-differ", ["anchors"]),
        ("overwrite-a-foreign-folder", ["not written by hf-relrep"]),
    ],
)
def test_stitch_errors(saved, tmp_path, capsys, case, expect):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    argv = {
        "out-is-a-file": _stitch(saved, out=saved / "a-file.txt"),
        "missing-encoder-folder": _stitch(saved, encoder=str(tmp_path / "nope")),
        "folder-that-is-no-model": _stitch(saved, encoder="empty", out=tmp_path / "o"),
        "truncated-weights": _stitch(saved, encoder="truncated", out=tmp_path / "o"),
        "config-not-json": _stitch(saved, encoder="bad-json", out=tmp_path / "o"),
        "private-without-push": [*_stitch(saved, out=tmp_path / "o"), "--private"],
        "anchor-sets-differ": _stitch(saved, encoder="five", out=tmp_path / "o"),
        "overwrite-a-foreign-folder": [*_stitch(saved, out=foreign), "--overwrite"],
    }[case]
    _fails_in_one_line(argv, capsys, expect=["hf-relrep stitch: error:", *expect])
    assert (foreign / "thesis.tex").read_text() == "mine" and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("folder-that-is-no-model", ["empty", "config.json"]),
        ("malformed-repo-id", ["HFValidationError", "not a valid id"]),
        ("config-not-json", ["cannot be read"]),
    ],
)
def test_push_errors(saved, capsys, case, expect):
    argv = {
        "folder-that-is-no-model": ["push", str(saved / "empty"), "me/model", "-q"],
        "malformed-repo-id": ["push", str(saved / "en"), "not a valid id!!", "-q"],
        "config-not-json": ["push", str(saved / "bad-json"), "me/model", "-q"],
    }[case]
    _fails_in_one_line(argv, capsys, expect=["hf-relrep push: error:", *expect])


def test_push_with_the_hub_unreachable_is_one_line(local_hub, saved, capsys):
    local_hub.stop()
    try:
        _fails_in_one_line(
            ["push", str(saved / "en"), "test-user/model", "-q"], capsys, expect=["cannot reach the Hub"]
        )
    finally:
        local_hub.start()


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("folder-that-is-no-model", ["no config.json"]),
        ("truncated-weights", ["cannot be read"]),
        ("missing-dataset-argument", ["--dataset", "--help"]),
        ("missing-dataset-file", ["no such file"]),
        ("unknown-device", ["--device"]),
        ("json-is-a-folder", ["--json", "is a folder"]),
        ("batch-size-zero", ["--batch-size"]),
        ("missing-tokenizer-folder", ["does not exist"]),
        ("unknown-option", ["--frobnicate", "--help"]),
    ],
)
def test_evaluate_errors(saved, tmp_path, capsys, case, expect):
    base = ["evaluate", str(saved / "en"), "--dataset", str(saved / "data.jsonl"), "--split", "train", "-q"]
    argv = {
        "folder-that-is-no-model": ["evaluate", str(saved / "empty"), "--dataset", str(saved / "data.jsonl"), "-q"],
        "truncated-weights": [
            "evaluate",
            str(saved / "truncated"),
            "--dataset",
            str(saved / "data.jsonl"),
            "-q",
            "--split",
            "train",
        ],  # fmt: skip
        "missing-dataset-argument": ["evaluate", str(saved / "en")],
        "missing-dataset-file": ["evaluate", str(saved / "en"), "--dataset", str(tmp_path / "none.csv")],
        "unknown-device": [*base, "--device", "tpu9"],
        "json-is-a-folder": [*base, "--json", str(tmp_path)],
        "batch-size-zero": [*base, "--batch-size", "0"],
        "missing-tokenizer-folder": [*base, "--tokenizer", str(tmp_path / "no-tokenizer")],
        "unknown-option": [*base, "--frobnicate"],
    }[case]
    prefix = "hf-relrep: error:" if case == "unknown-option" else "hf-relrep evaluate: error:"
    _fails_in_one_line(argv, capsys, expect=[prefix, *expect])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_evaluate_on_cuda_without_cuda_is_one_line(saved, capsys):
    argv = ["evaluate", str(saved / "en"), "--dataset", str(saved / "data.jsonl"), "--device", "cuda"]
    _fails_in_one_line(argv, capsys, expect=["no CUDA device", "--device cpu"])


@pytest.mark.parametrize("epochs", ["nan", "0", "-1", "inf"])
def test_reproduce_refuses_epochs_that_train_nothing(tmp_path, capsys, epochs):
    argv = ["reproduce", f"--epochs={epochs}", "--out", str(tmp_path / "out")]
    _fails_in_one_line(argv, capsys, expect=["epochs must be a finite number > 0"])
    assert not (tmp_path / "out").exists()


def test_reproduce_encoder_errors(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    _fails_in_one_line(["reproduce", "--out", str(tmp_path / "file")], capsys, expect=["is a file"])
    pickled = save_tiny_backbone(tmp_path / "pickled")
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    capsys.readouterr()
    base = ["reproduce", "--seeds", "1", "--methods", "robust", "--out", str(tmp_path / "out")]
    _fails_in_one_line([*base, "--encoder-en", str(tmp_path / "nope")], capsys, expect=["does not exist"])
    _fails_in_one_line([*base, "--encoder-en", str(pickled)], capsys, expect=["pickle", "--allow-pickle"])
    assert not (tmp_path / "out").exists()


def test_a_bug_is_one_line_with_the_traceback_in_a_file(saved, tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom: an invariant broke")

    monkeypatch.setattr(model_commands, "stitch", broken)
    monkeypatch.delenv("HF_RELREP_DEBUG", raising=False)
    err = _fails_in_one_line(_stitch(saved, out=tmp_path / "o"), capsys, status=1, expect=["internal error", "boom"])
    path = Path(err.split("traceback is in ")[1].split(";")[0])
    assert "RuntimeError: boom" in path.read_text() and "Traceback" in path.read_text()
    path.unlink()
    with pytest.raises(RuntimeError, match="boom"):  # --debug shows the traceback itself
        main(["--debug", *_stitch(saved, out=tmp_path / "o")])
    with pytest.raises(RuntimeError, match="boom"):
        main([*_stitch(saved, out=tmp_path / "o"), "--debug"])


def test_ctrl_c_is_one_line(saved, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(model_commands, "stitch", interrupted)
    _fails_in_one_line(_stitch(saved, out=tmp_path / "o"), capsys, status=130, expect=["interrupted"])
    assert not (tmp_path / "o").exists()


def test_a_value_argparse_cannot_read_is_one_line(capsys):
    _fails_in_one_line(["reproduce", "--epochs", "abc"], capsys, expect=["--epochs", "invalid float value"])
