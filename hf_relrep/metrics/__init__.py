"""The evaluate metric of hf-relrep: accuracy, weighted/macro F1 and MAE, x100 as in the paper's tables.

``load_metric()`` is ``evaluate.load`` of the metric folder shipped inside this package, so it works offline
(``HF_HUB_OFFLINE=1``); ``classification_scores`` is the same computation as a plain function.

Example:
    >>> from hf_relrep.metrics import load_metric
    >>> load_metric().compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2])["accuracy"]
    75.0
"""

from pathlib import Path
from typing import Any

import evaluate

from hf_relrep.metrics.relrep_classification.relrep_classification import classification_scores, confusion_matrix


#: Folder of the ``evaluate`` metric module (script ``relrep_classification.py`` and its card ``README.md``).
METRIC_PATH: Path = Path(__file__).resolve().parent / "relrep_classification"

__all__ = ["METRIC_PATH", "classification_scores", "confusion_matrix", "load_metric"]


def load_metric(**kwargs: Any) -> evaluate.EvaluationModule:
    """Loads the ``relrep_classification`` metric from the package, without the Hub.

    Args:
        **kwargs: Passed to ``evaluate.load`` (e.g. ``keep_in_memory=True``, ``experiment_id=...``,
            ``num_process``/``process_id`` for distributed evaluation).

    Returns:
        The ``evaluate`` metric; ``compute(predictions=..., references=...)`` returns
        ``{"accuracy", "f1_weighted", "f1_macro", "mae"}``, each x100.
    """
    return evaluate.load(str(METRIC_PATH), **kwargs)
