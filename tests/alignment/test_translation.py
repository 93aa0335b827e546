"""Latent translation: exact recovery of known maps on held-out points, saving, rebuilding, bad input."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from hf_relrep import LatentTranslation, fit_translation
from hf_relrep.alignment.translation import TRANSLATION_METHODS
from hf_relrep.errors import AnchorError, ConfigurationError, NonFiniteError


METHODS = ("orthogonal", "linear", "affine")


def _source(seed: int = 0, rows: int = 400, dim: int = 16) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    scales = torch.rand(dim, generator=generator, dtype=torch.float64) * 3 + 0.2
    return torch.randn(rows, dim, generator=generator, dtype=torch.float64) * scales + 4.0


def _orthonormal_columns(dim_out: int, dim_in: int, seed: int = 1) -> torch.Tensor:
    """``[dim_out, dim_in]`` Q with QᵀQ = I (dim_in ≤ dim_out)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(dim_out, dim_out, generator=generator, dtype=torch.float64)).Q[:, :dim_in]


def _split(x: torch.Tensor, y: torch.Tensor, anchors: int = 100):
    return (x[:anchors], y[:anchors]), (x[anchors:], y[anchors:])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("target_dim", [16, 24])
def test_recovers_an_orthogonal_map_with_isotropic_scale_and_shift(method, target_dim):
    x = _source()
    shift = torch.linspace(-3, 3, target_dim, dtype=torch.float64)
    y = 2.5 * x @ _orthonormal_columns(target_dim, 16).T + shift
    (anchors_x, anchors_y), (held_x, held_y) = _split(x, y)
    translation = fit_translation(anchors_x, anchors_y, method=method)
    torch.testing.assert_close(translation(held_x), held_y, atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", ["linear", "affine"])
@pytest.mark.parametrize("target_dim", [8, 16, 24])
def test_recovers_a_general_linear_or_affine_map_across_dimensions(method, target_dim):
    x = _source()
    generator = torch.Generator().manual_seed(7)
    matrix = torch.randn(target_dim, 16, generator=generator, dtype=torch.float64)
    y = x @ matrix.T + torch.randn(target_dim, generator=generator, dtype=torch.float64) * 10
    (anchors_x, anchors_y), (held_x, held_y) = _split(x, y)
    translation = fit_translation(anchors_x, anchors_y, method=method)
    torch.testing.assert_close(translation(held_x), held_y, atol=1e-4, rtol=0)


def test_orthogonal_cannot_fit_a_non_isometric_map_but_linear_can():
    x = _source()
    y = x * torch.linspace(0.1, 5.0, 16, dtype=torch.float64)  # anisotropic rescaling: not a rotation
    (anchors_x, anchors_y), (held_x, held_y) = _split(x, y)
    orthogonal = (fit_translation(anchors_x, anchors_y, method="orthogonal")(held_x) - held_y).abs().max()
    linear = (fit_translation(anchors_x, anchors_y, method="linear")(held_x) - held_y).abs().max()
    assert linear < 1e-8 < 0.1 < orthogonal


def test_orthogonal_weight_is_semi_orthogonal_and_the_rest_is_as_documented():
    x = _source(dim=16)
    y = 3.0 * x @ _orthonormal_columns(24, 16).T
    translation = fit_translation(x, y)
    weight = translation.weight
    assert weight.shape == (24, 16)
    torch.testing.assert_close(weight.T @ weight, torch.eye(16, dtype=weight.dtype), atol=1e-10, rtol=0)
    assert float(translation.target_scale / translation.source_scale) == pytest.approx(3.0)
    torch.testing.assert_close(translation.source_mean, x.mean(0))


def test_float32_anchors_give_a_float32_module_that_keeps_the_input_dtype():
    x = _source().float()
    translation = fit_translation(x[:100], 2 * x[:100])
    assert translation.weight.dtype == torch.float32
    assert translation(x[100:]).dtype == torch.float32
    assert translation(x[100:].double()).dtype == torch.float64


@pytest.mark.parametrize("method", METHODS)
def test_saves_in_safetensors_and_rebuilds_empty_from_method_and_dims(tmp_path, method):
    x = _source().float()
    y = x[:, :12] * 2 - 1
    fitted = fit_translation(x, y, method=method)
    assert list(fitted.parameters()) == []  # nothing for an optimizer to move by accident
    save_file(fitted.state_dict(), tmp_path / "translation.safetensors")
    rebuilt = LatentTranslation(method, source_dim=16, target_dim=12)
    rebuilt.load_state_dict(load_file(tmp_path / "translation.safetensors"))
    assert torch.equal(rebuilt(x), fitted(x))
    assert "method='" + method + "'" in repr(rebuilt)


def test_methods_are_a_registry():
    assert set(METHODS) <= set(TRANSLATION_METHODS)
    assert TRANSLATION_METHODS["orthogonal"].scaled and not TRANSLATION_METHODS["linear"].scaled


def test_bad_input_raises_typed_errors():
    x = _source(rows=10)
    with pytest.raises(ConfigurationError, match="Unknown translation method"):
        fit_translation(x, x, method="procrustes")
    with pytest.raises(ConfigurationError, match="Unknown translation method"):
        LatentTranslation("rotation", 4, 4)
    with pytest.raises(AnchorError, match="parallel anchors"):
        fit_translation(x, x[:9])
    with pytest.raises(AnchorError, match="at least 2 anchors"):
        fit_translation(x[:1], x[:1])
    with pytest.raises(AnchorError, match=r"\[k, dim\]"):
        fit_translation(x[:, 0], x[:, 0])
    with pytest.raises(AnchorError, match="no scale"):
        fit_translation(x[:1].repeat(5, 1), x[:5])
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(NonFiniteError):
        fit_translation(bad, x)
    with pytest.raises(AnchorError, match="16-dimensional"):
        fit_translation(x, x)(torch.randn(3, 15, dtype=torch.float64))
