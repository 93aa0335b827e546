"""The reproduce methods that choose their anchors or translate between absolute spaces.

- ``robust+kmeans``: robust relative models whose anchors are chosen by `hf_relrep.select_anchors` instead of
  taken as given: the k-means medoids (k = the run's anchor count) of a pool of parallel candidates, clustered in the
  English encoder's space. On the embedded parallel-sentiment set the pool is every parallel row a model may see:
  the anchors split and both training splits (4,768 rows); the test and validation splits stay out.
- ``absolute+orthogonal``: absolute models, stitched through a `LatentTranslation` fitted on the parallel anchors
  (`hf_relrep.stitch_translated`).

`anchor_pool` embeds (or reads from the embedding cache) both sides of the pool, `with_anchors` gives the per-language
data and features of one selection, `stitch_pair` stitches two trained models as a method says.
"""

import dataclasses
import warnings
from dataclasses import dataclass

import torch

from ...anchors.selection import select_anchors
from ...data import load_parallel_sentiment
from ...errors import ConfigurationError
from ...stitching.relative import AbsoluteStitchingWarning, stitch
from ...stitching.translated import stitch_translated
from .config import LANGUAGES, Method, ReproduceConfig
from .data import LanguageData
from .features import LanguageSetup, cached_embeddings


# The splits of the embedded set whose rows may become anchors (never the test or validation split).
POOL_SPLITS = ("anchors", "train_en", "train_fr")


@dataclass
class AnchorPool:
    """Parallel anchor candidates: texts and pooled backbone features per language, row i of each the same item."""

    texts: dict[str, list[str]]
    features: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.texts[LANGUAGES[0]])


def anchor_pool(config: ReproduceConfig, setups: dict[str, LanguageSetup]) -> AnchorPool:
    """Both sides of the parallel pool (`POOL_SPLITS` of the embedded set), embedded by each language's backbone.

    Raises:
        ConfigurationError: another dataset, or backbones that are not frozen (there are no cached features to
            choose anchors in).
    """
    if config.dataset != "parallel-sentiment" or not config.frozen_backbone:
        raise ConfigurationError(
            "Choosing anchors (robust+kmeans, --anchor-sweep) works on the embedded parallel-sentiment set with frozen "
            "backbones, where a parallel candidate pool and its cached features exist."
        )
    splits = load_parallel_sentiment()
    texts: dict[str, list[str]] = {language: [] for language in LANGUAGES}
    parts: dict[str, list[torch.Tensor]] = {language: [] for language in LANGUAGES}
    for split in POOL_SPLITS:  # split by split: the anchors and a language's own training set are cached already
        for language, setup in setups.items():
            split_texts = list(splits[split][f"text_{language}"])
            texts[language] += split_texts
            parts[language].append(
                cached_embeddings(
                    setup.backbone,
                    setup.tokenizer,
                    split_texts,
                    encoder_path=setup.encoder_path,
                    pooling=setup.pooling,
                    prefix=setup.prefix,
                    max_length=setup.max_length,
                    description=f"{language} {split}",
                )  # fmt: skip
            )
    features = {language: torch.cat(parts[language]) for language in LANGUAGES}
    return AnchorPool(texts, features)


def choose(pool: AnchorPool, k: int, strategy: str, seed: int = 0) -> torch.Tensor:
    """`select_anchors` on the English side of the pool: k indices, the same rows on both sides."""
    return select_anchors(pool.features[LANGUAGES[0]], k, strategy=strategy, seed=seed)


def with_anchors(
    pool: AnchorPool, indices: torch.Tensor, data: dict[str, LanguageData], setups: dict[str, LanguageSetup]
) -> tuple[dict[str, LanguageData], dict[str, LanguageSetup]]:
    """Per-language data and setups whose anchors are the pool rows `indices` (texts and cached features)."""
    rows = indices.tolist()
    new_data, new_setups = {}, {}
    for language in LANGUAGES:
        new_data[language] = dataclasses.replace(data[language], anchor_texts=[pool.texts[language][i] for i in rows])
        new_setups[language] = dataclasses.replace(setups[language], anchor_features=pool.features[language][indices])
    return new_data, new_setups


def anchor_variants(
    config: ReproduceConfig,
    methods: dict[str, Method],
    data: dict[str, LanguageData],
    setups: dict[str, LanguageSetup],
) -> dict[str, tuple[dict[str, LanguageData], dict[str, LanguageSetup]]]:
    """The data and setups of every method of the run that chooses its own anchors (method name → (data, setups))."""
    choosing = [name for name in config.methods if methods[name].anchor_strategy is not None]
    if not choosing:
        return {}
    pool = anchor_pool(config, setups)
    k = min(len(data[LANGUAGES[0]].anchor_texts), len(pool))
    return {
        name: with_anchors(pool, choose(pool, k, methods[name].anchor_strategy), data, setups) for name in choosing
    }


def anchor_latents(model, setup: LanguageSetup) -> torch.Tensor:
    """The latents of the anchors under an absolute model, from the cached anchor features."""
    model.eval()
    with torch.no_grad():
        return model(backbone_features=setup.anchor_features.to(model.device)).latents


def stitch_pair(
    method: Method,
    models: dict,
    setups: dict[str, LanguageSetup],
    data: dict[str, LanguageData],
    encoder: str,
    head: str,
):
    """`models[encoder]`'s encoder side with `models[head]`'s head: plainly, or through the method's translation
    fitted on the parallel anchors (from cached features when the backbones are frozen, else from the texts)."""
    if encoder == head:  # a model with its own head: nothing to stitch (a copy would predict exactly the same)
        return models[encoder].eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AbsoluteStitchingWarning)
        if method.translation is None:
            return stitch(encoder_from=models[encoder], head_from=models[head], share_weights=True)
    if setups[encoder].anchor_features is not None:
        anchors = {"anchor_latents": (anchor_latents(models[encoder], setups[encoder]), anchor_latents(models[head], setups[head]))}  # fmt: skip
    else:
        anchors = {
            "anchors": (data[encoder].anchor_texts, data[head].anchor_texts),
            "encoder_tokenizer": setups[encoder].tokenizer, "head_tokenizer": setups[head].tokenizer,
        }  # fmt: skip
    return stitch_translated(
        encoder_from=models[encoder], head_from=models[head], translation=method.translation, share_weights=True,
        **anchors,
    )  # fmt: skip


__all__ = ["POOL_SPLITS", "AnchorPool", "anchor_pool", "anchor_variants", "choose", "stitch_pair", "with_anchors"]
