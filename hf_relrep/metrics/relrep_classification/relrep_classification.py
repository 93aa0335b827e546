"""Classification scores of the relative-representation stitching paper, as an ``evaluate`` metric.

Self-contained (numpy, datasets, evaluate) so that ``evaluate.load`` of this folder works offline and the folder
can be pushed to the Hub unchanged as a metric Space.
"""

from collections.abc import Sequence

import datasets
import evaluate
import numpy as np


_CITATION = """\
@inproceedings{garcia-castellanos2024relative,
  title     = {Relative Representations: Topological and Geometric Perspectives},
  author    = {Garc{\\'i}a-Castellanos, Alejandro and Marchetti, Giovanni Luca and Kragic, Danica and Scolamiero, Martina},
  booktitle = {Proceedings of the II edition of the Workshop on Unifying Representations in Neural Models (UniReps 2024)},
  series    = {PMLR},
  volume    = {285},
  year      = {2024},
  eprint    = {2409.10967},
}
"""

_DESCRIPTION = """\
Accuracy, weighted F1, macro F1 and mean absolute error between integer labels, all multiplied by 100 (the scale of
the paper's tables). For 5-class star ratings (label = stars - 1) the MAE is the mean distance in stars, x100:
an MAE of 49.52 means predictions are off by 0.4952 stars on average.

F1 is computed from the confusion matrix C (rows: references, columns: predictions) over the label set L
(the union of labels seen in references and predictions, or ``labels`` when given):
    F1_c = 2 C_cc / (sum_j C_cj + sum_i C_ic)   (0 when the denominator is 0)
    f1_macro    = mean over c in L of F1_c
    f1_weighted = sum over c in L of F1_c * support_c / sum support     (support_c = sum_j C_cj)
This is the definition of scikit-learn's ``f1_score(average="macro" | "weighted")`` with zero_division=0.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): Predicted labels.
    references (`list` of `int`): Ground-truth labels.
    labels (`list` of `int`, *optional*): The label set F1 averages over. Defaults to the sorted union of the labels
        in ``predictions`` and ``references``. Pass e.g. ``[0, 1, 2, 3, 4]`` to count a class that is never predicted
        nor present as F1 = 0 in the macro average.
    scale (`float`, *optional*, defaults to 100.0): Every score is multiplied by it; 1.0 gives fractions.

Returns:
    accuracy (`float`): 100 x fraction of exact matches.
    f1_weighted (`float`): 100 x support-weighted mean of per-class F1 (the paper's "F1").
    f1_macro (`float`): 100 x unweighted mean of per-class F1.
    mae (`float`): 100 x mean |prediction - reference|.

Examples:
    >>> metric = evaluate.load("hf_relrep/metrics/relrep_classification")  # or hf_relrep.metrics.load_metric()
    >>> scores = metric.compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2])
    >>> {name: round(value, 2) for name, value in scores.items()}
    {'accuracy': 75.0, 'f1_weighted': 75.0, 'f1_macro': 77.78, 'mae': 25.0}
"""


def confusion_matrix(
    predictions: Sequence[int], references: Sequence[int], labels: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Confusion matrix C with C[i, j] = number of samples with reference ``labels[i]`` predicted as ``labels[j]``.

    Args:
        predictions: Predicted labels.
        references: Ground-truth labels, same length.
        labels: The label set, in row/column order; defaults to the sorted union of both inputs.

    Returns:
        ``(C, labels)``; samples whose prediction or reference is not in ``labels`` are left out.
    """
    pred = np.asarray(predictions, dtype=np.int64).reshape(-1)
    ref = np.asarray(references, dtype=np.int64).reshape(-1)
    if pred.shape != ref.shape:
        raise ValueError(f"predictions and references differ in length: {pred.size} vs {ref.size}")
    label_set = np.union1d(pred, ref) if labels is None else np.asarray(labels, dtype=np.int64)
    index = {int(label): i for i, label in enumerate(label_set)}
    rows = np.array([index.get(int(r), -1) for r in ref], dtype=np.int64)
    cols = np.array([index.get(int(p), -1) for p in pred], dtype=np.int64)
    keep = (rows >= 0) & (cols >= 0)
    matrix = np.zeros((len(label_set), len(label_set)), dtype=np.int64)
    np.add.at(matrix, (rows[keep], cols[keep]), 1)
    return matrix, label_set


def classification_scores(
    predictions: Sequence[int],
    references: Sequence[int],
    labels: Sequence[int] | None = None,
    scale: float = 100.0,
) -> dict[str, float]:
    """Accuracy, weighted and macro F1, and MAE between labels, times ``scale``.

    With C the confusion matrix over the label set L (see :func:`confusion_matrix`):
    ``F1_c = 2 C_cc / (sum_j C_cj + sum_i C_ic)`` (0 if the denominator is 0),
    ``f1_macro = mean_c F1_c``, ``f1_weighted = sum_c F1_c * support_c / sum_c support_c`` with
    ``support_c = sum_j C_cj``; ``accuracy = mean(pred == ref)``; ``mae = mean |pred - ref|``.

    Args:
        predictions: Predicted integer labels.
        references: Ground-truth integer labels.
        labels: Label set for F1; defaults to the union of the labels seen.
        scale: Multiplier applied to every score (100 = the paper's tables).

    Returns:
        ``{"accuracy", "f1_weighted", "f1_macro", "mae"}`` as Python floats.

    Raises:
        ValueError: On empty or unequal-length inputs.
    """
    pred = np.asarray(predictions, dtype=np.int64).reshape(-1)
    ref = np.asarray(references, dtype=np.int64).reshape(-1)
    if pred.shape != ref.shape:
        raise ValueError(f"predictions and references differ in length: {pred.size} vs {ref.size}")
    if pred.size == 0:
        raise ValueError("no predictions to score")
    matrix, _ = confusion_matrix(pred, ref, labels)
    true_positive = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    denominator = support + predicted
    f1 = np.divide(2.0 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    total_support = support.sum()
    return {
        "accuracy": float(scale * np.mean(pred == ref)),
        "f1_weighted": float(scale * (f1 @ support) / total_support) if total_support > 0 else 0.0,
        "f1_macro": float(scale * f1.mean()) if f1.size else 0.0,
        "mae": float(scale * np.mean(np.abs(pred - ref))),
    }


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RelrepClassification(evaluate.Metric):
    """Accuracy, weighted F1, macro F1 and MAE, x100, as reported in arXiv 2409.10967."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://arxiv.org/abs/2409.10967"],
        )

    def _compute(
        self,
        predictions: Sequence[int],
        references: Sequence[int],
        labels: Sequence[int] | None = None,
        scale: float = 100.0,
    ) -> dict[str, float]:
        return classification_scores(predictions, references, labels=labels, scale=scale)
