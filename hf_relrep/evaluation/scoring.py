"""`evaluate`: the scores of a sequence classifier on a dataset split, with `hf_relrep.metrics.load_metric`.

`datasets` and `evaluate` load on first use (through `hf_relrep.data` and `hf_relrep.metrics`).
"""

import torch

from ..errors import DataError
from .prediction import predict
from .sources import labels_as_ids


#: The keys of `hf_relrep.metrics.load_metric`'s scores, in table order (all x100).
METRIC_KEYS = ("accuracy", "f1_weighted", "f1_macro", "mae")


def evaluate(
    model: torch.nn.Module,
    tokenizer,
    dataset,
    *,
    text_column: str = "text",
    label_column: str = "label",
    batch_size: int = 64,
    max_length: int | None = None,
    prefix: str | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Scores (x100, keys `METRIC_KEYS`) of a sequence classifier on a `datasets.Dataset` split.

    Labels are class ids or the model's label names (mapped with `labels_as_ids`); the columns are checked first.

    Args:
        prefix: prepended to every text; `None` uses the model's ``config.anchor_text_prefix`` (relative models store
            the prefix their encoder expects), else none.
        batch_size, max_length, device, progress: as in `predict`.

    Raises:
        DataError: a missing column, texts that are not strings, label names the model does not know.
    """
    from ..data import check_columns
    from ..metrics import load_metric

    dataset = labels_as_ids(dataset, label_column, model.config)
    check_columns(dataset, (text_column, label_column), label_column=label_column, num_labels=model.config.num_labels)
    texts = dataset[text_column]
    if any(not isinstance(text, str) for text in texts):
        raise DataError(f"column {text_column!r} must hold strings; some rows are empty or not text.")
    if prefix is None:
        prefix = getattr(model.config, "anchor_text_prefix", "") or ""
    predictions = predict(
        model, tokenizer, texts, batch_size=batch_size, max_length=max_length, prefix=prefix, device=device,
        progress=progress,
    )  # fmt: skip
    scores = load_metric().compute(predictions=predictions, references=list(dataset[label_column]))
    return {key: float(value) for key, value in scores.items()}


__all__ = ["METRIC_KEYS", "evaluate"]
