"""Space-similarity diagnostics: invariances of CKA and kNN-Jaccard, the relative-agreement report, bad input."""

import json

import pytest
import torch

from hf_relrep import cka, compare_latents, knn_jaccard
from hf_relrep.errors import ConfigurationError, DataError, NonFiniteError


def _space(seed: int = 0, rows: int = 400, dim: int = 12) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    scales = torch.rand(dim, generator=generator, dtype=torch.float64) * 3 + 0.2  # anisotropic, like real latents
    return torch.randn(rows, dim, generator=generator, dtype=torch.float64) * scales


def _rotation(dim_in: int, dim_out: int, seed: int = 1) -> torch.Tensor:
    """``[dim_in, dim_out]`` with orthonormal rows (dim_in ≤ dim_out): an isometric embedding."""
    generator = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(dim_out, dim_out, generator=generator, dtype=torch.float64)).Q[:dim_in]


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("dim_out", [12, 20])
def test_cka_is_one_under_rotation_isotropic_scale_and_shift(kernel, dim_out):
    x = _space()
    y = 0.3 * x @ _rotation(12, dim_out) + 7.0
    assert cka(x, y, kernel=kernel) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_cka_is_low_for_independent_noise(kernel):
    assert cka(_space(0), _space(1), kernel=kernel) < 0.1


def test_cka_sees_a_partial_relation_between_the_extremes():
    x = _space()
    y = x + 2.0 * _space(5)
    assert 0.1 < cka(x, y) < 0.9


def test_linear_cka_is_the_same_through_the_feature_and_the_gram_formula():
    x, y = _space(0, rows=30, dim=12), _space(1, rows=30, dim=40)  # d_x·d_y > n(d_x + d_y): the Gram path
    xc, yc = x - x.mean(0), y - y.mean(0)
    expected = (yc.T @ xc).square().sum() / (torch.linalg.norm(xc.T @ xc) * torch.linalg.norm(yc.T @ yc))
    assert cka(x, y) == pytest.approx(float(expected), rel=1e-9)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_knn_jaccard_is_one_under_rotation_and_scale(metric):
    x = _space()
    assert knn_jaccard(x, 4.0 * x @ _rotation(12, 16), k=10, metric=metric) == 1.0


def test_knn_jaccard_is_near_chance_for_unrelated_spaces_and_exact_on_a_small_case():
    assert knn_jaccard(_space(0), _space(1), k=10) < 0.1
    # Points on a line. k=1: x's nearest neighbours 0→1, 1→0, 2→1, 3→2; y's 0→1, 1→2, 2→1, 3→2: rows 0, 2, 3 agree.
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    y = torch.tensor([[0.0], [6.0], [7.0], [9.0]])
    assert knn_jaccard(x, y, k=1) == pytest.approx(0.75)
    # k=2: row 0 {1, 2} vs {1, 2}; 1 {0, 2} vs {2, 3}; 2 {1, 0} vs {1, 3}; 3 {2, 1} vs {2, 1}: 1, 1/3, 1/3, 1.
    assert knn_jaccard(x, y, k=2) == pytest.approx((1 + 1 / 3 + 1 / 3 + 1) / 4)


def test_compare_latents_reports_agreement_per_normalization():
    x = _space(rows=300)
    generator = torch.Generator().manual_seed(3)
    mixing = torch.randn(12, 12, generator=generator, dtype=torch.float64)  # a generic invertible linear map
    y = x @ mixing + 5.0
    report = compare_latents(x, y, torch.arange(64))
    json.dumps(report)  # plain numbers: goes into config.provenance and model cards as is
    assert report["num_rows"] == 300 and report["num_anchors"] == 64 and report["whiten_shrinkage"] == 0.0
    relative = report["relative"]
    # Whitening is invariant to every invertible affine map; vanilla cosine is not.
    assert relative["whiten"]["cosine"] == pytest.approx(1.0, abs=1e-9)
    assert relative["whiten"]["mae"] < 1e-6
    assert relative["none"]["cosine"] < relative["whiten"]["cosine"] - 0.05
    assert 0.0 < report["cka_linear"] < 1.0 and 0.0 < report["knn_jaccard"] < 1.0


def test_compare_latents_on_an_anchor_set_alone_and_with_explicit_anchor_latents():
    x = _space(rows=40)
    y = 2.0 * x @ _rotation(12, 12)
    on_anchors = compare_latents(x, y)  # the rows are their own anchors: 40 anchors in 12 dims
    assert on_anchors["num_anchors"] == 40 and on_anchors["cka_linear"] == pytest.approx(1.0)
    assert on_anchors["relative"]["none"]["cosine"] == pytest.approx(1.0)
    explicit = compare_latents(x, y, (x[:8], y[:8]))  # 8 anchors ≤ 12 dims: whitening needs shrinkage
    assert explicit["num_anchors"] == 8 and explicit["whiten_shrinkage"] == 0.5


def test_bad_input_raises_typed_errors():
    x = _space(rows=20)
    with pytest.raises(DataError, match="row i of one must be the counterpart"):
        cka(x, x[:19])
    with pytest.raises(DataError, match=r"\[n, dim\]"):
        knn_jaccard(x[:, 0], x[:, 0])
    with pytest.raises(ConfigurationError, match="Unknown CKA kernel"):
        cka(x, x, kernel="poly")
    with pytest.raises(ConfigurationError, match="RBF bandwidth"):
        cka(x, x, sigma=1.0)
    with pytest.raises(ConfigurationError, match="between 1 and 19"):
        knn_jaccard(x, x, k=20)
    with pytest.raises(ConfigurationError, match="Unknown metric"):
        knn_jaccard(x, x, metric="manhattan")
    with pytest.raises(ConfigurationError, match="Unknown normalization"):
        compare_latents(x, x, normalizations=("batchnorm",))
    with pytest.raises(DataError, match="row indices"):
        compare_latents(x, x, torch.tensor([0, 25]))
    bad = x.clone()
    bad[3, 3] = float("inf")
    with pytest.raises(NonFiniteError):
        cka(bad, x)
