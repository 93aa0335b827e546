"""The task's texts per language: training sets, the shared test set, and the parallel anchors."""

from collections.abc import Sequence
from dataclasses import dataclass

from ...anchors.identity import check_anchor_count
from ...data import check_columns, check_parallel, load_amazon_reviews_multi, load_parallel_sentiment
from ...errors import DataError
from ...evaluation import data_file_builder
from .config import LANGUAGES, ReproduceConfig


@dataclass
class LanguageData:
    """One language's texts and labels: its own training set, the shared test set, and its side of the anchors."""

    train_texts: list[str]
    train_labels: list[int]
    test_texts: list[str]
    test_labels: list[int]
    anchor_texts: list[str]


def take(items: Sequence, count: int | None) -> list:
    """The first `count` items as a list (all with `None`)."""
    items = list(items)  # datasets' lazy columns are slow to index one by one
    return items if count is None else items[:count]


def load_task_data(config: ReproduceConfig) -> tuple[dict[str, LanguageData], list[str]]:
    """Texts per language and the label names, checked for the columns and the parallel anchors the run needs."""
    if config.dataset == "parallel-sentiment":
        splits = load_parallel_sentiment()
        label_names = splits["test"].features["label"].names
        anchors = splits["anchors"]
        per_language = {}
        for language in LANGUAGES:
            train = splits[f"train_{language}"]
            test = splits["test"]
            per_language[language] = LanguageData(
                train_texts=take(train[f"text_{language}"], config.train_size),
                train_labels=take(train["label"], config.train_size),
                test_texts=take(test[f"text_{language}"], config.test_size),
                test_labels=take(test["label"], config.test_size),
                anchor_texts=take(anchors[f"text_{language}"], config.num_anchors),
            )
    else:
        if config.anchors_path is None:
            raise DataError(
                f"{config.dataset} has no parallel anchors: pass anchors_path (--anchors FILE), a csv/jsonl file with "
                "columns text_en and text_fr where row i of one is the translation of row i of the other."
            )
        by_language = load_amazon_reviews_multi(config.dataset, languages=LANGUAGES)
        label_names = [f"{stars} star{'s' if stars > 1 else ''}" for stars in range(1, 6)]
        per_language = {}
        for language in LANGUAGES:
            parts = by_language[language]
            for split in ("train", "test"):
                if split not in parts:
                    raise DataError(f"{config.dataset} has no {split!r} split for {language!r}; found {list(parts)}.")
                check_columns(parts[split], ["text"], num_labels=5)
            train = parts["train"].shuffle(seed=0)
            train = train.select(range(min(len(train), config.train_size or len(train))))
            test = parts["test"].select(range(min(len(parts["test"]), config.test_size or len(parts["test"]))))
            per_language[language] = LanguageData(
                train_texts=list(train["text"]), train_labels=list(train["label"]), test_texts=list(test["text"]),
                test_labels=list(test["label"]), anchor_texts=[],
            )  # fmt: skip
        anchor_rows = read_parallel_anchors(config.anchors_path)
        for language in LANGUAGES:
            per_language[language].anchor_texts = take(anchor_rows[language], config.num_anchors)
    check_parallel(per_language["en"].anchor_texts, per_language["fr"].anchor_texts)
    for language, data in per_language.items():
        check_anchor_count(
            len(data.anchor_texts), fix=f"give more {language!r} anchors (num_anchors, the anchors file)"
        )
        if len(set(data.train_labels)) < 2:
            raise DataError(f"The {language!r} training set has a single label; a classifier needs at least two.")
    return per_language, list(label_names)


def read_parallel_anchors(path: str) -> dict[str, list[str]]:
    """The ``text_en`` and ``text_fr`` columns of a .csv, .tsv, .json, .jsonl or .parquet file of parallel anchors."""
    from datasets import load_dataset

    builder, kwargs = data_file_builder(path, what="Anchors file")
    rows = load_dataset(builder, data_files=str(path), split="train", **kwargs)
    missing = [c for c in ("text_en", "text_fr") if c not in rows.column_names]
    if missing:
        raise DataError(f"Anchors file {path} lacks column(s) {missing}; it has {rows.column_names}.")
    return {"en": list(rows["text_en"]), "fr": list(rows["text_fr"])}


__all__ = ["LanguageData", "load_task_data", "read_parallel_anchors", "take"]
