"""The shape of stitching: `stitch` returns relative classifiers and `stitch_translated` translated stitches, each
with only its own parameters; the 0.1 spelling ``stitch(..., translation=...)`` still works with a FutureWarning; the
modules of hf_relrep.stitching import downward only (relative and translated never import each other)."""

import ast
import inspect
from pathlib import Path

import pytest
import torch
from tiny_models import ANCHORS_EN, relative_classifier
from transformers import BertConfig

import hf_relrep
from hf_relrep import TranslatedModelForSequenceClassification, TranslatedStitchConfig
from hf_relrep.configuration import ABSOLUTE_KIND_NAMES
from hf_relrep.errors import ConfigurationError, StitchingError
from hf_relrep.modeling import RelativeClassifierBase
from hf_relrep.modeling.translated import ABSOLUTE_KINDS
from hf_relrep.stitching import relative, stitch_translated, stitch_with_translation
from hf_relrep.stitching.sources import state_fingerprint


STITCHING = Path(hf_relrep.__file__).parent / "stitching"
TRANSLATION_ONLY = {"translation", "anchors", "anchor_latents", "anchor_set_id", "encoder_tokenizer", "head_tokenizer"}


def _imported_stitching_modules(name: str) -> set[str]:
    """The hf_relrep.stitching modules that ``stitching/<name>.py`` imports anywhere in the file (relative imports
    ``from .x import ...`` and ``from . import x``, and absolute ones)."""
    tree = ast.parse((STITCHING / f"{name}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found |= {node.module} if node.module else {alias.name for alias in node.names}
            elif node.level == 0 and (node.module or "").startswith("hf_relrep.stitching."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("hf_relrep.stitching.")}
    return found


def test_relative_and_translated_stitching_never_import_each_other():
    assert "translated" not in _imported_stitching_modules("relative")
    assert "relative" not in _imported_stitching_modules("translated")
    # The floor below imports nothing above it; the comparison reads only that floor.
    assert _imported_stitching_modules("sources") == set()
    assert _imported_stitching_modules("latents") == {"sources"}
    assert _imported_stitching_modules("comparison") <= {"sources", "latents"}


def test_each_function_takes_only_its_own_parameters():
    relative_parameters = set(inspect.signature(relative.stitch).parameters)
    assert relative_parameters.isdisjoint(TRANSLATION_ONLY)
    assert relative_parameters >= {"encoder_revision", "head_revision", "token", "share_weights", "report"}
    assert set(inspect.signature(stitch_translated).parameters) >= TRANSLATION_ONLY
    # The public stitch shows the relative signature, and says it returns a relative classifier.
    assert inspect.signature(hf_relrep.stitch) == inspect.signature(relative.stitch)
    assert inspect.signature(relative.stitch).return_annotation is RelativeClassifierBase
    assert inspect.signature(stitch_translated).return_annotation is TranslatedModelForSequenceClassification
    with pytest.raises(TypeError, match="translation"):
        relative.stitch(None, None, translation="orthogonal")


def test_the_old_spelling_warns_and_gives_what_stitch_translated_gives(language_backbones):
    english = relative_classifier(language_backbones[0], None, 1, representation="absolute")
    other = relative_classifier(language_backbones[0], None, 2, representation="absolute")
    latents = (torch.randn(40, 32, generator=torch.Generator().manual_seed(0)), torch.randn(40, 32))
    new = stitch_translated(english, other, translation="linear", anchor_latents=latents, anchor_set_id="a@1")
    with pytest.warns(FutureWarning, match="stitch_translated"):
        old = hf_relrep.stitch(english, other, translation="linear", anchor_latents=latents, anchor_set_id="a@1")
    assert isinstance(old, TranslatedModelForSequenceClassification)
    assert state_fingerprint(old) == state_fingerprint(new)
    assert old.config.to_dict() == new.config.to_dict()
    with pytest.warns(FutureWarning, match="stitch_translated"):
        renamed = stitch_with_translation(english, other, translation="linear", anchor_latents=latents)
    assert state_fingerprint(renamed) == state_fingerprint(new)


def test_the_public_stitch_of_relative_models_warns_nothing(language_models, recwarn):
    english, french = language_models
    stitched = hf_relrep.stitch(french, english, translation=None, anchors=None)  # 0.1 defaults, spelled out
    assert isinstance(stitched, RelativeClassifierBase)
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]
    assert state_fingerprint(stitched) == state_fingerprint(relative.stitch(french, english))


def test_a_stitching_warning_points_at_the_caller_through_any_path(language_backbones):
    english = relative_classifier(language_backbones[0], None, 1, representation="absolute")
    other = relative_classifier(language_backbones[0], None, 2, representation="absolute")
    for stitch in (hf_relrep.stitch, relative.stitch):
        with pytest.warns(relative.AbsoluteStitchingWarning) as caught:
            stitch(english, other)
        assert [w.filename for w in caught] == [__file__]
    with pytest.warns(relative.AbsoluteStitchingWarning) as caught:
        relative.check_stitchable(english.config, other.config)
    assert [w.filename for w in caught] == [__file__]


def test_anchors_without_a_translation_point_to_stitch_translated(language_backbones):
    model = relative_classifier(language_backbones[0], ANCHORS_EN, 1)
    with pytest.raises(StitchingError, match="anchor_latents=.*stitch_translated"):
        hf_relrep.stitch(model, model, anchor_latents=(torch.zeros(6, 32), torch.zeros(6, 32)))


def test_the_config_knows_the_kinds_the_model_splits():
    assert ABSOLUTE_KINDS.names() == ABSOLUTE_KIND_NAMES
    with pytest.raises(ConfigurationError, match="encoder_kind"):
        TranslatedStitchConfig(encoder=BertConfig(), head=BertConfig(), encoder_kind="last-token")
    with pytest.raises(ConfigurationError, match="translation"):
        TranslatedStitchConfig(encoder=BertConfig(), head=BertConfig(), translation="rotation")
    with pytest.raises(ConfigurationError, match="absolute classifier kind"):
        ABSOLUTE_KINDS.register("pooled", ABSOLUTE_KINDS["pooled"])
