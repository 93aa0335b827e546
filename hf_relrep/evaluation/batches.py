"""Batched inference: the one loop every caller shares, and the batch builders that say how inputs are cut.

`run_batches` runs a model in eval mode and ``torch.inference_mode``, moves each batch to the model's device, puts
one result row per input row back at its position, shows an optional progress bar and restores the model's
train/eval mode; `hf_relrep.evaluation.predict`, `predict_features` and `hf_relrep.zoo.embed_texts` all use it. The
builders: `text_batches` keeps the input order (a model normalizing with batch statistics sees the batches a user
would give it), `length_sorted_batches` sorts by length so that each batch is padded only to its own longest text
(embedding, where rows are independent), `feature_batches` cuts precomputed backbone features.
"""

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm


Batch = tuple[Sequence[int], dict[str, torch.Tensor]]
"""``(rows, inputs)``: the positions of a batch's rows in the result, and the model's keyword arguments."""


def run_batches(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    step: Callable[[Any, dict[str, torch.Tensor]], torch.Tensor],
    *,
    num_rows: int,
    progress: bool = False,
    description: str | None = None,
    unit: str = "ex",
) -> torch.Tensor:
    """Run `model` on each batch in eval and inference mode; gather ``step(output, inputs)`` rows in input order.

    Args:
        model: any `torch.nn.Module`; its train/eval mode is restored afterwards.
        batches: ``(rows, inputs)`` pairs: the positions of the batch's rows in the result, and the keyword
            arguments of ``model`` (moved to the model's device here).
        step: turns the model's output for one batch into one result row per input row (e.g. ``logits.argmax(-1)``).
        num_rows: the number of rows of the result (every position must be covered by some batch).
        progress: show a tqdm bar on stderr counting rows.
        description, unit: the bar's label and unit.

    Returns:
        ``[num_rows, ...]`` tensor on the CPU; an empty tensor when there are no batches.
    """
    device = next(model.parameters()).device
    parts: list[tuple[Sequence[int], torch.Tensor]] = []
    was_training = model.training
    model.eval()
    try:
        with (
            torch.inference_mode(),
            tqdm(total=num_rows, desc=description, unit=unit, disable=not progress) as bar,
        ):
            for rows, inputs in batches:
                output = model(**{key: value.to(device) for key, value in inputs.items()})
                parts.append((rows, step(output, inputs).cpu()))
                bar.update(len(rows))
    finally:
        model.train(was_training)
    if not parts:
        return torch.empty(0)
    first = parts[0][1]
    result = first.new_empty((num_rows, *first.shape[1:]))
    for rows, values in parts:
        result[list(rows)] = values
    return result


def text_batches(
    tokenizer, texts: Sequence[str], *, batch_size: int = 64, max_length: int | None = None, prefix: str = ""
) -> Iterator[Batch]:
    """Consecutive batches of `texts` in input order, each tokenized and padded by `tokenizer` to its longest text."""
    for start in range(0, len(texts), batch_size):
        chunk = [prefix + text for text in texts[start : start + batch_size]]
        encoded = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        yield range(start, start + len(chunk)), dict(encoded)


def length_sorted_batches(
    tokenizer, texts: Sequence[str], *, batch_size: int = 64, max_length: int = 128, prefix: str = ""
) -> Iterator[Batch]:
    """Batches of `texts` sorted by token count, longest first, each right-padded to its own longest text.

    The texts are tokenized once; batches carry ``input_ids`` and ``attention_mask`` only. For models whose rows do
    not depend on each other (embedding), this pads far less than batches in input order.
    """
    encoded = tokenizer(
        [prefix + text for text in texts],
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    input_ids: list[list[int]] = encoded["input_ids"]
    lengths = torch.tensor([len(ids) for ids in input_ids])
    order = torch.argsort(lengths, descending=True, stable=True).tolist()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = int(lengths[rows[0]])
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, index in enumerate(rows):
            ids[row, : lengths[index]] = torch.tensor(input_ids[index])
            mask[row, : lengths[index]] = 1
        yield rows, {"input_ids": ids, "attention_mask": mask}


def feature_batches(features: torch.Tensor | dict[str, torch.Tensor], *, batch_size: int = 512) -> Iterator[Batch]:
    """Consecutive batches of precomputed pooled backbone outputs, as the ``backbone_features`` model input; or of
    a dict of precomputed model inputs with one row per example (e.g. ``inputs_embeds`` and ``attention_mask``)."""
    columns = feature_columns(features)
    count = len(next(iter(columns.values())))
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        yield range(start, stop), {name: value[start:stop] for name, value in columns.items()}


def feature_columns(features: torch.Tensor | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Precomputed model inputs by name: a bare tensor is the ``backbone_features`` input (a dict is returned as is)."""
    return features if isinstance(features, dict) else {"backbone_features": features}


__all__ = ["Batch", "feature_batches", "feature_columns", "length_sorted_batches", "run_batches", "text_batches"]
