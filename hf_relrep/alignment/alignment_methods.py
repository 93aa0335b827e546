"""The two families of maps an `EmbeddingAlignment` is built from, and how a method name resolves to one.

- ``"relative"`` (`RelativeMaps`): each side becomes its relative representation against its own anchors
  (`hf_relrep.relative.projection.relative_transform`, statistics from the anchors); method names are the
  normalizations of `hf_relrep.relative.normalizations.NORMALIZATIONS` (``none`` = vanilla cosines, ``robust``,
  ``whiten``).
- ``"translation"`` (`TranslationMaps`): queries translated into the corpus model's space by a
  `hf_relrep.alignment.translation.LatentTranslation`; method names are those of `TRANSLATION_METHODS`
  (``orthogonal``, ``linear``, ``affine``). The corpus is untouched, or, with ``centre``, both sides are centred on
  the corpus model's anchor mean.

A family is a class with ``method_names()``, ``min_fit_anchors(name, d_s, d_t, *, shrinkage)``,
``fit(name, source, target, *, shrinkage, centre)``, ``queries(x)``, ``corpus(y)``, ``corpus_untouched``,
``output_dim()``, ``tensors()`` and ``from_tensors(name, tensors, config)``.

Registry: `ALIGNMENT_FAMILIES` (family name → class).
"""

from typing import Any

import torch

from ..errors import ConfigurationError
from ..relative.normalizations import NORMALIZATIONS
from ..relative.projection import relative_transform
from ..utils.registry import Registry
from .translation import TRANSLATION_METHODS, LatentTranslation


class RelativeMaps:
    """Both sides as relative representations against their own anchors: ``x ↦ T(x; A_s)``, ``y ↦ T(y; A_t)``."""

    tensor_names = ("source_anchors", "target_anchors")
    corpus_untouched = False

    def __init__(self, name: str, source_anchors: torch.Tensor, target_anchors: torch.Tensor, *, shrinkage: float):
        self.name, self.shrinkage = name, shrinkage
        self.source_anchors, self.target_anchors = source_anchors, target_anchors

    @staticmethod
    def method_names() -> tuple[str, ...]:
        return NORMALIZATIONS.names()

    @staticmethod
    def min_fit_anchors(name: str, source_dim: int, target_dim: int, *, shrinkage: float) -> int:
        """Whitening without shrinkage needs more anchors than dimensions in each space; else 2."""
        return max(source_dim, target_dim) + 1 if name == "whiten" and shrinkage == 0.0 else 2

    @classmethod
    def fit(cls, name: str, source: torch.Tensor, target: torch.Tensor, *, shrinkage: float, centre: bool):
        if centre:
            raise ConfigurationError(
                "centre=True belongs to the translation methods; the relative normalizations robust and whiten "
                "centre on the anchors' mean already."
            )
        return cls(name, source.clone(), target.clone(), shrinkage=shrinkage)

    def _relative(self, latents: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        return relative_transform(
            latents, anchors.to(latents.device), normalization=self.name, stats="anchors", shrinkage=self.shrinkage
        )

    def queries(self, latents: torch.Tensor) -> torch.Tensor:
        return self._relative(latents, self.source_anchors)

    def corpus(self, latents: torch.Tensor) -> torch.Tensor:
        return self._relative(latents, self.target_anchors)

    def output_dim(self) -> int:
        return self.source_anchors.shape[0]

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"source_anchors": self.source_anchors, "target_anchors": self.target_anchors}

    @classmethod
    def from_tensors(cls, name: str, tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> "RelativeMaps":
        return cls(name, tensors["source_anchors"], tensors["target_anchors"], shrinkage=config["shrinkage"])


class TranslationMaps:
    """Queries translated into the corpus model's space, ``x ↦ τ(x)``; the corpus untouched, or both sides centred on
    the corpus model's anchor mean μ_t: ``x ↦ τ(x) − μ_t``, ``y ↦ y − μ_t``."""

    def __init__(self, translation: LatentTranslation, *, centre: bool):
        self.translation, self.centre = translation, centre

    @property
    def corpus_untouched(self) -> bool:
        return not self.centre

    @staticmethod
    def method_names() -> tuple[str, ...]:
        return TRANSLATION_METHODS.names()

    @staticmethod
    def min_fit_anchors(name: str, source_dim: int, target_dim: int, *, shrinkage: float) -> int:
        return 2

    @classmethod
    def fit(cls, name: str, source: torch.Tensor, target: torch.Tensor, *, shrinkage: float, centre: bool):
        return cls(LatentTranslation.fit(source, target, method=name), centre=centre)

    def queries(self, latents: torch.Tensor) -> torch.Tensor:
        translated = self.translation.to(latents.device)(latents)
        return translated - self.translation.target_mean.to(translated.dtype) if self.centre else translated

    def corpus(self, latents: torch.Tensor) -> torch.Tensor:
        if not self.centre:
            return latents
        return latents - self.translation.target_mean.to(latents.device, latents.dtype)

    def output_dim(self) -> int:
        return self.translation.target_dim

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f"translation.{key}": value for key, value in self.translation.state_dict().items()}

    @classmethod
    def from_tensors(cls, name: str, tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> "TranslationMaps":
        translation = LatentTranslation(name, config["source_dim"], config["target_dim"])
        state = {key.removeprefix("translation."): value for key, value in tensors.items()}
        translation.load_state_dict(state)
        return cls(translation.to(state["weight"].dtype), centre=config["centre"])


ALIGNMENT_FAMILIES: Registry[type] = Registry("alignment family")
ALIGNMENT_FAMILIES.register("relative", RelativeMaps)
ALIGNMENT_FAMILIES.register("translation", TranslationMaps)


def resolve_method(method: str) -> tuple[str, str]:
    """``"family:name"`` → ``(family, name)``; a bare name is accepted when exactly one family knows it.

    Raises:
        ConfigurationError: an unknown family or name, or a bare name that several families know.
    """
    if not isinstance(method, str):
        raise ConfigurationError(f"method must be a string like 'relative:whiten', got {method!r}.")
    known = [f"{family}:{name}" for family, maps in ALIGNMENT_FAMILIES.items() for name in maps.method_names()]
    family, _, name = method.rpartition(":")
    matches = [entry for entry in known if entry == method or (not family and entry.endswith(f":{name}"))]
    if len(matches) != 1:
        raise ConfigurationError(
            f"Unknown or ambiguous alignment method {method!r}; choose one of {', '.join(known)}."
        )
    family, _, name = matches[0].partition(":")
    return family, name


__all__ = ["ALIGNMENT_FAMILIES", "RelativeMaps", "TranslationMaps", "resolve_method"]
