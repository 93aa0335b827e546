"""What the models of one language read: the backbone and tokenizer, cached pooled features, or tokenized text.

With a frozen backbone (the quick preset), the pooled backbone outputs of the training, test and anchor texts are
computed once and cached on disk (``hf_relrep.zoo.cache_root() / "embeddings"``), keyed by the encoder's files, the
pooling, the prefix, the truncation length and the texts; the models then train and predict on those features.
Otherwise they read tokenized text.
"""

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoTokenizer

from ..evaluation import predict, predict_features
from ..modeling import without_pooler
from ..zoo import cache_root, embed_texts, find_offline_encoder, offline_encoder
from .config import ReproduceConfig
from .data import LanguageData


def resolve_encoder(name_or_path: str) -> str:
    """An offline encoder name becomes its local folder (converted on first use); anything else is returned as is."""
    spec = find_offline_encoder(name_or_path)
    return name_or_path if spec is None else str(offline_encoder(spec.name))


def embedding_cache_dir() -> Path:
    """Folder of cached pooled embeddings: ``hf_relrep.zoo.cache_root() / "embeddings"``."""
    return cache_root() / "embeddings"


def encoder_fingerprint(path: str) -> str:
    """What identifies an encoder's weights for the cache: its folder, weight file sizes and config; else the id."""
    folder = Path(path)
    if folder.is_dir():
        stamp = [(p.name, p.stat().st_size) for p in sorted(folder.glob("*.safetensors"))]
        stamp.append(
            ("config.json", (folder / "config.json").read_text() if (folder / "config.json").exists() else "")
        )
        return json.dumps([str(folder.resolve()), stamp])
    return path


def cached_embeddings(
    backbone, tokenizer, texts: Sequence[str], *, encoder_path: str, pooling: str, prefix: str, max_length: int,
    description: str,
) -> torch.Tensor:  # fmt: skip
    """Pooled backbone outputs of `texts`, from the on-disk cache when the same encoder embedded the same texts."""
    key = hashlib.sha256(
        json.dumps([encoder_fingerprint(encoder_path), pooling, prefix, max_length, list(texts)]).encode()
    ).hexdigest()[:32]
    path = embedding_cache_dir() / f"{key}.safetensors"
    if path.exists():
        return load_file(path)["embeddings"]
    embeddings = embed_texts(
        backbone, tokenizer, list(texts), pooling=pooling, prefix=prefix, max_length=max_length, show_progress=True
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    save_file({"embeddings": embeddings.contiguous()}, temporary, metadata={"description": description})
    os.replace(temporary, path)  # atomic: an interrupted run never leaves a half-written cache file
    return embeddings


@dataclass
class LanguageSetup:
    """What the trained models of one language share: the backbone, its tokenizer, pooling, prefix and features.

    With a frozen backbone, `train_features`, `test_features` and `anchor_features` hold the cached pooled outputs;
    otherwise they are `None` and the models read tokenized text.
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


def prepare_language(config: ReproduceConfig, language: str, data: LanguageData) -> LanguageSetup:
    """Load `language`'s backbone and tokenizer; with a frozen backbone, embed (or read from cache) all its texts."""
    path = resolve_encoder(config.encoders[language])
    kwargs = {} if not config.allow_pickle else {"use_safetensors": False}
    backbone_config = AutoConfig.from_pretrained(path)
    backbone = AutoModel.from_pretrained(path, **without_pooler(backbone_config), **kwargs)
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


class FeatureDataset(torch.utils.data.Dataset):
    """Cached backbone features and labels as a map-style dataset with batched fetching (no Arrow round trips).

    It answers ``column_names`` and ``dataset["labels"]`` like a `datasets.Dataset`, which is what TopoTrainer's
    class-balanced sampler reads.
    """

    column_names = ["backbone_features", "labels"]

    def __init__(self, features: torch.Tensor, labels: Sequence[int]):
        self.features, self.labels = features, torch.as_tensor(list(labels), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        if isinstance(index, str):
            return {"backbone_features": self.features, "labels": self.labels}[index].tolist()
        return {"backbone_features": self.features[index], "labels": self.labels[index]}

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        return [{"backbone_features": self.features[i], "labels": self.labels[i]} for i in indices]


def train_dataset(setup: LanguageSetup, data: LanguageData):
    """The training set as the models read it: cached features, or tokenized text with labels."""
    from datasets import Dataset

    if setup.train_features is not None:
        return FeatureDataset(setup.train_features, data.train_labels)
    encoded = setup.tokenizer(
        [setup.prefix + t for t in data.train_texts], truncation=True, max_length=setup.max_length
    )
    return Dataset.from_dict({**encoded, "labels": data.train_labels})


def model_inputs(setup: LanguageSetup, dataset, indices: list[int]) -> dict:
    """Model inputs for a few rows of `train_dataset`: cached features, or padded token ids."""
    if isinstance(dataset, FeatureDataset):
        return {"backbone_features": dataset.features[indices]}
    rows = [{k: v for k, v in dataset[i].items() if k != "labels"} for i in indices]
    return dict(setup.tokenizer.pad(rows, return_tensors="pt"))


def predict_test_set(model, setup: LanguageSetup, data: LanguageData) -> list[int]:
    """Predicted class ids on `data`'s test set: from the cached features, or from the texts."""
    if setup.test_features is not None:
        return predict_features(model, setup.test_features)
    return predict(model, setup.tokenizer, data.test_texts, max_length=setup.max_length, prefix=setup.prefix)


__all__ = [
    "FeatureDataset",
    "LanguageSetup",
    "cached_embeddings",
    "embedding_cache_dir",
    "encoder_fingerprint",
    "model_inputs",
    "predict_test_set",
    "prepare_language",
    "resolve_encoder",
    "train_dataset",
]
