"""Where an evaluation's inputs come from: a model's tokenizer, and a dataset split (shipped set, local file or folder).

`load_tokenizer` falls back to a base model's tokenizer with a warning; `load_eval_split` reads the shipped parallel
sentiment set or a local file or folder with `datasets` (imported on first use); `labels_as_ids` maps label names to
the model's class ids.
"""

import os
import warnings
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, DataError


#: The English/French sentiment set shipped with hf-relrep (`hf_relrep.data.load_parallel_sentiment`).
PARALLEL_SENTIMENT = "parallel-sentiment"
#: The `datasets` builder that reads a local data file, by extension.
DATA_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
#: Files that make a folder (or a Hub repository) hold a tokenizer.
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")


# ------------------------------------------------------------------------------------------------------- tokenizers


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


# ------------------------------------------------------------------------------------------------------- data files


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

    from ..data import load_parallel_sentiment

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


__all__ = [
    "DATA_BUILDERS",
    "PARALLEL_SENTIMENT",
    "TOKENIZER_FILES",
    "data_file_builder",
    "has_tokenizer",
    "labels_as_ids",
    "load_eval_split",
    "load_tokenizer",
]
