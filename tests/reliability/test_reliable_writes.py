"""Writes are atomic and never destroy what the program did not write.

Each sweep kills a writer just before every file-system mutation of a complete write (and a few times after random
delays) and checks that what is left is exactly the old content or exactly the new one: never a mix, never nothing,
and files the program did not write are still there.
"""

import json
import os
import random
import shutil
import time
from pathlib import Path

import pytest
import torch
from crashing import CRASHED, count_steps, leftovers, run_killed_after, run_until_step, snapshot
from tiny_models import ANCHORS_EN, ANCHORS_FR, relative_classifier
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_relrep.cli import main
from hf_relrep.errors import OutputExistsError
from hf_relrep.utils.files import OUTPUT_MARKER, atomic_folder, check_output_dir, clean_leftovers, temporary_sibling


pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="kill sweeps fork a writer")

SWAPPED = {0: "positive", 1: "negative"}


def _restore(pristine: Path, target: Path) -> None:
    for name in [target.name, *leftovers(target)]:
        shutil.rmtree(target.parent / name, ignore_errors=True)
    shutil.copytree(pristine, target, symlinks=True)


def _instants(total: int, limit: int = 16) -> list[int]:
    """Every crash instant 0..total when there are few, else an even spread that keeps both ends."""
    if total + 1 <= limit:
        return list(range(total + 1))
    return sorted({round(i * total / (limit - 1)) for i in range(limit)})


@pytest.fixture(scope="module")
def old_and_new(language_backbones):
    """Two models on one backbone whose config differs too: the labels of `new` are swapped."""
    old = relative_classifier(language_backbones[0], ANCHORS_EN, 10)
    new = relative_classifier(language_backbones[0], ANCHORS_EN, 11, id2label=SWAPPED)
    batch = AutoTokenizer.from_pretrained(language_backbones[0])(
        ["a good film", "bad"], padding=True, return_tensors="pt"
    )
    return old, new, batch


def _which(folder: Path, old, new, batch) -> str:
    loaded = AutoModelForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():
        logits = loaded(**batch).logits
        for name, model in (("old", old), ("new", new)):
            if loaded.config.id2label == model.config.id2label and torch.equal(logits, model(**batch).logits):
                return name
    raise AssertionError(f"{folder} holds neither the old model nor the new one: a mix")


def test_save_pretrained_killed_at_every_step_leaves_old_or_new(old_and_new, tmp_path):
    old, new, batch = old_and_new
    target, pristine = tmp_path / "model", tmp_path / "pristine"
    old.save_pretrained(target)
    (target / "NOTES.md").write_text("written by the user")
    shutil.copytree(target, pristine)

    def save():
        new.save_pretrained(target)

    total = count_steps(save)
    seen = set()
    for step in _instants(total):
        _restore(pristine, target)
        status = run_until_step(save, step)
        assert status in (CRASHED, 0)
        seen.add(_which(target, old, new, batch))
        assert (target / "NOTES.md").read_text() == "written by the user"
    assert seen == {"old", "new"}

    # The next save cleans what the killed writers left and leaves nothing beside the folder.
    new.save_pretrained(target)
    assert leftovers(target) == [] and _which(target, old, new, batch) == "new"


def test_save_pretrained_killed_after_random_delays_leaves_old_or_new(old_and_new, tmp_path):
    old, new, batch = old_and_new
    target, pristine = tmp_path / "model", tmp_path / "pristine"
    old.save_pretrained(target)
    shutil.copytree(target, pristine)
    started = time.perf_counter()
    new.save_pretrained(tmp_path / "timing")
    duration = time.perf_counter() - started
    rng = random.Random(0)
    for _ in range(8):
        _restore(pristine, target)
        run_killed_after(lambda: new.save_pretrained(target), rng.uniform(0.0, 1.5 * duration))
        assert _which(target, old, new, batch) in ("old", "new")


def test_save_pretrained_keeps_foreign_files_and_drops_its_own_stale_shards(old_and_new, tmp_path):
    old, new, batch = old_and_new
    target = tmp_path / "model"
    old.save_pretrained(target, max_shard_size="20KB")
    assert (target / "model.safetensors.index.json").is_file()
    (target / "runs").mkdir()
    (target / "runs" / "events.log").write_text("training log")
    (target / "README.md").write_text("my card")
    new.save_pretrained(target)
    names = sorted(p.name for p in target.iterdir())
    assert not [n for n in names if n.startswith("model-") or n.endswith(".index.json")]  # the old shards are gone
    assert (target / "runs" / "events.log").read_text() == "training log" and (target / "README.md").exists()
    assert _which(target, old, new, batch) == "new"
    with pytest.raises(OutputExistsError, match="is a file"):
        new.save_pretrained(target / "README.md")


def test_a_save_into_the_current_folder_keeps_working_there(old_and_new, tmp_path, monkeypatch):
    old, new, batch = old_and_new
    target = tmp_path / "model"
    old.save_pretrained(target)
    monkeypatch.chdir(target)
    new.save_pretrained(".")
    assert Path.cwd() == target and (Path.cwd() / "config.json").is_file()
    assert _which(target, old, new, batch) == "new"


@pytest.fixture(scope="module")
def saved_pair(language_backbones, tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    english = relative_classifier(language_backbones[0], ANCHORS_EN, 10)
    french = relative_classifier(language_backbones[1], ANCHORS_FR, 20)
    english.save_pretrained(root / "en")
    french.save_pretrained(root / "fr")
    return root / "en", root / "fr"


def test_stitch_overwrite_killed_at_every_step_leaves_old_or_new(saved_pair, tmp_path):
    english, french = saved_pair
    out, pristine = tmp_path / "stitched", tmp_path / "pristine"
    argv = ["stitch", "--head", str(english), "--out", str(out), "-q"]
    assert main([*argv, "--encoder", str(french)]) == 0
    (out / "NOTES.md").write_text("mine")
    shutil.copytree(out, pristine)
    before = snapshot(out)

    def restitch():
        main([*argv, "--encoder", str(english), "--overwrite"])

    total = count_steps(restitch)
    after = snapshot(out)
    assert after != before and after["NOTES.md"] == before["NOTES.md"]
    seen = set()
    for step in _instants(total, limit=12):
        _restore(pristine, out)
        run_until_step(restitch, step)
        state = snapshot(out)
        assert state in (before, after), f"a mix after a crash at step {step}/{total}"
        seen.add("old" if state == before else "new")
    assert seen == {"old", "new"}


def _synthetic_results(shift: float) -> dict:
    from hf_relrep.experiments.reproduce.report import summarize_scores

    keys = ("accuracy", "f1_weighted", "f1_macro", "mae")
    scores = {"robust": {h: {e: {k: [50.0 + shift, 52.0 + shift] for k in keys} for e in "en fr".split()}
                         for h in "en fr".split()}}  # fmt: skip
    return {"summary": summarize_scores(scores), "scores": scores, "runs": [], "shift": shift}


def test_reproduce_outputs_killed_at_every_step_leave_old_or_new(tmp_path):
    from hf_relrep.experiments.reproduce.run import save_outputs

    out, pristine = tmp_path / "run", tmp_path / "pristine"
    save_outputs(out, _synthetic_results(0.0), {})
    (out / "my-analysis.ipynb").write_text("{}")
    shutil.copytree(out, pristine)
    before = snapshot(out)

    def rewrite():
        save_outputs(out, _synthetic_results(5.0), {}, overwrite=True)

    total = count_steps(rewrite)
    after = snapshot(out)
    assert json.loads((out / "results.json").read_text())["shift"] == 5.0
    seen = set()
    for step in _instants(total, limit=12):
        _restore(pristine, out)
        run_until_step(rewrite, step)
        state = snapshot(out)
        assert state in (before, after), f"a mix after a crash at step {step}/{total}"
        seen.add("old" if state == before else "new")
    assert seen == {"old", "new"}


def test_overwrite_replaces_only_what_hf_relrep_wrote(tmp_path, monkeypatch):
    from hf_relrep.experiments.reproduce.run import save_outputs

    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.tex").write_text("years of work")
    # A failing run never touches the folder, and a folder hf-relrep did not write is refused up front.
    with pytest.raises(OutputExistsError, match="not empty"):
        check_output_dir(work)
    with pytest.raises(OutputExistsError, match=f"not written by hf-relrep.*{OUTPUT_MARKER}"):
        save_outputs(work, _synthetic_results(0.0), {}, overwrite=True)
    monkeypatch.chdir(work)
    with pytest.raises(OutputExistsError, match="not written by hf-relrep"):
        check_output_dir(".", overwrite=True)
    assert sorted(p.name for p in work.iterdir()) == ["thesis.tex"]

    out = tmp_path / "out"
    save_outputs(out, _synthetic_results(0.0), {})
    monkeypatch.chdir(out)
    with pytest.raises(OutputExistsError, match="current folder"):
        check_output_dir(".", overwrite=True)
    with pytest.raises(OutputExistsError, match="is a file"):
        check_output_dir(out / "results.json")


def test_a_failing_writer_leaves_the_target_untouched_and_no_temporary(tmp_path):
    target = tmp_path / "out"
    with atomic_folder(target, marker="test") as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(target, marker="test") as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("the run failed")
    assert (target / "a.txt").read_text() == "old" and leftovers(target) == []


def test_leftovers_of_dead_writers_are_cleaned_and_a_set_aside_folder_restored(tmp_path):
    target = tmp_path / "out"
    with atomic_folder(target, marker="test") as tmp:
        (tmp / "a.txt").write_text("old")
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    # What a writer killed between its two renames leaves on a system without an atomic exchange.
    stale_tmp = temporary_sibling(target).with_name(f".out.hf-tmp-{dead}-0123abcd")
    stale_tmp.mkdir()
    (stale_tmp / "a.txt").write_text("new, complete")
    os.rename(target, target.with_name(f".out.hf-old-{dead}-4567abcd"))
    assert not target.exists()
    clean_leftovers(target)
    assert (target / "a.txt").read_text() == "old" and leftovers(target) == []
    # A live writer's temporary is left alone.
    live = temporary_sibling(target)
    live.mkdir()
    clean_leftovers(target)
    assert live.is_dir()


def test_an_interrupted_model_conversion_is_cleaned_by_the_next_one(tmp_path):
    from hf_relrep.zoo import registry

    target = tmp_path / "encoders" / "multilingual-e5-small-0.3.0"

    def build_and_die(tmp):
        (tmp / "model.safetensors").write_bytes(b"\0" * 1024)
        os._exit(CRASHED)

    assert run_until_step(lambda: registry.atomic_folder(target, build_and_die), 10**9) == CRASHED
    assert len(leftovers(target)) == 1 and not target.exists()
    registry.atomic_folder(target, lambda tmp: (tmp / "config.json").write_text("{}"))
    assert leftovers(target) == [] and (target / "config.json").is_file()


def test_a_failing_reproduce_run_with_overwrite_leaves_the_old_outputs(tmp_path):
    from hf_relrep.errors import SourceNotFoundError
    from hf_relrep.experiments.reproduce.config import preset_config
    from hf_relrep.experiments.reproduce.run import run_reproduce, save_outputs

    out = tmp_path / "run"
    save_outputs(out, _synthetic_results(0.0), {})
    before = snapshot(out)
    config = preset_config("quick", encoders={"en": str(tmp_path / "missing-encoder"), "fr": str(tmp_path / "x")})
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        run_reproduce(config, out, overwrite=True)
    assert snapshot(out) == before and leftovers(out) == []
