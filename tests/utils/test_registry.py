"""One registry mechanism for every named choice: a taken name is refused, an unknown name lists the choices, and the
configs accept exactly what the registries hold (a new registration is accepted at once)."""

import pytest
import torch
from torch import nn
from transformers import BertConfig

from hf_relrep import RelativeEncoderConfig, RelativeModelForSequenceClassification, TranslatedStitchConfig
from hf_relrep.alignment.translation import TRANSLATION_METHODS, register_translation_method
from hf_relrep.anchors.selection import ANCHOR_STRATEGIES, register_anchor_strategy
from hf_relrep.configuration import REPRESENTATIONS
from hf_relrep.errors import ConfigurationError
from hf_relrep.modeling.heads import ClassificationHead
from hf_relrep.modeling.modalities import MODALITIES, TEXT
from hf_relrep.modeling.translated import ABSOLUTE_KINDS
from hf_relrep.relative.layers import ADAPTERS, HEADS
from hf_relrep.relative.normalizations import NORMALIZATIONS, STATISTICS_SOURCES, register_normalization
from hf_relrep.relative.pooling import POOLING_MODES, register_pooling
from hf_relrep.relative.similarities import SIMILARITIES, register_similarity
from hf_relrep.utils.registry import Registry


ANCHORS = ["good", "bad", "fine", "great"]


def _backbone() -> BertConfig:
    return BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)


def test_registry_refuses_a_taken_name_and_lists_the_choices():
    colours = Registry("colour")
    colours.register("red", 1)

    @colours.register("blue")
    def blue():
        return 2

    assert colours.names() == ("red", "blue") and list(colours) == ["red", "blue"] and len(colours) == 2
    assert colours["blue"] is blue and "red" in colours and "green" not in colours and ["red"] not in colours
    assert colours.get("green") is None and colours.get("red") == 1
    with pytest.raises(ConfigurationError, match="colour named 'red' is already registered"):
        colours.register("red", 3)
    with pytest.raises(ConfigurationError, match="already registered"):
        colours.register("blue")(lambda: 4)
    assert colours["red"] == 1  # the refused registration replaced nothing
    with pytest.raises(ConfigurationError, match=r"Unknown colour 'green'; choose one of 'red', 'blue'\."):
        colours["green"]
    with pytest.raises(ConfigurationError, match=r"Unknown shade 'green'"):
        colours.check("green", what="shade")
    with pytest.raises(ConfigurationError, match="non-empty string"):
        colours.register("", 5)
    assert colours.unregister("red") == 1 and colours.names() == ("blue",)
    with pytest.raises(TypeError):
        colours["yellow"] = 6  # read-only: entries come in through register


@pytest.mark.parametrize(
    "register",
    [
        lambda: register_similarity("cosine")(lambda *args, **kwargs: None),
        lambda: register_anchor_strategy("random")(lambda *args, **kwargs: None),
        lambda: register_translation_method("orthogonal")(lambda source, target: None),
        lambda: register_pooling("cls")(lambda *args, **kwargs: None),
        lambda: register_normalization("robust")(lambda *args, **kwargs: None),
        lambda: ADAPTERS.register("mlp", lambda in_size, out_size: None),
        lambda: HEADS.register("linear", lambda in_size, num_labels, hidden_size: None),
        lambda: MODALITIES.register("text", TEXT),
    ],
    ids=["similarity", "anchor strategy", "translation", "pooling", "normalization", "adapter", "head", "modality"],
)
def test_library_registries_refuse_taken_names(register):
    with pytest.raises(ConfigurationError, match="already registered"):
        register()


def test_the_config_accepts_what_each_registry_holds_and_lists_it_when_refusing():
    registries = RelativeEncoderConfig.registries()
    assert registries == {
        "pooling": POOLING_MODES,
        "adapter": ADAPTERS,
        "representation": REPRESENTATIONS,
        "normalization": NORMALIZATIONS,
        "stats": STATISTICS_SOURCES,
        "head": HEADS,
    }
    for setting, registry in registries.items():
        for name in registry:
            config = RelativeEncoderConfig(backbone=_backbone(), anchor_texts=ANCHORS, **{setting: name})
            assert getattr(config, setting) == name
        with pytest.raises(ConfigurationError, match=f"Unknown {setting} 'nope'; choose one of {registry.choices()}"):
            RelativeEncoderConfig(backbone=_backbone(), anchor_texts=ANCHORS, **{setting: "nope"})
    assert POOLING_MODES.names() == ("cls", "mean", "max", "last", "pooler")
    assert NORMALIZATIONS.names() == ("none", "robust", "whiten")
    assert STATISTICS_SOURCES.names() == ("anchors", "batch", "running")
    assert ADAPTERS.names() == ("none", "linear", "mlp") and HEADS.names() == ("linear", "mlp")
    assert set(SIMILARITIES) == {"cosine", "euclidean", "l1", "linf"}
    assert ANCHOR_STRATEGIES.names() == ("random", "stratified", "fps", "kmeans")


def test_a_new_pooling_is_accepted_by_the_config_and_runs_in_the_model():
    @register_pooling("second-token")
    def second_token(outputs, attention_mask, *, prefix_tokens=0):
        return outputs.last_hidden_state[:, 1]

    try:
        config = RelativeEncoderConfig(backbone=_backbone(), anchor_texts=ANCHORS, pooling="second-token")
        model = RelativeModelForSequenceClassification(config).eval()
        model.encoder.anchor_attention_mask.fill_(1)
        seen = []
        model.encoder.backbone.register_forward_hook(lambda module, args, output: seen.append(output))
        latents = model.encoder(input_ids=torch.tensor([[1, 2, 3], [4, 5, 6]])).latents
        assert torch.equal(latents, seen[0].last_hidden_state[:, 1])  # the inputs run first, then the anchors
    finally:
        POOLING_MODES.unregister("second-token")
    with pytest.raises(ConfigurationError, match="Unknown pooling 'second-token'"):
        RelativeEncoderConfig(backbone=_backbone(), anchor_texts=ANCHORS, pooling="second-token")


def test_a_new_head_and_similarity_are_accepted_by_the_config():
    HEADS.register(
        "bilinear-free", lambda in_size, num_labels, hidden_size: nn.Linear(in_size, num_labels, bias=False)
    )

    @register_similarity("dot")
    def dot(latents, anchors, *, eps, normalized):
        return latents @ anchors.T

    try:
        config = RelativeEncoderConfig(
            backbone=_backbone(), anchor_texts=ANCHORS, head="bilinear-free", similarity=["cosine", "dot"]
        )
        head = ClassificationHead(config)
        assert isinstance(head.layers, nn.Linear) and head.layers.bias is None
        assert head.layers.in_features == 2 * len(ANCHORS)
    finally:
        HEADS.unregister("bilinear-free")
        SIMILARITIES.unregister("dot")


def test_translated_stitch_config_accepts_the_registered_methods_and_kinds():
    for method in TRANSLATION_METHODS:
        assert TranslatedStitchConfig(translation=method).translation == method
    with pytest.raises(ConfigurationError, match="orthogonal"):
        TranslatedStitchConfig(translation="nope")
    for kind in ABSOLUTE_KINDS:
        assert TranslatedStitchConfig(encoder_kind=kind, head_kind=kind).encoder_kind == kind
    with pytest.raises(ConfigurationError, match="first-token"):
        TranslatedStitchConfig(encoder_kind="nope")
