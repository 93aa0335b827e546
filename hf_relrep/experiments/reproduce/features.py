"""What the models of one language read: the backbone and tokenizer, cached pooled features, or tokenized text.

With a frozen backbone (the quick preset), the pooled backbone outputs of the training, test and anchor texts are
computed once and cached on disk (``hf_relrep.zoo.cache_root() / "embeddings"``), keyed by the content of the
encoder's files, the pooling, the prefix, the truncation length and the texts, and verified when read; the models then
train and predict on those features. Otherwise they read tokenized text.
"""

import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import try_to_load_from_cache
from transformers import AutoTokenizer

from ...evaluation import feature_columns, predict, predict_features
from ...modeling.loading import load_backbone
from ...utils.cache import folder_key, read_entry, write_entry
from ...zoo import cache_root, embed_texts, find_offline_encoder, offline_encoder
from .config import ReproduceConfig
from .data import LanguageData


#: Bumped when what an entry holds changes for the same inputs (e.g. how texts are pooled).
CACHE_FORMAT = 2


def resolve_encoder(name_or_path: str) -> str:
    """An offline encoder name becomes its local folder (converted on first use); anything else is returned as is."""
    spec = find_offline_encoder(name_or_path)
    return name_or_path if spec is None else str(offline_encoder(spec.name))


def embedding_cache_dir() -> Path:
    """Folder of cached pooled embeddings: ``hf_relrep.zoo.cache_root() / "embeddings"``."""
    return cache_root() / "embeddings"


def encoder_fingerprint(path: str) -> str:
    """What identifies an encoder for the cache: the content of all its files (`hf_relrep.utils.cache.folder_key`).

    A folder is hashed file by file (each file once per size, modification time and inode); a Hub id downloaded into
    the Hub cache uses that snapshot (whose weights are named by the Hub's sha256). Weights changed in place therefore
    give new embeddings, never stale ones. A Hub id that is not downloaded falls back to its name.
    """
    folder = Path(path)
    if not folder.is_dir():
        cached = try_to_load_from_cache(path, "config.json")
        if not isinstance(cached, str):
            return path
        folder = Path(cached).parent
    return folder_key(folder, memo_dir=cache_root())


def cached_embeddings(
    backbone, tokenizer, texts: Sequence[str], *, encoder_path: str, pooling: str, prefix: str, max_length: int,
    description: str,
) -> torch.Tensor:  # fmt: skip
    """Pooled backbone outputs of `texts`, from the on-disk cache when the same encoder embedded the same texts.

    Entries are keyed by the encoder's content (`encoder_fingerprint`), the pooling, prefix, truncation length and
    texts, and carry a checksum of their payload: an unreadable or altered entry is removed and rebuilt with a warning
    (`hf_relrep.utils.cache.read_entry`). Writes are atomic, so concurrent runs are safe.
    """
    key = hashlib.sha256(
        json.dumps(
            [CACHE_FORMAT, encoder_fingerprint(encoder_path), pooling, prefix, max_length, list(texts)]
        ).encode()
    ).hexdigest()
    path = embedding_cache_dir() / f"{key[:32]}.safetensors"
    entry = read_entry(path, key=key)
    if entry is not None and "embeddings" in entry:
        return entry["embeddings"]
    embeddings = embed_texts(
        backbone, tokenizer, list(texts), pooling=pooling, prefix=prefix, max_length=max_length, show_progress=True
    )
    write_entry(path, {"embeddings": embeddings}, key=key, description=description)
    return embeddings


@dataclass
class LanguageSetup:
    """What the trained models of one language share: the backbone, its tokenizer, pooling, prefix and features.

    With a frozen backbone, `train_features`, `test_features` and `anchor_features` hold the cached pooled outputs.
    When the backbone is the top layers of an encoder (`hf_relrep.experiments.study.top_layers`), `token_states` holds, per split
    (``"train"``, ``"test"``, ``"anchors"``), the cached hidden states those layers read (``inputs_embeds`` and
    ``attention_mask``). Otherwise both are `None` and the models read tokenized text.
    """

    encoder_path: str
    backbone: Any
    tokenizer: Any
    max_length: int
    pooling: str
    prefix: str
    train_features: torch.Tensor | None = None
    test_features: torch.Tensor | None = None
    anchor_features: torch.Tensor | None = None
    token_states: dict[str, dict[str, torch.Tensor]] | None = None


def prepare_language(config: ReproduceConfig, language: str, data: LanguageData) -> LanguageSetup:
    """Load `language`'s backbone and tokenizer; with a frozen backbone, embed (or read from cache) all its texts."""
    path = resolve_encoder(config.encoders[language])
    # Safetensors only (pickle with --allow-pickle), Hub downloads checked against the Hub's checksums.
    backbone = load_backbone(path, use_safetensors=False if config.allow_pickle else None)
    tokenizer = AutoTokenizer.from_pretrained(path)
    max_length = min(config.max_length, tokenizer.model_max_length)  # never past the backbone's positions
    setup = LanguageSetup(
        encoder_path=path, backbone=backbone, tokenizer=tokenizer, max_length=max_length,
        pooling=config.pooling_for(language), prefix=config.prefix_for(language),
    )  # fmt: skip
    if config.frozen_backbone:
        backbone.requires_grad_(False)
        embed = {"encoder_path": path, "pooling": setup.pooling, "prefix": setup.prefix, "max_length": max_length}
        setup.train_features = cached_embeddings(backbone, tokenizer, data.train_texts, description=f"{language} train", **embed)  # fmt: skip
        setup.test_features = cached_embeddings(backbone, tokenizer, data.test_texts, description=f"{language} test", **embed)  # fmt: skip
        setup.anchor_features = cached_embeddings(backbone, tokenizer, data.anchor_texts, description=f"{language} anchors", **embed)  # fmt: skip
    return setup


def prepare_languages(config: ReproduceConfig, data: dict[str, LanguageData]) -> dict[str, LanguageSetup]:
    """`prepare_language` for every language of `data`, saying on stderr which encoder is loading and embedding."""
    setups = {}
    for language, language_data in data.items():
        print(f"[{language}] encoder {config.encoders[language]}: loading and embedding", file=sys.stderr)
        setups[language] = prepare_language(config, language, language_data)
    return setups


class FeatureDataset(torch.utils.data.Dataset):
    """Precomputed model inputs (cached backbone features, or hidden states) and labels as a map-style dataset with
    batched fetching (no Arrow round trips).

    It answers ``column_names`` and ``dataset["labels"]`` like a `datasets.Dataset`, which is what TopoTrainer's
    class-balanced sampler reads.

    Args:
        features: ``[N, d]`` pooled backbone outputs (the ``backbone_features`` input), or a dict of model inputs with
            ``N`` rows each (e.g. ``inputs_embeds`` and ``attention_mask``).
        labels: ``N`` class ids.
    """

    def __init__(self, features: torch.Tensor | dict[str, torch.Tensor], labels: Sequence[int]):
        self.columns = dict(feature_columns(features))
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)
        self.column_names = [*self.columns, "labels"]

    def __len__(self) -> int:
        return len(self.labels)

    def rows(self, indices) -> dict[str, torch.Tensor]:
        """The model inputs of rows `indices`, batched."""
        return {name: value[indices] for name, value in self.columns.items()}

    def __getitem__(self, index):
        if isinstance(index, str):
            return (self.labels if index == "labels" else self.columns[index]).tolist()
        return {**self.rows(index), "labels": self.labels[index]}

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        return [self[i] for i in indices]


def collate_rows(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack `FeatureDataset` rows into a batch; with an ``attention_mask``, cut the token axis to the batch's longest
    row (the rows are padded to the longest of the whole split)."""
    batch = {name: torch.stack([row[name] for row in rows]) for name in rows[0]}
    mask = batch.get("attention_mask")
    if mask is not None:
        length = max(1, int(mask.sum(1).max()))
        for name, value in batch.items():
            if value.ndim >= 2 and value.shape[1] == mask.shape[1]:
                batch[name] = value[:, :length]
    return batch


def train_dataset(setup: LanguageSetup, data: LanguageData):
    """The training set as the models read it: cached features, or tokenized text with labels."""
    from datasets import Dataset

    if setup.train_features is not None:
        return FeatureDataset(setup.train_features, data.train_labels)
    if setup.token_states is not None:
        return FeatureDataset(setup.token_states["train"], data.train_labels)
    encoded = setup.tokenizer(
        [setup.prefix + t for t in data.train_texts], truncation=True, max_length=setup.max_length
    )
    return Dataset.from_dict({**encoded, "labels": data.train_labels})


def model_inputs(setup: LanguageSetup, dataset, indices: list[int]) -> dict:
    """Model inputs for a few rows of `train_dataset`: cached features, or padded token ids."""
    if isinstance(dataset, FeatureDataset):
        return dataset.rows(indices)
    rows = [{k: v for k, v in dataset[i].items() if k != "labels"} for i in indices]
    return dict(setup.tokenizer.pad(rows, return_tensors="pt"))


def predict_test_set(model, setup: LanguageSetup, data: LanguageData) -> list[int]:
    """Predicted class ids on `data`'s test set: from the cached features, or from the texts."""
    if setup.test_features is not None:
        return predict_features(model, setup.test_features)
    if setup.token_states is not None:
        return predict_features(model, setup.token_states["test"])
    return predict(model, setup.tokenizer, data.test_texts, max_length=setup.max_length, prefix=setup.prefix)


__all__ = [
    "FeatureDataset",
    "LanguageSetup",
    "cached_embeddings",
    "collate_rows",
    "embedding_cache_dir",
    "encoder_fingerprint",
    "model_inputs",
    "predict_test_set",
    "prepare_language",
    "prepare_languages",
    "resolve_encoder",
    "train_dataset",
]
