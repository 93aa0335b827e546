"""The ``hf-relrep`` command line, run in-process on tiny local models (and against the local hub fixture)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import HfApi, hf_hub_download
from tiny_models import save_tiny_backbone
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_relrep import RelativeModelForSequenceClassification, stitch
from hf_relrep.cli import build_parser, main
from hf_relrep.experiments.reproduce import run as reproduce_run
from hf_relrep.hub import CARD_BEGIN, CARD_END
from hf_relrep.stitching.sources import state_fingerprint


ANCHORS_EN = ["a good film", "a bad film", "the plot was boring", "great acting", "terrible ending", "i love it"]
ANCHORS_FR = ["un bon film", "un mauvais film", "histoire pas bon", "très bon", "mauvais et pas fun", "la histoire"]
LABELS = {0: "negative", 1: "positive"}
FRENCH_TEXTS = ["un film très bon", "mauvais", "la histoire est pas fun"]
METRIC_KEYS = {"accuracy", "f1_weighted", "f1_macro", "mae"}


def _relative_model(backbone: Path, anchors: list[str], seed: int) -> RelativeModelForSequenceClassification:
    torch.manual_seed(seed)
    return RelativeModelForSequenceClassification.from_backbone_pretrained(
        str(backbone), anchor_texts=anchors, anchor_set_id="en-fr-test@1", id2label=LABELS, pooling="mean"
    ).eval()


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory) -> dict[str, Path]:
    """Two tiny relative models (different backbones, same parallel anchor set), saved with their tokenizers."""
    root = tmp_path_factory.mktemp("cli-models")
    english = save_tiny_backbone(root / "backbone-en", seed=1)
    french = save_tiny_backbone(root / "backbone-fr", seed=2, hidden_size=48, num_hidden_layers=1)
    folders = {}
    for name, backbone, anchors, seed in (("en", english, ANCHORS_EN, 10), ("fr", french, ANCHORS_FR, 20)):
        folder = root / f"relrep-{name}"
        _relative_model(backbone, anchors, seed).save_pretrained(folder)
        AutoTokenizer.from_pretrained(backbone).save_pretrained(folder)
        folders[name] = folder
    return folders


def _logits(model: torch.nn.Module, tokenizer_source: str | Path) -> torch.Tensor:
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    with torch.no_grad():
        return model(**tokenizer(FRENCH_TEXTS, padding=True, return_tensors="pt")).logits


def _front_matter(readme: str) -> dict:
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n")[1])


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# ---------------------------------------------------------------------------------------------------------- help


def test_help_lists_subcommands_with_examples(capsys):
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    for command in ("stitch", "push", "evaluate", "reproduce"):
        assert command in top
        assert main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert f"usage: hf-relrep {command}" in text and "example" in text


def test_module_runs_as_a_script():
    result = subprocess.run(
        [sys.executable, "-m", "hf_relrep.cli", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "stitch" in result.stdout and "evaluate" in result.stdout


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert "SUBCOMMAND" in capsys.readouterr().err
    assert main(["stitch", "--encoder", "x"]) == 2
    assert "required" in capsys.readouterr().err


def test_reproduce_subcommand_reaches_the_library(monkeypatch, capsys):
    assert "reproduce" in build_parser().format_help()
    assert main(["reproduce", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal's width
    assert "usage: hf-relrep reproduce" in text and "--overwrite" in text and "other files are kept" in text

    calls = []
    monkeypatch.setattr(
        reproduce_run,
        "run_reproduce",
        lambda config, out, overwrite, workers: calls.append((config, out, overwrite, workers)),
    )
    monkeypatch.setattr(reproduce_run, "report", lambda results: "the report")
    argv = ["reproduce", "--seeds", "3", "--methods", "robust", "--epochs", "0.5", "--out", "somewhere", "--overwrite",
            "--workers", "2"]  # fmt: skip
    assert main(argv) == 0
    ((config, out, overwrite, workers),) = calls
    assert (config.seeds, config.methods, config.epochs, out, overwrite, workers) == (
        3, ("robust",), 0.5, "somewhere", True, 2
    )  # fmt: skip
    assert capsys.readouterr().out.strip() == "the report"


# -------------------------------------------------------------------------------------------------------- stitch


def test_stitch_saves_model_tokenizer_and_card(saved_models, tmp_path, capsys):
    out = tmp_path / "stitched"
    assert (
        main(["stitch", "--encoder", str(saved_models["fr"]), "--head", str(saved_models["en"]), "--out", str(out)])
        == 0
    )
    assert str(out) in capsys.readouterr().out
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "tokenizer.json", "README.md"):
        assert (out / name).is_file(), name

    in_memory = stitch(saved_models["fr"], saved_models["en"])
    loaded = AutoModelForSequenceClassification.from_pretrained(out)
    assert type(loaded) is RelativeModelForSequenceClassification
    torch.testing.assert_close(_logits(loaded, out), _logits(in_memory, saved_models["fr"]), rtol=0, atol=0)
    assert state_fingerprint(loaded.head) == state_fingerprint(in_memory.head)
    # The encoder's tokenizer, not the head's.
    assert (
        AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(saved_models["fr"]).get_vocab()
    )

    readme = (out / "README.md").read_text()
    metadata = _front_matter(readme)
    assert "stitched" in metadata["tags"] and metadata["pipeline_tag"] == "text-classification"
    assert str(saved_models["fr"]) in readme and str(saved_models["en"]) in readme
    assert CARD_BEGIN in readme and CARD_END in readme


def test_stitch_refuses_a_non_empty_out_dir_unless_overwrite(saved_models, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = ["stitch", "--encoder", str(saved_models["fr"]), "--head", str(saved_models["en"]), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "already exists and is not empty" in err and "--overwrite" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    # --overwrite replaces only what hf-relrep wrote: a folder it did not write is refused, saying why.
    assert main([*argv, "--overwrite"]) == 2
    assert "not written by hf-relrep" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]

    ours = tmp_path / "ours"
    assert main([*argv[:-1], str(ours)]) == 0
    (ours / "notes.txt").write_text("mine")
    assert main([*argv[:-1], str(ours), "--overwrite"]) == 0
    assert (ours / "model.safetensors").is_file() and (ours / "notes.txt").read_text() == "mine"


def test_stitch_refusal_of_the_library_is_one_line(saved_models, tmp_path, capsys):
    # A relative model is not a plain backbone: stitch() raises StitchingError, the CLI prints it.
    backbone = save_tiny_backbone(tmp_path / "plain", seed=3)
    capsys.readouterr()
    argv = [
        "stitch",
        "--encoder",
        str(backbone),
        "--head",
        str(saved_models["en"]),
        "--out",
        str(tmp_path / "o"),
        "-q",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hf-relrep stitch: error: StitchingError:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_private_without_push_is_refused(saved_models, tmp_path, capsys):
    argv = ["stitch", "--encoder", str(saved_models["fr"]), "--head", str(saved_models["en"]), "--out", str(tmp_path)]
    assert main([*argv, "--private"]) == 2
    assert "--push" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------ evaluate


def test_evaluate_local_jsonl_prints_and_writes_scores(saved_models, tmp_path, capsys):
    data = _write_jsonl(
        tmp_path / "reviews.jsonl",
        [{"review": text, "stars": i % 2} for i, text in enumerate(FRENCH_TEXTS * 4)],
    )
    report = tmp_path / "scores.json"
    argv = ["evaluate", str(saved_models["fr"]), "--dataset", str(data), "--text-column", "review"]
    assert main([*argv, "--label-column", "stars", "--batch-size", "5", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "12 examples" in out
    scores = json.loads(report.read_text())
    assert set(scores["metrics"]) == METRIC_KEYS and scores["num_examples"] == 12

    # Same numbers as running the model by hand.
    model = AutoModelForSequenceClassification.from_pretrained(saved_models["fr"])
    predictions = _logits(model, saved_models["fr"]).argmax(-1).tolist() * 4
    accuracy = 100 * sum(p == i % 2 for i, p in enumerate(predictions)) / 12
    assert scores["metrics"]["accuracy"] == pytest.approx(accuracy)


def test_evaluate_maps_label_names_to_the_model_ids(saved_models, tmp_path, capsys):
    data = _write_jsonl(
        tmp_path / "test.jsonl", [{"text": t, "label": LABELS[i % 2]} for i, t in enumerate(FRENCH_TEXTS)]
    )
    assert main(["evaluate", str(saved_models["fr"]), "--dataset", str(tmp_path), "-q"]) == 0  # a folder: test split
    assert "3 examples" in capsys.readouterr().out
    _write_jsonl(data, [{"text": "un film", "label": "neutral"}])
    assert main(["evaluate", str(saved_models["fr"]), "--dataset", str(data), "-q"]) == 2
    assert "['neutral']" in capsys.readouterr().err


def test_evaluate_missing_column_exits_2_with_the_message(saved_models, tmp_path, capsys):
    data = _write_jsonl(tmp_path / "reviews.jsonl", [{"text": t} for t in FRENCH_TEXTS])
    assert main(["evaluate", str(saved_models["fr"]), "--dataset", str(data), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hf-relrep evaluate: error: DataError:")
    assert "missing column(s) ['label']" in err and "['text']" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_evaluate_missing_split_and_unknown_file(saved_models, tmp_path, capsys):
    _write_jsonl(tmp_path / "train.jsonl", [{"text": "un film", "label": 0}])
    assert main(["evaluate", str(saved_models["fr"]), "--dataset", str(tmp_path)]) == 2
    assert "no split 'test'" in capsys.readouterr().err
    assert main(["evaluate", str(saved_models["fr"]), "--dataset", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_evaluate_parallel_sentiment_needs_a_language(saved_models, tmp_path, capsys):
    argv = ["evaluate", str(saved_models["fr"]), "--dataset", "parallel-sentiment", "--split", "validation", "-q"]
    assert main(argv) == 2
    assert "--language" in capsys.readouterr().err
    report = tmp_path / "scores.json"
    assert main([*argv, "--language", "fr", "--json", str(report)]) == 0
    scores = json.loads(report.read_text())
    assert scores["num_examples"] == 500 and set(scores["metrics"]) == METRIC_KEYS


# ------------------------------------------------------------------------------------------------------ the Hub


def test_push_then_from_pretrained_gives_the_same_model_and_our_card(saved_models, local_hub, capsys):
    repo = "test-user/relrep-fr"
    assert main(["push", str(saved_models["fr"]), repo, "--message", "First upload"]) == 0
    assert repo in capsys.readouterr().out
    api = HfApi()
    files = set(api.list_repo_files(repo))
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json", "tokenizer_config.json"} <= files
    assert api.list_repo_commits(repo)[0].title == "First upload"

    local = AutoModelForSequenceClassification.from_pretrained(saved_models["fr"])
    pushed = AutoModelForSequenceClassification.from_pretrained(repo)
    torch.testing.assert_close(_logits(pushed, repo), _logits(local, saved_models["fr"]), rtol=0, atol=0)
    readme = Path(hf_hub_download(repo, "README.md")).read_text()
    assert CARD_BEGIN in readme and "automatically generated" not in readme
    assert "hf-relrep" in _front_matter(readme)["tags"]


def test_push_to_a_new_branch(saved_models, local_hub):
    repo = "test-user/relrep-en"
    assert main(["push", str(saved_models["en"]), repo]) == 0
    assert main(["push", str(saved_models["en"]), repo, "--revision", "v2"]) == 0
    assert "v2" in [branch.name for branch in HfApi().list_repo_refs(repo).branches]


def test_push_refuses_a_folder_that_is_not_a_relative_model(tmp_path, local_hub, capsys):
    backbone = save_tiny_backbone(tmp_path / "plain", seed=3)
    capsys.readouterr()
    assert main(["push", str(backbone), "test-user/plain"]) == 2
    assert "not a relative one" in capsys.readouterr().err
    assert not HfApi().repo_exists("test-user/plain")


def test_stitch_from_the_hub_and_push(saved_models, local_hub, tmp_path, capsys):
    for name in ("en", "fr"):
        assert main(["push", str(saved_models[name]), f"test-user/relrep-{name}"]) == 0
    out, repo = tmp_path / "stitched", "test-user/relrep-fr-encoder-en-head"
    argv = ["stitch", "--encoder", "test-user/relrep-fr", "--head", "test-user/relrep-en", "--out", str(out)]
    assert main([*argv, "--push", repo, "--private"]) == 0
    assert HfApi().model_info(repo).private

    pushed = AutoModelForSequenceClassification.from_pretrained(repo)
    local = AutoModelForSequenceClassification.from_pretrained(out)
    in_memory = stitch(saved_models["fr"], saved_models["en"])
    expected = _logits(in_memory, saved_models["fr"])
    torch.testing.assert_close(_logits(pushed, repo), expected, rtol=0, atol=0)
    torch.testing.assert_close(_logits(local, out), expected, rtol=0, atol=0)
    provenance = pushed.config.provenance
    assert provenance["encoder"]["source"] == "test-user/relrep-fr"
    assert provenance["encoder"]["commit"] == HfApi().model_info("test-user/relrep-fr").sha

    readme = Path(hf_hub_download(repo, "README.md")).read_text()
    assert CARD_BEGIN in readme and "automatically generated" not in readme
    assert "test-user/relrep-fr" in readme and "test-user/relrep-en" in readme
    assert _front_matter(readme)["tags"][:3] == ["hf-relrep", "relative-representations", "model-stitching"]


def test_hub_errors_are_one_line(local_hub, tmp_path, capsys):
    argv = [
        "stitch",
        "--encoder",
        "test-user/missing",
        "--head",
        "test-user/missing",
        "--out",
        str(tmp_path / "o"),
        "-q",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hf-relrep stitch: error:") and "test-user/missing" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_reproduce_bad_input_is_one_line(tmp_path, capsys):
    assert main(["reproduce", "--preset", "fast"]) == 2
    assert "Unknown preset 'fast'" in capsys.readouterr().err
    assert main(["reproduce", "--methods", "robust", "magic", "--out", str(tmp_path / "out")]) == 2
    assert "Unknown method" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    assert main(["reproduce", "--seeds", "1", "--out", str(tmp_path / "taken")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
