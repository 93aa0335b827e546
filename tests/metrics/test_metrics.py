"""The evaluate metric: hand-checked scores, the x100 scale, offline loading."""

import os
import subprocess
import sys

import numpy as np
import pytest

from hf_relrep.metrics import METRIC_PATH, classification_scores, confusion_matrix, load_metric


def _reference_f1(predictions: list[int], references: list[int], labels: list[int]) -> tuple[float, float]:
    """Per-class precision/recall loop (F1 = 2PR/(P+R)), a different route to the same numbers."""
    f1s, supports = [], []
    for c in labels:
        tp = sum(p == c and r == c for p, r in zip(predictions, references, strict=True))
        predicted = sum(p == c for p in predictions)
        actual = sum(r == c for r in references)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
        supports.append(actual)
    macro = sum(f1s) / len(f1s)
    weighted = sum(f * s for f, s in zip(f1s, supports, strict=True)) / sum(supports)
    return 100 * weighted, 100 * macro


@pytest.fixture(scope="module")
def metric():
    return load_metric(keep_in_memory=True)


def test_hand_checked_three_classes(metric) -> None:
    # per class F1: c0 = 1, c1 = 2/3 (tp 1, support 2, predicted 1), c2 = 2/3 (tp 1, support 1, predicted 2)
    scores = metric.compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2])
    assert scores == pytest.approx(
        {
            "accuracy": 75.0,
            "f1_weighted": 100 * (1 + 2 * 2 / 3 + 2 / 3) / 4,
            "f1_macro": 100 * (1 + 4 / 3) / 3,
            "mae": 25.0,
        }
    )


def test_hand_checked_imbalanced_binary(metric) -> None:
    # c0: tp 2, support 3, predicted 2 -> F1 4/5; c1: tp 1, support 1, predicted 2 -> F1 2/3
    scores = metric.compute(predictions=[0, 0, 1, 1], references=[0, 0, 0, 1])
    assert scores["f1_macro"] == pytest.approx(100 * (0.8 + 2 / 3) / 2)
    assert scores["f1_weighted"] == pytest.approx(100 * (0.8 * 3 + 2 / 3) / 4)
    assert scores["accuracy"] == pytest.approx(75.0)
    assert scores["mae"] == pytest.approx(25.0)


def test_star_mae_is_in_stars_times_100(metric) -> None:
    # |2 - 4| + |1 - 0| = 3 stars over 2 reviews = 1.5 stars
    assert metric.compute(predictions=[2, 1], references=[4, 0])["mae"] == pytest.approx(150.0)


def test_labels_argument_and_scale() -> None:
    perfect = classification_scores([0, 1], [0, 1], labels=[0, 1, 2])
    assert perfect["f1_macro"] == pytest.approx(200 / 3)  # class 2 never seen counts as F1 = 0
    assert perfect["f1_weighted"] == pytest.approx(100.0)  # ... but has no weight
    fractions = classification_scores([0, 1, 2, 2], [0, 1, 1, 2], scale=1.0)
    assert fractions["accuracy"] == pytest.approx(0.75)


def test_matches_reference_f1_on_random_labels() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 60))
        references = rng.integers(0, 5, n).tolist()
        predictions = rng.integers(0, 5, n).tolist()
        labels = sorted(set(references) | set(predictions))
        weighted, macro = _reference_f1(predictions, references, labels)
        scores = classification_scores(np.array(predictions), references)
        assert scores["f1_weighted"] == pytest.approx(weighted)
        assert scores["f1_macro"] == pytest.approx(macro)
        assert scores["accuracy"] == pytest.approx(100 * np.mean(np.equal(predictions, references)))


def test_confusion_matrix_layout() -> None:
    matrix, labels = confusion_matrix([0, 2, 2], [0, 1, 2])
    assert labels.tolist() == [0, 1, 2]
    assert matrix.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]  # rows = references, columns = predictions


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        classification_scores([0, 1], [0])
    with pytest.raises(ValueError, match="no predictions"):
        classification_scores([], [])


def test_loads_offline_in_a_fresh_process(tmp_path) -> None:
    code = (
        "from hf_relrep.metrics import load_metric; "
        "print(load_metric().compute(predictions=[1, 1, 0], references=[1, 0, 0])['accuracy'])"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    env.pop("HF_ENDPOINT", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout.strip().splitlines()[-1]) == pytest.approx(200 / 3)


def test_metric_folder_has_card() -> None:
    assert (METRIC_PATH / "relrep_classification.py").is_file()
    assert "x100" in (METRIC_PATH / "README.md").read_text(encoding="utf-8").replace("×", "x")
