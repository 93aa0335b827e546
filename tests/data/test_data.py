"""The shipped EN/FR set, the Amazon reviews loader on synthetic stand-ins, and the validation helpers."""

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest

from hf_relrep.data import (
    PARALLEL_SENTIMENT_FILE,
    PARALLEL_SPLITS,
    SENTIMENT_LABELS,
    STAR_LABELS,
    check_columns,
    check_parallel,
    load_amazon_reviews_multi,
    load_parallel_sentiment,
)
from hf_relrep.errors import AnchorError, ConfigurationError, DataError


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "amazon_reviews_multi_tiny"
EXPECTED_SIZES = {"train_en": 2000, "train_fr": 2000, "validation": 500, "test": 1000, "anchors": 768}


@pytest.fixture(scope="module")
def parallel() -> datasets.DatasetDict:
    return load_parallel_sentiment()


@pytest.fixture
def cache_dir(tmp_path: Path) -> str:
    return str(tmp_path / "hf_datasets_cache")


def _key(text: str) -> str:
    return re.sub(r"[^\w]+", "", text.lower())


# ------------------------------------------------------------------------------------------ shipped parallel set


def test_parallel_set_loads_without_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_hub(*args, **kwargs):
        raise AssertionError("load_parallel_sentiment must not go through datasets.load_dataset / the Hub")

    monkeypatch.setattr(datasets, "load_dataset", no_hub)
    data = load_parallel_sentiment()
    assert list(data) == list(PARALLEL_SPLITS)


def test_parallel_set_small_and_matches_card() -> None:
    assert PARALLEL_SENTIMENT_FILE.stat().st_size <= 2 * 1024 * 1024
    card = (PARALLEL_SENTIMENT_FILE.parent / "README.md").read_text(encoding="utf-8")
    digest = hashlib.sha256(PARALLEL_SENTIMENT_FILE.read_bytes()).hexdigest()
    assert digest in card, "the data card's sha256 is out of date; update hf_relrep/data/README.md"


def test_parallel_splits_sizes_features_and_balance(parallel: datasets.DatasetDict) -> None:
    assert {split: ds.num_rows for split, ds in parallel.items()} == EXPECTED_SIZES
    for split, ds in parallel.items():
        assert ds.column_names == ["id", "text_en", "text_fr", "label"]
        assert ds.features["label"].names == list(SENTIMENT_LABELS)
        counts = Counter(ds["label"])
        assert counts[0] == counts[1] == ds.num_rows // 2, split


def test_parallel_splits_disjoint_by_sentence(parallel: datasets.DatasetDict) -> None:
    seen: dict[str, dict[str, str]] = {"id": {}, "text_en": {}, "text_fr": {}}
    for split, ds in parallel.items():
        for column in seen:
            for value in ds[column]:
                key = value if column == "id" else _key(value)
                assert key not in seen[column], f"{column} {value!r} is in {seen[column].get(key)} and {split}"
                seen[column][key] = split
    assert not set(parallel["train_en"]["id"]) & set(parallel["train_fr"]["id"])


def test_parallel_texts_non_empty_and_clean(parallel: datasets.DatasetDict) -> None:
    for ds in parallel.values():
        for en, fr in zip(ds["text_en"], ds["text_fr"], strict=True):
            assert en.strip() and fr.strip()
            assert "\n" not in en and "\n" not in fr
            assert not re.search(r"[*@#](?=[^\W\d])", fr), f"Apertium mark left in {fr!r}"
            assert fr == fr.lower()


def test_anchors_are_parallel(parallel: datasets.DatasetDict) -> None:
    anchors = parallel["anchors"]
    assert check_parallel(anchors["text_en"], anchors["text_fr"]) == 768
    assert Counter(anchors["label"]) == {0: 384, 1: 384}


def test_parallel_language_view() -> None:
    data = load_parallel_sentiment(language="fr")
    row = data["test"][0]
    assert row["text"] == row["text_fr"]
    with pytest.raises(ConfigurationError, match="language"):
        load_parallel_sentiment(language="de")


# ------------------------------------------------------------------------------------------- Amazon reviews


@pytest.mark.parametrize("layout_dir", ["language_dirs", "mteb_text_label", "language_column"])
def test_amazon_loader_on_each_layout(layout_dir: str, cache_dir: str) -> None:
    data = load_amazon_reviews_multi(FIXTURES / layout_dir, cache_dir=cache_dir)
    assert set(data) == {"en", "fr"}
    for language, splits in data.items():
        assert {split: ds.num_rows for split, ds in splits.items()} == {"train": 30, "validation": 10, "test": 10}
        for ds in splits.values():
            assert ds.column_names == ["text", "label"]
            assert ds.features["label"].names == list(STAR_LABELS)
            assert Counter(ds["label"]) == dict.fromkeys(range(5), ds.num_rows // 5)
        marker = "SYNTHETIC review" if language == "en" else "Avis SYNTHÉTIQUE"
        assert all(text.startswith(marker) for text in splits["train"]["text"])
    # label = stars - 1: the generator writes stars = i % 5 + 1 into row i.
    assert data["en"]["test"]["label"] == [i % 5 for i in range(10)]


def test_amazon_loader_explicit_layout_matches_auto(cache_dir: str) -> None:
    auto = load_amazon_reviews_multi(FIXTURES / "language_column", ["fr"], cache_dir=cache_dir)
    explicit = load_amazon_reviews_multi(
        FIXTURES / "language_column", ["fr"], layout="language_column", cache_dir=cache_dir
    )
    assert auto["fr"]["train"].to_dict() == explicit["fr"]["train"].to_dict()


def test_amazon_loader_language_configs(tmp_path: Path, cache_dir: str) -> None:
    """One config per language, declared in a dataset card as on the Hub (here a local copy)."""
    root = tmp_path / "configs"
    yaml = ["---", "configs:"]
    for language in ("en", "fr"):
        yaml += [f"- config_name: {language}", "  data_files:"]
        for split in ("train", "validation", "test"):
            source = FIXTURES / "language_dirs" / language / f"{split}.jsonl"
            target = root / "data" / f"{split}-{language}.jsonl"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            yaml += [f"  - split: {split}", f"    path: data/{split}-{language}.jsonl"]
    (root / "README.md").write_text("\n".join([*yaml, "---", ""]), encoding="utf-8")
    data = load_amazon_reviews_multi(root, ["fr"], layout="language_configs", cache_dir=cache_dir)
    assert data["fr"]["validation"].num_rows == 10
    assert data["fr"]["train"][0]["text"].startswith("Avis SYNTHÉTIQUE")


def test_amazon_loader_options(cache_dir: str) -> None:
    data = load_amazon_reviews_multi(
        FIXTURES / "language_dirs",
        languages="en",
        splits=["train", "test"],
        include_title=True,
        max_samples={"train": 7},
        seed=3,
        cache_dir=cache_dir,
    )["en"]
    assert list(data) == ["train", "test"]
    assert data["train"].num_rows == 7
    assert data["test"][0]["text"] == "Synthetic title 0\nSYNTHETIC review 0: this product is terrible."


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def test_amazon_loader_missing_columns(tmp_path: Path, cache_dir: str) -> None:
    _write_jsonl(tmp_path / "data" / "en" / "train.jsonl", [{"review_body": "fine", "rating": 4}] * 5)
    with pytest.raises(
        DataError, match=r"missing column\(s\) \['stars \(or label\)'\].*expected.*found \['review_body', 'rating'\]"
    ):
        load_amazon_reviews_multi(tmp_path / "data", ["en"], cache_dir=cache_dir)


def test_amazon_loader_bad_stars(tmp_path: Path, cache_dir: str) -> None:
    _write_jsonl(tmp_path / "data" / "en" / "train.jsonl", [{"review_body": "fine", "stars": 0}] * 5)
    with pytest.raises(DataError, match="stars in 1..5"):
        load_amazon_reviews_multi(tmp_path / "data", ["en"], cache_dir=cache_dir)


def test_amazon_loader_missing_language_and_split(cache_dir: str) -> None:
    with pytest.raises(DataError, match="no rows with language == 'de'"):
        load_amazon_reviews_multi(FIXTURES / "language_column", ["de"], cache_dir=cache_dir)
    with pytest.raises(DataError, match="no folder 'de'"):
        load_amazon_reviews_multi(FIXTURES / "language_dirs", ["de"], layout="language_dirs", cache_dir=cache_dir)
    with pytest.raises(DataError, match=r"split\(s\) \['dev'\] not found"):
        load_amazon_reviews_multi(FIXTURES / "language_dirs", ["en"], splits=["dev"], cache_dir=cache_dir)
    with pytest.raises(ConfigurationError, match="layout"):
        load_amazon_reviews_multi(FIXTURES / "language_dirs", layout="by_language")


def test_amazon_loader_needs_language_column_without_language_folders(tmp_path: Path, cache_dir: str) -> None:
    _write_jsonl(tmp_path / "flat" / "train.jsonl", [{"review_body": "fine", "stars": 4}] * 5)
    with pytest.raises(DataError, match="language"):
        load_amazon_reviews_multi(tmp_path / "flat", ["en"], cache_dir=cache_dir)


# ------------------------------------------------------------------------------------------ validation helpers


def test_check_columns_accepts_good_data() -> None:
    ds = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 4]})
    check_columns(ds, ("text", "label"), num_labels=5)
    check_columns(datasets.DatasetDict({"train": ds}), ["text"])


def test_check_columns_names_missing_columns_and_split() -> None:
    data = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"sentence": ["a"], "label": [0]})})
    with pytest.raises(
        DataError, match=r"split 'train' is missing column\(s\) \['text'\].*found \['sentence', 'label'\]"
    ):
        check_columns(data, ("text", "label"))
    with pytest.raises(DataError, match=r"\['stars'\]"):
        check_columns(data, ("sentence",), label_column="stars", num_labels=5)


def test_check_columns_label_range_and_classlabel() -> None:
    ds = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 5, -1]})
    with pytest.raises(DataError, match=r"labels in \[0, 5\), found \[-1, 5\]"):
        check_columns(ds, ("text",), num_labels=5)
    binary = ds.select([0]).cast_column("label", datasets.ClassLabel(names=["neg", "pos"]))
    with pytest.raises(DataError, match="ClassLabel with 2 classes"):
        check_columns(binary, ("text",), num_labels=5)
    floats = datasets.Dataset.from_dict({"label": [0.5, 1.0]})
    with pytest.raises(DataError, match="integer"):
        check_columns(floats, (), num_labels=2)


def test_check_parallel() -> None:
    assert check_parallel(["a", "b"], ["x", "y"]) == 2
    assert check_parallel(np.zeros((3, 4)), np.ones((3, 8))) == 3
    with pytest.raises(AnchorError, match="got 3 and 2"):
        check_parallel(["a", "b", "c"], ["x", "y"])
    with pytest.raises(ValueError, match="same number"):  # AnchorError is a ValueError
        check_parallel(np.zeros((3, 4)), np.zeros((4, 4)))
    with pytest.raises(AnchorError, match="empty"):
        check_parallel([], [])
    with pytest.raises(AnchorError, match="empty text"):
        check_parallel(["a", " "], ["x", "y"])
