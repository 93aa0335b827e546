"""The public surface: the curated top level, the errors in `hf_relrep.errors`, and the deprecation paths of the names
and modules that moved (each still works, with a `FutureWarning` that names the new place)."""

import ast
import importlib
import inspect
import sys
from pathlib import Path

import pytest

import hf_relrep
from hf_relrep import errors
from hf_relrep.utils.moved_modules import MOVED_MODULES, new_name


CURATED = {
    "__version__",
    "RelRepError",
    # models and configurations
    "RelativeEncoderConfig",
    "TranslatedStitchConfig",
    "RelativeModel",
    "RelativeModelForSequenceClassification",
    "RelativeModelForImageClassification",
    "RelativeModelForAudioClassification",
    "TranslatedModelForSequenceClassification",
    # trainer
    "TopoTrainer",
    "TopoTrainingArguments",
    "DensificationLoss",
    # main functions
    "relative_transform",
    "RelativeProjection",
    "select_anchors",
    "death_times",
    "death_times_by_class",
    "densification_loss",
    "stitch",
    "stitch_translated",
    "check_stitchable",
    "compare_spaces",
    "AbsoluteStitchingWarning",
    "compare_latents",
    "cka",
    "knn_jaccard",
    "fit_translation",
    "LatentTranslation",
    "EmbeddingAlignment",
    "AlignmentQualityWarning",
}
DEPRECATED = {
    "pool": "hf_relrep.relative",
    "compute_statistics": "hf_relrep.relative",
    "NormalizationStatistics": "hf_relrep.relative",
    "anchor_fingerprint": "hf_relrep.anchors",
    "plot_death_time_histograms": "hf_relrep.utils.plotting",
    "ClassBalancedBatchSampler": "hf_relrep.training",
    "RelativeModelOutput": "hf_relrep.modeling",
    "RelativeSequenceClassifierOutput": "hf_relrep.modeling",
}
TYPED_ERRORS = sorted(
    name for name, value in vars(errors).items() if inspect.isclass(value) and issubclass(value, errors.RelRepError)
)


def test_the_top_level_is_the_curated_api():
    assert set(hf_relrep.__all__) == CURATED
    assert len(hf_relrep.__all__) == len(set(hf_relrep.__all__))


def test_everything_in_all_resolves_without_a_warning(recwarn):
    for name in hf_relrep.__all__:
        assert getattr(hf_relrep, name) is not None, name
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]
    assert set(hf_relrep.__all__) <= set(dir(hf_relrep))


def test_what_type_checkers_see_is_the_lazy_table():
    """The ``if TYPE_CHECKING:`` imports of ``hf_relrep/__init__.py`` name the same objects, from the same modules."""
    tree = ast.parse(Path(hf_relrep.__file__).read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    static = {alias.name: "." * node.level + (node.module or "") for node in block.body for alias in node.names}
    assert static == hf_relrep._EXPORTS


def test_every_typed_error_lives_in_errors_and_the_base_stays_at_the_top():
    assert len(TYPED_ERRORS) >= 17 and "RelRepError" in TYPED_ERRORS
    assert hf_relrep.RelRepError is errors.RelRepError
    assert [name for name in TYPED_ERRORS if name in hf_relrep.__all__] == ["RelRepError"]


@pytest.mark.parametrize("name", [name for name in TYPED_ERRORS if name != "RelRepError"])
def test_an_error_from_the_top_level_still_works_with_a_future_warning(name):
    with pytest.warns(FutureWarning, match=rf"hf_relrep\.errors\.{name}\b"):
        value = getattr(hf_relrep, name)
    assert value is getattr(errors, name) and issubclass(value, errors.RelRepError)


@pytest.mark.parametrize(("name", "module"), sorted(DEPRECATED.items()))
def test_a_helper_that_left_the_top_level_still_works_with_a_future_warning(name, module):
    with pytest.warns(FutureWarning, match=rf"{module}\.{name}\b"):
        value = getattr(hf_relrep, name)
    assert value is getattr(importlib.import_module(module), name)


def test_from_import_of_a_deprecated_name_warns():
    with pytest.warns(FutureWarning, match=r"hf_relrep\.errors\.AnchorError"):
        from hf_relrep import AnchorError  # noqa: F401


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        hf_relrep.nothing_here  # noqa: B018


@pytest.mark.parametrize(("old", "new"), sorted(MOVED_MODULES.items()))
def test_a_moved_module_imports_from_its_old_path_with_a_future_warning(old, new, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)
    monkeypatch.delitem(vars(hf_relrep), old.rpartition(".")[2], raising=False)
    with pytest.warns(FutureWarning, match=rf"{old} moved to {new}\b") as caught:
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert all("moved_modules" not in w.filename for w in caught)  # it points at the import, not at the finder


def test_a_submodule_of_a_moved_package_is_the_same_module(monkeypatch):
    for name in ("hf_relrep.reproduce", "hf_relrep.reproduce.config"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.warns(FutureWarning) as caught:
        from hf_relrep.reproduce.config import METHODS
    assert [str(w.message).split(";")[0] for w in caught] == [
        "hf_relrep.reproduce moved to hf_relrep.experiments.reproduce",
        "hf_relrep.reproduce.config moved to hf_relrep.experiments.reproduce.config",
    ]
    from hf_relrep.experiments.reproduce import config

    assert sys.modules["hf_relrep.reproduce.config"] is config and METHODS is config.METHODS
    assert new_name("hf_relrep.reproduce.config") == "hf_relrep.experiments.reproduce.config"
    assert new_name("hf_relrep.relative.projection") is None and new_name("hf_relrep.reproducer") is None


def test_a_moved_module_as_an_attribute_of_the_package(monkeypatch):
    monkeypatch.delitem(vars(hf_relrep), "projection", raising=False)
    with pytest.warns(FutureWarning, match=r"hf_relrep\.projection moved to hf_relrep\.relative\.projection"):
        module = hf_relrep.projection
    assert module is importlib.import_module("hf_relrep.relative.projection")


def test_one_version_from_the_package_metadata():
    from importlib.metadata import version

    assert hf_relrep.__version__ == version("hf-relrep")
