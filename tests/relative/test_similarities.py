"""Similarities of relative representations: invariances of each distance, product spaces, the config and stitching."""

import pytest
import torch
from tiny_models import ANCHORS_EN, ANCHORS_FR, relative_classifier

from hf_relrep import RelativeEncoderConfig, RelativeProjection, relative_transform, stitch
from hf_relrep.errors import ConfigurationError, StitchingError
from hf_relrep.relative.similarities import SIMILARITIES, relative_vectors, standardize_rows


def _cloud(seed: int = 0, dim: int = 10, batch: int = 7, anchors: int = 12):
    generator = torch.Generator().manual_seed(seed)
    scales = torch.rand(dim, generator=generator, dtype=torch.float64) * 3 + 0.2
    latents = torch.randn(batch, dim, generator=generator, dtype=torch.float64) * scales
    return latents, torch.randn(anchors, dim, generator=generator, dtype=torch.float64) * scales


def _rotation(dim: int, seed: int = 5) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64)).Q


def _signed_permutation(dim: int, seed: int = 6):
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(dim, generator=generator)
    sign = torch.where(torch.rand(dim, generator=generator) < 0.5, -1.0, 1.0).to(torch.float64)
    return lambda z: z[:, perm] * sign


@pytest.mark.parametrize("seed", range(5))
def test_euclidean_relative_vectors_are_invariant_to_rotations_and_shifts(seed):
    latents, anchors = _cloud(seed)
    rotation, shift = _rotation(10, seed), torch.randn(10, dtype=torch.float64) * 4

    def move(z):
        return z @ rotation + shift

    before = relative_transform(latents, anchors, normalization="none", similarity="euclidean")
    after = relative_transform(move(latents), move(anchors), normalization="none", similarity="euclidean")
    torch.testing.assert_close(after, before, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(before, -torch.cdist(latents, anchors))


@pytest.mark.parametrize("similarity", ["l1", "linf"])
def test_l1_and_linf_are_invariant_to_signed_permutations_and_shifts_but_not_rotations(similarity):
    latents, anchors = _cloud()
    signed, shift = _signed_permutation(10), torch.randn(10, dtype=torch.float64)
    before = relative_transform(latents, anchors, normalization="none", similarity=similarity)
    after = relative_transform(
        signed(latents) + shift, signed(anchors) + shift, normalization="none", similarity=similarity
    )
    torch.testing.assert_close(after, before, atol=1e-9, rtol=1e-9)
    rotated = relative_transform(
        latents @ _rotation(10), anchors @ _rotation(10), normalization="none", similarity=similarity
    )
    assert not torch.allclose(rotated, before, atol=1e-3)


@pytest.mark.parametrize("similarity", ["euclidean", "l1", "linf", ("cosine", "euclidean", "l1", "linf")])
def test_every_similarity_after_robust_keeps_the_papers_invariance(similarity):
    latents, anchors = _cloud()
    generator = torch.Generator().manual_seed(9)
    scale = torch.exp(torch.empty(10, dtype=torch.float64).uniform_(-2, 2, generator=generator))
    signed, shift = _signed_permutation(10), torch.randn(10, dtype=torch.float64) * 3

    def move(z):
        return signed(z * scale) + shift

    before = relative_transform(latents, anchors, normalization="robust", similarity=similarity)
    after = relative_transform(move(latents), move(anchors), normalization="robust", similarity=similarity)
    torch.testing.assert_close(after, before, atol=1e-8, rtol=1e-8)


def test_a_product_space_concatenates_standardized_parts_in_order():
    latents, anchors = _cloud()
    product = relative_transform(latents, anchors, normalization="robust", similarity=("euclidean", "cosine"))
    assert product.shape == (7, 24)
    euclidean = relative_transform(latents, anchors, normalization="robust", similarity="euclidean")
    cosine = relative_transform(latents, anchors, normalization="robust")
    torch.testing.assert_close(product[:, :12], standardize_rows(euclidean, 1e-5))
    torch.testing.assert_close(product[:, 12:], standardize_rows(cosine, 1e-5))
    torch.testing.assert_close(product[:, :12].mean(1), torch.zeros(7, dtype=torch.float64), atol=1e-12, rtol=0)
    # A one-name tuple is that similarity, not a one-part product.
    torch.testing.assert_close(relative_transform(latents, anchors, similarity=("cosine",)), cosine)


def test_relative_vectors_is_the_registry():
    latents, anchors = _cloud()
    assert set(SIMILARITIES) == {"cosine", "euclidean", "l1", "linf"}
    torch.testing.assert_close(relative_vectors(latents, anchors, "l1"), -torch.cdist(latents, anchors, p=1))


def test_bad_similarities_raise_configuration_errors():
    latents, anchors = _cloud()
    for bad in ("dot", (), ("cosine", "cosine"), ("cosine", "manhattan")):
        with pytest.raises(ConfigurationError):
            relative_transform(latents, anchors, similarity=bad)
        with pytest.raises(ConfigurationError):
            RelativeProjection(10, similarity=bad)


def test_the_config_sizes_the_head_and_saves_a_product_as_a_list(tmp_path, language_backbones):
    model = relative_classifier(language_backbones[0], ANCHORS_EN, 0, similarity=("cosine", "l1"))
    assert model.config.similarity == ["cosine", "l1"]
    assert model.config.head_input_size == 2 * len(ANCHORS_EN)
    assert model.head.layers.in_features == 12
    model.save_pretrained(tmp_path / "product")
    loaded = type(model).from_pretrained(tmp_path / "product")
    assert loaded.config.similarity == ["cosine", "l1"]
    batch = model.processor(["a good film", "bad"], padding=True, return_tensors="pt")
    torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits)
    assert model(**batch).relative.shape == (2, 12)
    assert RelativeEncoderConfig(similarity=["euclidean"]).similarity == "euclidean"


def test_stitching_refuses_models_built_with_different_similarities(language_backbones):
    english = relative_classifier(language_backbones[0], ANCHORS_EN, 0, similarity="euclidean")
    french = relative_classifier(language_backbones[1], ANCHORS_FR, 1)
    with pytest.raises(StitchingError, match="similarity"):
        stitch(encoder_from=french, head_from=english)
    french_euclidean = relative_classifier(language_backbones[1], ANCHORS_FR, 1, similarity="euclidean")
    stitched = stitch(encoder_from=french_euclidean, head_from=english)
    assert stitched.config.similarity == "euclidean"
