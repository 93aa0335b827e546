"""The relative classifier's checks over a backbones × configurations matrix (peft's ``PeftCommonTester`` style).

`RelativeClassifierTester` holds the checks, each a ``_test_*`` method taking a built model; `TestClassifierMatrix`
runs every one of them on every (text family, setting) pair, one line per test. The families are the tiny backbones of
`tiny_models.TEXT_FAMILIES` (an encoder, its variants, two decoders with their padding quirks, an encoder-decoder's
encoder); the settings are not the full product of the configuration axes but one row per meaningful combination, so
that every value of every axis (representation, normalization, stats, pooling, adapter, head, similarity) runs on
every family. Models are built once per session and each test gets its own copy (`session_model`).
"""

import copy
import dataclasses
from typing import Any

import pytest
import torch
from tiny_models import TEXT_FAMILIES, TextFamily
from torch import nn
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from hf_relrep import AbsoluteStitchingWarning, RelativeModel, RelativeModelForSequenceClassification, stitch
from hf_relrep.errors import StatisticsError


LABELS = {0: "negative", 1: "neutral", 2: "positive"}
ANCHORS = [
    "a good film",
    "a bad film",
    "the plot was boring",
    "great fun",
    "i hate it",
    "a nice story",
    "not very good",
    "i love the ending",
]
TEXTS = ["the movie was great", "a boring plot", "i love it", "not very good film and a bad ending"]
FAMILIES = [family for family in TEXT_FAMILIES if family.name != "bart"]  # t5 already stands for encoder-decoders


@dataclasses.dataclass(frozen=True)
class Setting:
    """One row of configurations: `RelativeEncoderConfig` fields passed to ``from_backbone_pretrained``."""

    name: str
    fields: dict[str, Any]

    def __str__(self) -> str:
        return self.name

    def get(self, field: str, default: Any) -> Any:
        return self.fields.get(field, default)


SETTINGS = [
    # The baseline: the head reads the latent; the family's own pooling (cls, or last for decoders).
    Setting("absolute", dict(representation="absolute")),
    # Moschella et al.'s vanilla cosines, behind a trainable adapter as on a frozen backbone.
    Setting("vanilla-max-mlp", dict(normalization="none", pooling="max", adapter="mlp")),
    # What `hf-relrep reproduce` trains: robust, anchor statistics, mean pooling, MLP adapter.
    Setting("robust-anchors-mean-mlp", dict(normalization="robust", stats="anchors", pooling="mean", adapter="mlp")),
    # The paper's definition: statistics of the batch.
    Setting("robust-batch-max-linear", dict(normalization="robust", stats="batch", pooling="max", adapter="linear")),
    # The paper's released code: running estimates; an MLP head.
    Setting(
        "robust-running-last-mlphead",
        dict(normalization="robust", stats="running", pooling="last", head="mlp", head_hidden_size=16),
    ),
    # Full whitening, exact (no shrinkage): 8 anchors estimate the covariance of a 4-dimensional latent.
    Setting("whiten-mean-linear4", dict(normalization="whiten", pooling="mean", adapter="linear", adapter_size=4)),
    # Whitening on running estimates (a running covariance), shrunk: 8 anchors, 32 dimensions, no adapter.
    Setting(
        "whiten-running-shrunk-mean",
        dict(normalization="whiten", stats="running", whiten_shrinkage=0.5, pooling="mean"),
    ),
    # A product space of two similarities, MLP adapter and head.
    Setting(
        "robust-cosine+euclidean-mean",
        dict(similarity=["cosine", "euclidean"], pooling="mean", adapter="mlp", head="mlp"),
    ),
]
# Not rows: "cls" pooling under a normalization. A tiny random encoder's first token barely depends on the input (a
# decoder's is the same for every input), so normalizing it amplifies float32 rounding; the absolute row covers it.


def build(folder: str, setting: Setting, seed: int) -> RelativeModelForSequenceClassification:
    """A classifier of `setting` on the backbone in `folder`, with visible weights, in eval mode."""
    torch.manual_seed(seed)
    fields = dict(setting.fields)
    if setting.get("representation", "relative") == "relative":
        fields.update(anchor_texts=ANCHORS, anchor_set_id="matrix-anchors@1")
    tokenizer = AutoTokenizer.from_pretrained(folder)  # an absolute model, without anchors, loads none itself
    model = RelativeModelForSequenceClassification.from_backbone_pretrained(
        folder, id2label=LABELS, tokenizer=tokenizer, **fields
    )
    with torch.no_grad():  # latents and logits that vary well above float32 rounding
        for module in [*model.encoder.adapter.modules(), *model.head.modules()]:
            if isinstance(module, nn.Linear):
                module.weight.normal_(0, 1.0)
    model.encoder.clear_anchor_cache()
    if setting.get("stats", "anchors") == "running":  # something in the running estimates
        model.train()
        with torch.no_grad():
            model(**batch(model, TEXTS))
    return model.eval()


def batch(model: RelativeModelForSequenceClassification, texts: list[str]) -> dict[str, torch.Tensor]:
    """`texts` as the model's own tokenizer pads them (GPT-2's, which has no pad token, pads with eos)."""
    tokenizer = model.processor
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    return {key: encoded[key] for key in ("input_ids", "attention_mask")}


def _last_linear(adapter: nn.Module) -> nn.Linear:
    return adapter[-1] if isinstance(adapter, nn.Sequential) else adapter


def _orthogonal(dim: int, generator: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
    return q * torch.sign(torch.diagonal(r))


def latent_map(kind: str, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M, h)`` of a map ``z ↦ Mz + h`` of the group a normalization is invariant to.

    - ``"none"``: ``αU`` (α > 0, U orthogonal), no shift;
    - ``"robust"``: ``DP`` (permutation P, invertible diagonal D of both signs) and a shift h;
    - ``"whiten"``: any invertible M (condition number ≤ e²) and a shift h.
    """
    generator = torch.Generator().manual_seed(seed)
    shift = 3.0 * torch.randn(dim, generator=generator)
    if kind == "none":
        return 2.5 * _orthogonal(dim, generator), torch.zeros(dim)
    if kind == "robust":
        diag = torch.exp(torch.empty(dim).uniform_(-2.0, 2.0, generator=generator))
        diag = diag * torch.where(torch.rand(dim, generator=generator) < 0.5, -1.0, 1.0)
        return torch.diag(diag)[torch.randperm(dim, generator=generator)], shift
    scales = torch.exp(torch.linspace(-1.0, 1.0, dim))
    return _orthogonal(dim, generator) @ torch.diag(scales) @ _orthogonal(dim, generator), shift


def moved(model: RelativeModelForSequenceClassification, matrix: torch.Tensor, shift: torch.Tensor):
    """A copy of `model` whose every latent (inputs and anchors alike) is moved by ``z ↦ Mz + h``.

    The adapter's last Linear becomes ``W' = MW, b' = Mb + h``: what two networks whose activations differ by an
    intertwiner look like.
    """
    other = copy.deepcopy(model)
    layer = _last_linear(other.encoder.adapter)
    with torch.no_grad():
        layer.weight.copy_(matrix @ layer.weight)
        layer.bias.copy_(matrix @ layer.bias + shift)
    other.encoder.clear_anchor_cache()
    return other


class RelativeClassifierTester:
    """The checks every relative classifier passes, whatever its backbone and configuration."""

    def _test_forward_shapes(self, model: RelativeModelForSequenceClassification) -> None:
        config = model.config
        with torch.no_grad():
            output = model(**batch(model, TEXTS))
        assert output.logits.shape == (len(TEXTS), len(LABELS))
        assert output.latents.shape == (len(TEXTS), config.latent_size)
        if config.representation == "relative":
            parts = 1 if isinstance(config.similarity, str) else len(config.similarity)
            assert output.relative.shape == (len(TEXTS), len(ANCHORS) * parts) == (len(TEXTS), config.head_input_size)
        else:
            assert output.relative is None and config.head_input_size == config.latent_size
        assert torch.isfinite(output.logits).all()

    def _test_save_and_load_through_auto_classes(self, model, setting: Setting, tmp_path) -> None:
        inputs = batch(model, TEXTS)
        with torch.no_grad():
            expected = model(**inputs)
        model.save_pretrained(tmp_path)
        assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))

        loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
        assert type(loaded) is RelativeModelForSequenceClassification
        for field in setting.fields:
            assert getattr(loaded.config, field) == getattr(model.config, field), field
        assert loaded.config.anchor_texts == model.config.anchor_texts
        assert loaded.config.anchor_fingerprint == model.config.anchor_fingerprint
        assert loaded.config.hf_relrep_version is not None
        if model.config.representation == "relative":
            torch.testing.assert_close(loaded.encoder.anchor_input_ids, model.encoder.anchor_input_ids)
        with torch.no_grad():
            torch.testing.assert_close(loaded(**inputs).logits, expected.logits)
            encoder_side = AutoModel.from_pretrained(tmp_path)
            assert type(encoder_side) is RelativeModel
            got = encoder_side(**inputs)
        torch.testing.assert_close(got.latents, expected.latents)
        if expected.relative is not None:
            torch.testing.assert_close(got.relative, expected.relative)

    def _test_batch_of_one(self, model, setting: Setting) -> None:
        if setting.get("stats", "anchors") == "batch" and model.config.representation == "relative":
            with pytest.raises(StatisticsError, match="stats='anchors'"):
                model(**batch(model, TEXTS[:1]))
            return
        with torch.no_grad():
            single = model(**batch(model, TEXTS[:1])).logits
            in_batch = model(**batch(model, TEXTS[:1] * 2)).logits[:1]
        torch.testing.assert_close(single, in_batch)

    def _test_invariance_of_the_normalization(self, model, setting: Setting) -> None:
        config = model.config
        if config.representation == "absolute" or config.adapter == "none":
            pytest.skip("moving the latent space needs a relative model with an adapter")
        if config.stats == "running":
            pytest.skip("the running estimates were gathered in the unmoved space")
        inputs = batch(model, TEXTS)
        with torch.no_grad():
            original = model(**inputs)
            same = moved(model, *latent_map(config.normalization, config.latent_size))(**inputs)
        torch.testing.assert_close(same.relative, original.relative, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(same.logits, original.logits, atol=1e-4, rtol=1e-4)
        if config.normalization == "none":  # the control: a map of the robust group does move vanilla vectors
            with torch.no_grad():
                other = moved(model, *latent_map("robust", config.latent_size))(**inputs)
            assert (other.relative - original.relative).abs().max() > 1e-2  # 100× the tolerance above

    def _test_stitching_with_itself(self, model) -> None:
        inputs = batch(model, TEXTS)
        if model.config.representation == "absolute":
            with pytest.warns(AbsoluteStitchingWarning):
                stitched = stitch(encoder_from=model, head_from=model)
        else:
            stitched = stitch(encoder_from=model, head_from=model)
        with torch.no_grad():
            torch.testing.assert_close(stitched(**inputs).logits, model(**inputs).logits)
        assert stitched.config.provenance["encoder"]["content_sha256"].startswith("sha256:")

    def _test_gradient_reaches_every_trainable_part(self, model) -> None:
        model.train()
        labels = torch.arange(len(TEXTS)) % len(LABELS)
        model(**batch(model, TEXTS), labels=labels).loss.backward()
        trainable = {f"adapter.{n}": p for n, p in model.encoder.adapter.named_parameters()}
        trainable.update({f"head.{n}": p for n, p in model.head.named_parameters()})
        trainable["input embeddings"] = model.get_input_embeddings().weight
        for name, parameter in trainable.items():
            assert parameter.grad is not None, name
            assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, name


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one torch thread is faster, and on a shared machine two threads of small kernels spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def model(family: TextFamily, setting: Setting, text_family_folders, session_model):
    """This test's copy of the session's model of `family` × `setting`."""
    seed = 10 * FAMILIES.index(family) + SETTINGS.index(setting)
    return session_model(
        ("classifier-matrix", family.name, setting.name),
        lambda: build(str(text_family_folders[family.name]), setting, seed),
    )


@pytest.mark.parametrize("setting", SETTINGS, ids=str)
@pytest.mark.parametrize("family", FAMILIES, ids=str)
class TestClassifierMatrix(RelativeClassifierTester):
    def test_forward_shapes(self, model):
        self._test_forward_shapes(model)

    def test_save_and_load_through_auto_classes(self, model, setting, tmp_path):
        self._test_save_and_load_through_auto_classes(model, setting, tmp_path)

    def test_batch_of_one(self, model, setting):
        self._test_batch_of_one(model, setting)

    def test_invariance_of_the_normalization(self, model, setting):
        self._test_invariance_of_the_normalization(model, setting)

    def test_stitching_with_itself(self, model):
        self._test_stitching_with_itself(model)

    def test_gradient_reaches_every_trainable_part(self, model):
        self._test_gradient_reaches_every_trainable_part(model)


def test_every_value_of_every_axis_is_in_the_matrix():
    """The rows cover each configuration axis completely (the defaults count where a row leaves a field out)."""
    defaults = dict(representation="relative", normalization="robust", stats="anchors", adapter="none", head="linear")
    family_poolings = {"cls", "last"}  # what a row without pooling gets: cls for encoders, last for decoders
    axes = {
        "representation": {"relative", "absolute"},
        "normalization": {"none", "robust", "whiten"},
        "stats": {"anchors", "batch", "running"},
        "pooling": {"cls", "mean", "max", "last"},
        "adapter": {"none", "linear", "mlp"},
        "head": {"linear", "mlp"},
    }
    for axis, values in axes.items():
        seen = {setting.get(axis, defaults.get(axis)) for setting in SETTINGS}
        if None in seen:
            seen = (seen - {None}) | family_poolings
        assert seen == values, axis
