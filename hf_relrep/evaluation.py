"""Evaluation: the one batched inference loop, prediction, and the glue between data files, models and the metric.

`run_batches` is the loop every caller shares (`predict`, `predict_features`, `hf_relrep.zoo.embed_texts`): eval
mode and ``torch.inference_mode`` for the duration, inputs moved to the model's device, one result row per input row
put back at its position, an optional progress bar, the model's train/eval mode restored. The batch builders say how
the inputs are cut: `text_batches` keeps the input order (a model normalizing with batch statistics sees the batches
a user would give it), `length_sorted_batches` sorts by length so that each batch is padded only to its own longest
text (embedding, where rows are independent), `feature_batches` cuts precomputed backbone features.

`evaluate` scores a sequence classifier on a dataset split with `hf_relrep.metrics.load_metric`; `load_eval_split`
reads the shipped parallel sentiment set or a local file or folder, `labels_as_ids` maps label names to class ids.

Example:
    ```python
    >>> from transformers import AutoModelForSequenceClassification
    >>> from hf_relrep.evaluation import evaluate, load_eval_split, load_tokenizer
    >>> model = AutoModelForSequenceClassification.from_pretrained("stitched-fr-en")
    >>> split = load_eval_split("parallel-sentiment", language="fr")
    >>> evaluate(model, load_tokenizer("stitched-fr-en"), split)  # {"accuracy": ..., "mae": ...}, all x100
    ```
"""

import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .errors import ConfigurationError, DataError


#: The keys of `hf_relrep.metrics.load_metric`'s scores, in table order (all x100).
METRIC_KEYS = ("accuracy", "f1_weighted", "f1_macro", "mae")
#: The English/French sentiment set shipped with hf-relrep (`hf_relrep.data.load_parallel_sentiment`).
PARALLEL_SENTIMENT = "parallel-sentiment"
#: The `datasets` builder that reads a local data file, by extension.
DATA_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
#: Files that make a folder (or a Hub repository) hold a tokenizer.
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")

Batch = tuple[Sequence[int], dict[str, torch.Tensor]]


# ------------------------------------------------------------------------------------------------- the inference loop


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


def _argmax(output, inputs) -> torch.Tensor:
    return output.logits.argmax(-1)


# ------------------------------------------------------------------------------------------------------- prediction


def predict(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_length: int | None = None,
    prefix: str = "",
    device: str | torch.device | None = None,
    progress: bool = False,
) -> list[int]:
    """Predicted class ids of a sequence classifier on `texts`, in batches of consecutive texts.

    Args:
        model: any `AutoModelForSequenceClassification` model (run in eval mode; its mode is restored).
        tokenizer: its tokenizer.
        texts: the inputs.
        batch_size: texts per forward pass.
        max_length: truncation length; `None` uses the tokenizer's, capped by the backbone's position embeddings.
        prefix: prepended to every text (e5 encoders expect ``"passage: "``; relative models store theirs in
            ``config.anchor_text_prefix``).
        device: move the model there first; `None` leaves it where it is.
        progress: show a tqdm bar on stderr.
    """
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be ≥ 1, got {batch_size}.")
    if device is not None:
        model = model.to(device)
    if max_length is None:
        max_length = _max_input_length(model, tokenizer)
    batches = text_batches(tokenizer, texts, batch_size=batch_size, max_length=max_length, prefix=prefix)
    labels = run_batches(model, batches, _argmax, num_rows=len(texts), progress=progress, description="evaluate")
    return labels.tolist()


def predict_features(
    model: torch.nn.Module, features: torch.Tensor | dict[str, torch.Tensor], *, batch_size: int = 512
) -> list[int]:
    """Predicted class ids of a relative classifier from cached pooled backbone outputs (``backbone_features``), or
    from a dict of precomputed model inputs (e.g. ``inputs_embeds`` and ``attention_mask``)."""
    count = len(next(iter(feature_columns(features).values())))
    return run_batches(model, feature_batches(features, batch_size=batch_size), _argmax, num_rows=count).tolist()


def _max_input_length(model: torch.nn.Module, tokenizer) -> int | None:
    config = model.config
    backbone = getattr(config, "backbone", None) or config
    limits = [getattr(backbone, "max_position_embeddings", None), tokenizer.model_max_length]
    limits = [limit for limit in limits if isinstance(limit, int) and 0 < limit < 1_000_000]
    return min(limits) if limits else None


# ----------------------------------------------------------------------------------------------------- tokenizers


def has_tokenizer(source: str | os.PathLike, *, revision: str | None = None, token: str | None = None) -> bool:
    """Whether a local folder or a Hub repository holds a tokenizer (``tokenizer_config.json`` or ``tokenizer.json``).

    Args:
        source: a local folder or a Hub id.
        revision: the Hub revision to look at.
        token: a Hub token for private repositories.
    """
    if os.path.isdir(source):
        return any((Path(source) / name).is_file() for name in TOKENIZER_FILES)
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    return any(api.file_exists(str(source), name, revision=revision) for name in TOKENIZER_FILES)


def load_tokenizer(
    source: str | os.PathLike,
    *,
    revision: str | None = None,
    token: str | None = None,
    fallback: str | None = None,
    what: str = "model",
):
    """`AutoTokenizer.from_pretrained(source)`, or of `fallback` (e.g. the model's base model) when `source` has none.

    Using the fallback is announced with a `UserWarning`.

    Raises:
        ConfigurationError: neither `source` nor `fallback` holds a tokenizer.
    """
    from transformers import AutoTokenizer

    if has_tokenizer(source, revision=revision, token=token):
        return AutoTokenizer.from_pretrained(source, revision=revision, token=token)
    if fallback and has_tokenizer(fallback, token=token):
        warnings.warn(f"{source} has no tokenizer; using the one of its base model {fallback}", stacklevel=2)
        return AutoTokenizer.from_pretrained(fallback, token=token)
    raise ConfigurationError(
        f"The {what} {source} has no tokenizer ({' or '.join(TOKENIZER_FILES)})"
        + (f", nor has its base model {fallback}" if fallback else "")
        + ". Save it with the model (tokenizer.save_pretrained(folder), or push_to_hub(..., tokenizer=tokenizer)), "
        "or pass --tokenizer PATH_OR_ID."
    )


# ------------------------------------------------------------------------------------------------------------- data


def data_file_builder(path: str | os.PathLike, *, what: str = "data file") -> tuple[str, dict[str, Any]]:
    """The `datasets.load_dataset` builder name and keyword arguments that read a local data file.

    Raises:
        DataError: the extension is not one of `DATA_BUILDERS`.
    """
    suffix = Path(path).suffix.lower()
    builder = DATA_BUILDERS.get(suffix)
    if builder is None:
        raise DataError(f"{what} {path}: unknown file type {suffix!r}; use one of {sorted(DATA_BUILDERS)}.")
    return builder, ({"delimiter": "\t"} if suffix == ".tsv" else {})


def load_eval_split(dataset: str, *, split: str = "test", language: str | None = None, text_column: str = "text"):
    """One split of the shipped parallel sentiment set (``"parallel-sentiment"``) or of a local file or folder.

    Args:
        dataset: ``"parallel-sentiment"``, or a ``.csv``/``.tsv``/``.json``/``.jsonl``/``.parquet`` file, or a folder
            that `datasets.load_dataset` reads (split names from file names: ``test.jsonl`` is the ``test`` split).
        split: the split to return (a single file is that split).
        language: for the parallel set, ``"en"`` or ``"fr"``: which text becomes the ``text`` column.
        text_column: the text column the caller will read; checked against `language` for the parallel set.

    Raises:
        ConfigurationError: the parallel set without a language to score.
        DataError: a missing file or split, an unknown file type.
    """
    import datasets

    from .data import load_parallel_sentiment

    if dataset == PARALLEL_SENTIMENT:
        if language is None and text_column == "text":
            raise ConfigurationError(
                f"--dataset {PARALLEL_SENTIMENT} holds English and French texts: pass --language en or --language fr "
                "(the language of the encoder's side), or --text-column text_en / text_fr."
            )
        data = load_parallel_sentiment(language=language)
    else:
        path = Path(dataset)
        if not path.exists():
            raise DataError(f"--dataset {dataset}: no such file or folder (nor is it {PARALLEL_SENTIMENT!r}).")
        if path.is_dir():
            data = datasets.load_dataset(str(path))
        else:
            builder, kwargs = data_file_builder(path, what="--dataset")
            # A single file is the split asked for, whatever its name.
            data = datasets.load_dataset(builder, data_files={split: str(path)}, **kwargs)
    if split not in data:
        raise DataError(f"--dataset {dataset} has no split {split!r}; it has {sorted(data)}. Pass --split NAME.")
    return data[split]


def labels_as_ids(dataset, label_column: str, config: Any):
    """String labels (``"positive"``) become the model's class ids; a ClassLabel named differently is warned about.

    Raises:
        DataError: a label name the model does not know.
    """
    import datasets

    if label_column not in dataset.column_names:
        return dataset  # check_columns says so, with the columns found
    feature = dataset.features[label_column]
    names = [config.id2label[i] for i in range(config.num_labels)]
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        unknown = sorted({str(value) for value in dataset[label_column]} - set(names))
        if unknown:
            raise DataError(
                f"column {label_column!r} holds label names {unknown[:10]} that the model does not know; its labels "
                f"are {names} (ids 0..{len(names) - 1})."
            )
        return dataset.cast_column(label_column, datasets.ClassLabel(names=names))
    generic = all(name == f"LABEL_{i}" for i, name in enumerate(names))
    if isinstance(feature, datasets.ClassLabel) and not generic and list(feature.names) != names:
        warnings.warn(
            f"the dataset's labels are {list(feature.names)} but the model's are {names}; scoring by class id.",
            stacklevel=2,
        )
    return dataset


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
    from .data import check_columns
    from .metrics import load_metric

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


__all__ = [
    "DATA_BUILDERS",
    "METRIC_KEYS",
    "PARALLEL_SENTIMENT",
    "TOKENIZER_FILES",
    "data_file_builder",
    "evaluate",
    "feature_batches",
    "feature_columns",
    "has_tokenizer",
    "labels_as_ids",
    "length_sorted_batches",
    "load_eval_split",
    "load_tokenizer",
    "predict",
    "predict_features",
    "run_batches",
    "text_batches",
]
