"""The usage text of ``hf-relrep`` is written without importing the library: what it names must be the library's."""

import dataclasses
import inspect

import pytest

import hf_relrep.cli
from hf_relrep.cli import base, build_parser, experiment_parsers, main
from hf_relrep.evaluation import PARALLEL_SENTIMENT
from hf_relrep.experiments import reproduce, study
from hf_relrep.experiments.reproduce import vision


def _subcommand(name: str):
    (subparsers,) = [action for action in build_parser()._actions if action.dest == "command"]
    return subparsers.choices[name]


def test_the_names_in_the_usage_are_the_experiments_own():
    assert tuple(reproduce.PRESETS) == experiment_parsers.REPRODUCE_PRESETS
    assert tuple(reproduce.METHODS) == experiment_parsers.REPRODUCE_METHODS
    assert tuple(vision.VISION_METHODS) == experiment_parsers.VISION_METHODS
    assert tuple(study.STUDIES) == experiment_parsers.STUDIES
    assert base.PARALLEL_SENTIMENT == PARALLEL_SENTIMENT


def test_the_vision_defaults_are_the_config_defaults():
    defaults = vision.VisionStitchingConfig()
    assert {field: getattr(defaults, field) for field in experiment_parsers.VISION_DEFAULTS} == (
        experiment_parsers.VISION_DEFAULTS
    )
    args = _subcommand("reproduce-vision").parse_args([])
    assert (tuple(args.seeds), tuple(args.methods), tuple(args.epochs), args.anchors, args.threads) == (
        defaults.seeds,
        defaults.methods,
        defaults.epochs,
        defaults.num_anchors,
        defaults.threads,
    )
    assert {f.name for f in dataclasses.fields(vision.VisionStitchingConfig)} >= set(
        experiment_parsers.VISION_DEFAULTS
    )


def test_the_descriptions_are_the_module_docstrings():
    assert _subcommand("reproduce").description == inspect.getdoc(reproduce).strip()
    assert _subcommand("reproduce-vision").description == inspect.getdoc(vision).strip()


def test_every_subcommand_names_a_handler_that_exists():
    for name in ("stitch", "push", "evaluate", "reproduce", "reproduce-vision", "study"):
        target = _subcommand(name).get_default("handler")
        assert callable(base.load_handler(target)), target


@pytest.mark.parametrize(("missing", "extra"), [("matplotlib", "experiments"), ("sklearn", "vision")])
def test_a_missing_optional_package_names_the_extra(monkeypatch, capsys, missing, extra):
    def load_handler(target):
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)

    monkeypatch.setattr(hf_relrep.cli, "load_handler", load_handler)
    assert main(["reproduce"]) == 2
    error = capsys.readouterr().err
    assert f"needs {missing}" in error and f"pip install 'hf-relrep[{extra}]'" in error
    assert len(error.strip().splitlines()) == 1
