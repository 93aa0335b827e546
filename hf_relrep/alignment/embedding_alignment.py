"""Cross-model embedding search: query a corpus embedded by one model with queries embedded by another.

An `EmbeddingAlignment` is fitted on the embeddings of the same k anchor texts by two models: the *source* (the
query model) and the *target* (the corpus model), of possibly different sizes. It then maps queries with
`EmbeddingAlignment.map_queries` and stored corpus vectors with `EmbeddingAlignment.transform_corpus` into one
space where cosine similarity finds a query's documents; no corpus text is re-embedded. Two families of methods:

- ``"relative:<normalization>"`` (``none`` = vanilla cosines, ``robust``, ``whiten``; any name in
  `hf_relrep.relative.normalizations.NORMALIZATIONS`): each side becomes its relative representation against its own
  anchors (`hf_relrep.relative.projection.relative_transform`, statistics from the anchors), a k-dimensional vector
  in both models. The stored corpus vectors are re-projected.
- ``"translation:<method>"`` (``orthogonal``, ``linear``, ``affine``; any name in
  `hf_relrep.alignment.translation.TRANSLATION_METHODS`): the queries are translated into the corpus model's space
  (`hf_relrep.alignment.translation.fit_translation`); the corpus is left untouched (`corpus_untouched`), so an
  existing index keeps serving. With ``centre=True`` both sides are also centred on the corpus model's anchor mean
  (the translated queries, and each corpus vector: a re-projection again), which helps cosine search markedly.

Every fit measures its held-out retrieval quality on the anchors by K-fold cross-validation
(`hf_relrep.alignment.retrieval.cross_validated_quality`), keeps it as `EmbeddingAlignment.quality`, and warns with
`AlignmentQualityWarning` when it is near chance. `save_pretrained` / `from_pretrained` write and read a folder of
``alignment_config.json`` and ``alignment.safetensors`` (no pickle), atomically.

The method families live in `hf_relrep.alignment.alignment_methods` (registry `ALIGNMENT_FAMILIES`).
"""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..anchors.identity import anchor_fingerprint
from ..errors import AnchorError, ConfigurationError, CorruptCheckpointError, SourceNotFoundError
from ..relative.normalizations import check_finite_latents
from ..relative.projection import check_settings
from ..utils.files import atomic_folder
from ..version import __version__
from .alignment_methods import ALIGNMENT_FAMILIES, resolve_method
from .retrieval import RetrievalQuality, SearchResult, as_tensor, check_quality, cross_validated_quality, search


CONFIG_NAME = "alignment_config.json"
WEIGHTS_NAME = "alignment.safetensors"
FORMAT = "hf-relrep/embedding-alignment"
FORMAT_VERSION = 1
#: The most folds of the held-out check when none are given.
DEFAULT_FOLDS = 10
#: The shrinkage of ``"relative:whiten"`` when none is given (the best measured on real sentence encoders).
DEFAULT_SHRINKAGE = 0.5


def _fit_tensor(embeddings, name: str) -> torch.Tensor:
    """Anchor embeddings as a CPU tensor, float32 (float64 kept), checked finite."""
    tensor = as_tensor(embeddings, name).detach().cpu()
    tensor = tensor.to(torch.float64 if tensor.dtype == torch.float64 else torch.float32)
    check_finite_latents(name, tensor)
    return tensor


class EmbeddingAlignment:
    """An alignment between a query model's embedding space (source) and a corpus model's (target).

    Build one with `EmbeddingAlignment.fit` or `EmbeddingAlignment.from_pretrained`. `map_queries` takes source
    embeddings, `transform_corpus` target embeddings; their outputs are compared by cosine similarity (`search`).

    Attributes:
        method: ``"family:name"``, e.g. ``"relative:whiten"`` or ``"translation:orthogonal"``.
        source_dim, target_dim: the two models' embedding sizes.
        num_anchors: k, the anchors it was fitted on.
        shrinkage: λ of ``"relative:whiten"`` (0 for other methods).
        centre: translation methods: both sides centred on the corpus model's anchor mean.
        quality: the held-out `RetrievalQuality` measured when it was fitted.
        anchor_fingerprint: `hf_relrep.anchors.identity.anchor_fingerprint` of the anchor texts, when given.
        embeddings_fingerprint: the same of the two anchor embedding arrays (always).
        source_model, target_model: the models' names or ids, as given (recorded, not checked).

    Example:

    ```python
    >>> import torch
    >>> from hf_relrep.alignment import EmbeddingAlignment
    >>> query_model_anchors = torch.randn(300, 16)  # the same 300 texts embedded by two models
    >>> corpus_model_anchors = 2 * query_model_anchors @ torch.linalg.qr(torch.randn(16, 16)).Q + 1
    >>> alignment = EmbeddingAlignment.fit(query_model_anchors, corpus_model_anchors, method="translation:orthogonal")
    >>> alignment.corpus_untouched, alignment.quality.recall_at_1
    (True, 1.0)
    >>> hits = alignment.search(query_model_anchors[:5], corpus_model_anchors, k=1).indices
    >>> hits.flatten().tolist()
    [0, 1, 2, 3, 4]

    ```
    """

    def __init__(self, maps, config: dict[str, Any]):
        self._maps = maps
        self.method: str = config["method"]
        self.source_dim: int = config["source_dim"]
        self.target_dim: int = config["target_dim"]
        self.num_anchors: int = config["num_anchors"]
        self.shrinkage: float = config["shrinkage"]
        self.centre: bool = config["centre"]
        self.quality = RetrievalQuality.from_dict(config["quality"])
        self.anchor_fingerprint: str | None = config.get("anchor_fingerprint")
        self.embeddings_fingerprint: str = config["embeddings_fingerprint"]
        self.source_model: str | None = config.get("source_model")
        self.target_model: str | None = config.get("target_model")
        self.folds: int = config["folds"]
        self.seed: int = config["seed"]

    @classmethod
    def fit(
        cls,
        source_anchors: torch.Tensor | np.ndarray,
        target_anchors: torch.Tensor | np.ndarray,
        *,
        method: str = "relative:whiten",
        shrinkage: float | None = None,
        centre: bool = False,
        folds: int | None = None,
        seed: int = 0,
        distractors: torch.Tensor | np.ndarray | None = None,
        anchors: Sequence[Any] | None = None,
        source_model: str | None = None,
        target_model: str | None = None,
    ) -> "EmbeddingAlignment":
        """Fit on parallel anchors (row i of both arrays embeds the same text) and measure the held-out quality.

        Args:
            source_anchors: ``[k, d_s]`` the anchors embedded by the query model.
            target_anchors: ``[k, d_t]`` the same anchors, same order, embedded by the corpus model.
            method: ``"relative:none"`` (vanilla), ``"relative:robust"``, ``"relative:whiten"``,
                ``"translation:orthogonal"``, ``"translation:linear"`` or ``"translation:affine"``; a bare name
                (``"whiten"``, ``"orthogonal"``) works too.
            shrinkage: λ ∈ [0, 1] of ``"relative:whiten"`` (default `DEFAULT_SHRINKAGE`); 0 needs more anchors than
                dimensions in both spaces. Refused by other methods.
            centre: translation methods only: centre both sides on the corpus model's anchor mean (the corpus is then
                re-projected, no longer untouched).
            folds: K of the held-out quality's cross-validation, at least 2, with at least 2 anchors per fold;
                default ``min(10, k // 2)`` (10 folds fit on 90 % of the anchors: close to the final fit).
            seed: shuffles the anchors into folds.
            distractors: ``[D, d_t]`` a sample of the corpus (corpus-model embeddings of texts that are not
                anchors), added to every held-out gallery: the held-out quality then estimates a search among
                ~k/K + D documents instead of ~k/K (without them, the estimate is optimistic for a large corpus).
            anchors: the anchor texts (or raw items), recorded by fingerprint.
            source_model, target_model: names or ids of the two models, recorded in the saved config.

        Raises:
            AnchorError: row counts that differ, too few anchors for the method or for the folds, anchors not 2-D.
            ConfigurationError: an unknown method, a setting the method does not take, an invalid shrinkage.
            NonFiniteError: NaN or infinite anchor embeddings.

        Warns:
            AlignmentQualityWarning: the held-out recall@1 is near chance.
        """
        family, name = resolve_method(method)
        maps_class = ALIGNMENT_FAMILIES[family]
        if shrinkage is not None and (family, name) != ("relative", "whiten"):
            raise ConfigurationError(f"shrinkage is a setting of 'relative:whiten', not of {family}:{name!s}.")
        shrinkage = (DEFAULT_SHRINKAGE if shrinkage is None else shrinkage) if name == "whiten" else 0.0
        check_settings(eps=1e-5, shrinkage=shrinkage)
        if folds is not None and (not isinstance(folds, int) or isinstance(folds, bool) or folds < 2):
            raise ConfigurationError(
                f"folds must be an integer ≥ 2 (the held-out check is always run), got {folds!r}."
            )
        source, target = (
            _fit_tensor(source_anchors, "The source anchors"),
            _fit_tensor(target_anchors, "The target anchors"),
        )
        count = source.shape[0]
        if count != target.shape[0]:
            raise AnchorError(
                f"{count} source anchors but {target.shape[0]} target anchors: row i of each must embed the same "
                "anchor text, by the query model and by the corpus model."
            )
        if anchors is not None and len(anchors) != count:
            raise AnchorError(f"{len(anchors)} anchor texts for {count} anchor embeddings.")
        folds = max(2, min(DEFAULT_FOLDS, count // 2)) if folds is None else folds
        if count < 2 * folds:
            raise AnchorError(
                f"The held-out check ({folds}-fold cross-validation) needs at least {2 * folds} anchors (2 per fold), "
                f"got {count}; pass more anchors or fewer folds."
            )
        needed = maps_class.min_fit_anchors(name, source.shape[1], target.shape[1], shrinkage=shrinkage)
        held_out = -(-count // folds)
        if count - held_out < needed:
            raise AnchorError(
                f"{family}:{name} needs at least {needed} anchors to fit"
                + (f" (whitening {max(source.shape[1], target.shape[1])}-dimensional embeddings without shrinkage)"
                   if needed > 2 else "")
                + f", and the held-out check fits on {count - held_out} of the {count} anchors ({folds} folds). Pass "
                "more anchors" + (", or a shrinkage > 0." if needed > 2 else ".")
            )  # fmt: skip

        def fit_maps(source_part: torch.Tensor, target_part: torch.Tensor):
            return maps_class.fit(name, source_part, target_part, shrinkage=shrinkage, centre=centre)

        def fit_pair(source_part: torch.Tensor, target_part: torch.Tensor):
            maps = fit_maps(source_part, target_part)
            return maps.queries, maps.corpus

        if distractors is not None:
            distractors = _fit_tensor(distractors, "The distractors")
            if distractors.shape[1] != target.shape[1]:
                raise AnchorError(
                    f"The distractors are {distractors.shape[1]}-dimensional, the target anchors "
                    f"{target.shape[1]}-dimensional: embed the distractors with the corpus model."
                )
        quality = cross_validated_quality(fit_pair, source, target, folds=folds, seed=seed, distractors=distractors)
        config = {
            "method": f"{family}:{name}",
            "source_dim": source.shape[1],
            "target_dim": target.shape[1],
            "num_anchors": count,
            "shrinkage": shrinkage,
            "centre": bool(centre),
            "quality": quality.to_dict(),
            "anchor_fingerprint": None if anchors is None else anchor_fingerprint(anchors),
            "embeddings_fingerprint": anchor_fingerprint([source, target]),
            "source_model": source_model,
            "target_model": target_model,
            "folds": folds,
            "seed": seed,
        }
        alignment = cls(fit_maps(source, target), config)
        check_quality(quality, stacklevel=2)
        return alignment

    # ------------------------------------------------------------------------------------------------- mapping

    @property
    def family(self) -> str:
        """``"relative"`` or ``"translation"``."""
        return self.method.partition(":")[0]

    @property
    def corpus_untouched(self) -> bool:
        """`transform_corpus` is the identity: an index built on the corpus model's embeddings serves as it is."""
        return self._maps.corpus_untouched

    @property
    def output_dim(self) -> int:
        """The size of mapped vectors: k for the relative family, the corpus model's size for translations."""
        return self._maps.output_dim()

    def _apply(self, embeddings, expected: int, side: str, model: str | None, function):
        as_numpy = isinstance(embeddings, np.ndarray)
        latents = as_tensor(embeddings, f"The {side} embeddings")
        if latents.shape[1] != expected:
            named = f" ({model})" if model else ""
            raise AnchorError(
                f"This alignment reads {expected}-dimensional {side} embeddings{named}, got {latents.shape[1]}-"
                f"dimensional ones: embed the {side} with the model the alignment was fitted for."
            )
        check_finite_latents(f"The {side} embeddings", latents)
        mapped = function(latents)
        return mapped.detach().cpu().numpy() if as_numpy else mapped

    def map_queries(self, embeddings: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Map query-model embeddings ``[n, d_s]`` to ``[n, output_dim]`` vectors comparable with `transform_corpus`.

        Raises:
            AnchorError: the embeddings are not ``d_s``-dimensional (another model's).
            NonFiniteError: NaN or infinite embeddings.
        """
        return self._apply(embeddings, self.source_dim, "queries", self.source_model, self._maps.queries)

    def transform_corpus(self, embeddings: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Re-project corpus-model embeddings ``[n, d_t]`` to ``[n, output_dim]``; the identity if `corpus_untouched`.

        Raises:
            AnchorError: the embeddings are not ``d_t``-dimensional (another model's).
            NonFiniteError: NaN or infinite embeddings.
        """
        return self._apply(embeddings, self.target_dim, "corpus", self.target_model, self._maps.corpus)

    def search(
        self,
        queries: torch.Tensor | np.ndarray,
        corpus: torch.Tensor | np.ndarray,
        k: int = 10,
        *,
        query_batch_size: int = 1024,
        corpus_chunk_size: int = 16384,
    ) -> SearchResult:
        """Top-k corpus rows by cosine for query-model embeddings against corpus-model embeddings (`search`): the
        queries are mapped once, the corpus re-projected chunk by chunk (never all at once)."""
        transform = None if self.corpus_untouched else self.transform_corpus
        return search(
            self.map_queries(queries),
            corpus,
            k,
            corpus_transform=transform,
            query_batch_size=query_batch_size,
            corpus_chunk_size=corpus_chunk_size,
        )

    # ------------------------------------------------------------------------------------------------- saving

    def config(self) -> dict[str, Any]:
        """What `save_pretrained` writes to ``alignment_config.json``."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "source_dim": self.source_dim,
            "target_dim": self.target_dim,
            "num_anchors": self.num_anchors,
            "shrinkage": self.shrinkage,
            "centre": self.centre,
            "corpus_untouched": self.corpus_untouched,
            "quality": self.quality.to_dict(),
            "anchor_fingerprint": self.anchor_fingerprint,
            "embeddings_fingerprint": self.embeddings_fingerprint,
            "source_model": self.source_model,
            "target_model": self.target_model,
            "folds": self.folds,
            "seed": self.seed,
            "hf_relrep_version": __version__,
        }

    def save_pretrained(self, save_directory: str | Path) -> Path:
        """Write ``alignment_config.json`` and ``alignment.safetensors`` into `save_directory`, atomically: a crash
        leaves the previous content or the new one. Other files in the folder are kept.

        Returns:
            The folder.
        """
        tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in self._maps.tensors().items()}
        text = json.dumps(self.config(), indent=2, ensure_ascii=False) + "\n"
        with atomic_folder(save_directory, owned=lambda name: name in (CONFIG_NAME, WEIGHTS_NAME)) as tmp:
            save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "hf_relrep": FORMAT})
            (tmp / CONFIG_NAME).write_text(text, encoding="utf-8")
        return Path(save_directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "EmbeddingAlignment":
        """Load an alignment written by `save_pretrained`; it maps exactly as the saved one did.

        Raises:
            SourceNotFoundError: the folder or one of its two files is missing.
            CorruptCheckpointError: the files cannot be read or are not an hf-relrep embedding alignment.
        """
        directory = Path(directory)
        for path in (directory / CONFIG_NAME, directory / WEIGHTS_NAME):
            if not path.is_file():
                raise SourceNotFoundError(
                    f"{path} does not exist: not a folder written by EmbeddingAlignment.save_pretrained."
                )
        try:
            config = json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8"))
            tensors = load_file(str(directory / WEIGHTS_NAME))
        except (OSError, ValueError, SafetensorError) as error:
            raise CorruptCheckpointError(f"Cannot read the embedding alignment in {directory}: {error}") from error
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise CorruptCheckpointError(f"{directory / CONFIG_NAME} is not an hf-relrep embedding alignment config.")
        if config.get("format_version", 0) > FORMAT_VERSION:
            raise CorruptCheckpointError(
                f"{directory} was written in alignment format {config['format_version']}, newer than this hf-relrep "
                f"reads ({FORMAT_VERSION}); upgrade hf-relrep."
            )
        try:
            family, name = resolve_method(config["method"])
            maps = ALIGNMENT_FAMILIES[family].from_tensors(name, tensors, config)
            return cls(maps, config)
        except (KeyError, RuntimeError, TypeError, ConfigurationError) as error:
            raise CorruptCheckpointError(f"The embedding alignment in {directory} is incomplete: {error!r}") from error

    def __repr__(self) -> str:
        untouched = ", corpus untouched" if self.corpus_untouched else ""
        return (
            f"EmbeddingAlignment({self.method!r}, {self.source_dim} → {self.target_dim} dims, {self.num_anchors} "
            f"anchors{untouched}; held-out {self.quality})"
        )


__all__ = [
    "CONFIG_NAME",
    "DEFAULT_SHRINKAGE",
    "WEIGHTS_NAME",
    "EmbeddingAlignment",
]
