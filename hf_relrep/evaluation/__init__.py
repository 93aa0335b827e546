"""Evaluation: the one batched inference loop, prediction, and the glue between data files, models and the metric.

Modules: ``batches`` (`run_batches`, the loop every caller shares, and the batch builders `text_batches`,
`length_sorted_batches`, `feature_batches`), ``prediction`` (`predict` from texts, `predict_features` from
precomputed inputs), ``sources`` (`load_tokenizer`, `load_eval_split`, `labels_as_ids`: a model's tokenizer and a
dataset split) and ``scoring`` (`evaluate`, the scores of a sequence classifier on a split).

Every name below is importable from ``hf_relrep.evaluation``; each loads its module on first use, so that
``from hf_relrep.evaluation import PARALLEL_SENTIMENT`` reads no model code and ``datasets`` and ``evaluate`` load only
when data is read or scored.

Example:
    ```python
    >>> from transformers import AutoModelForSequenceClassification
    >>> from hf_relrep.evaluation import evaluate, load_eval_split, load_tokenizer
    >>> model = AutoModelForSequenceClassification.from_pretrained("stitched-fr-en")
    >>> split = load_eval_split("parallel-sentiment", language="fr")
    >>> evaluate(model, load_tokenizer("stitched-fr-en"), split)  # {"accuracy": ..., "mae": ...}, all x100
    ```
"""

import importlib
from typing import Any


# Public name -> the module of this package that defines it (loaded on first access).
_EXPORTS = {
    "Batch": ".batches",
    "feature_batches": ".batches",
    "feature_columns": ".batches",
    "length_sorted_batches": ".batches",
    "run_batches": ".batches",
    "text_batches": ".batches",
    "predict": ".prediction",
    "predict_features": ".prediction",
    "DATA_BUILDERS": ".sources",
    "PARALLEL_SENTIMENT": ".sources",
    "TOKENIZER_FILES": ".sources",
    "data_file_builder": ".sources",
    "has_tokenizer": ".sources",
    "labels_as_ids": ".sources",
    "load_eval_split": ".sources",
    "load_tokenizer": ".sources",
    "METRIC_KEYS": ".scoring",
    "evaluate": ".scoring",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = sorted(_EXPORTS)
