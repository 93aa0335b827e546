"""The configs, single sources of truth of hf-relrep's models: `RelativeEncoderConfig` (a relative-representation
classifier) and `TranslatedStitchConfig` (two absolute classifiers stitched through a latent translation)."""

import math
import warnings
from dataclasses import dataclass
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, GenerationConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .alignment.translation import TRANSLATION_METHODS
from .anchors.identity import anchor_fingerprint, check_anchor_count
from .errors import ConfigurationError
from .relative.layers import ADAPTERS, HEADS
from .relative.normalizations import NORMALIZATIONS, STATISTICS_SOURCES
from .relative.pooling import POOLING_MODES, backbone_output_size
from .relative.similarities import similarity_parts
from .utils.registry import Registry
from .version import __version__


@dataclass(frozen=True)
class Representation:
    """What the head of a `RelativeEncoderConfig` model reads.

    Attributes:
        uses_anchors: the model holds anchors and compares latents to them.
        reads: the field of `RelativeModelOutput` the head reads (``"relative"`` or ``"latents"``).
    """

    uses_anchors: bool
    reads: str


REPRESENTATIONS: Registry[Representation] = Registry("representation")
REPRESENTATIONS.register("relative", Representation(uses_anchors=True, reads="relative"))
REPRESENTATIONS.register("absolute", Representation(uses_anchors=False, reads="latents"))
# Keyword arguments PreTrainedConfig itself understands beyond its fields (see its __post_init__).
_BASE_CONFIG_KWARGS = {
    "num_labels", "torch_dtype", "output_attentions", "attn_implementation", "experts_implementation", "name_or_path",
    "_commit_hash", "per_layer_config", "model_type", "rope_scaling", "rope_theta", "_attn_implementation_internal",
    "_experts_implementation_internal",
}  # fmt: skip


def _check_number(name: str, value: Any, low: float, high: float, *, low_open=False, high_open=False, hint="") -> None:
    """Refuse a setting that is not a finite number in the given interval, naming it, its value and the range."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        high_text = "∞" if math.isinf(high) else f"{high:g}"
        raise ConfigurationError(f"{name} must lie in {left}{low:g}, {high_text}{right}{hint}, got {value!r}.")


@strict
class RelativeEncoderConfig(PreTrainedConfig):
    r"""Configuration of a [`RelativeModelForSequenceClassification`].

    The model reads: text → `backbone` → `pooling` → optional `adapter` → latent z → relative projection against
    the anchors (or nothing, in `"absolute"` mode) → classification `head` → logits.

    Every named setting is checked against its registry (`registries()`: `POOLING_MODES`, `ADAPTERS`,
    `REPRESENTATIONS`, `NORMALIZATIONS`, `STATISTICS_SOURCES`, `HEADS`); a name registered there is accepted here.

    Args:
        backbone (`PreTrainedConfig` or `dict`):
            Configuration of the wrapped model, any architecture `AutoModel` can build.
        pooling (`str`, defaults to `"cls"`):
            `"cls"` (the paper), `"mean"` (sentence-transformers, e5), `"max"`, `"last"` or `"pooler"` (the backbone's
            own pooled output).
        adapter (`str`, defaults to `"none"`):
            An optional trainable map after pooling: `"none"`, `"linear"` or `"mlp"` (Linear-GELU-Linear). Useful on a
            frozen backbone, so that the latent still has trainable parameters.
        adapter_size (`int`, *optional*):
            Output size of the adapter; defaults to the backbone's hidden size.
        representation (`str`, defaults to `"relative"`):
            `"relative"` (the head reads similarities to the anchors) or `"absolute"` (the head reads the latent:
            the baseline, which does not stitch across models).
        normalization (`str`, defaults to `"robust"`):
            `"none"` (vanilla cosine, Moschella et al. 2023), `"robust"` (per-dimension standardization, paper
            Def. 3.1) or `"whiten"` (full whitening: invariant to every invertible affine map).
        stats (`str`, defaults to `"anchors"`):
            Where the normalization statistics come from: `"anchors"` (the default: deterministic, works for a
            batch of one), `"batch"` (the paper's definition) or `"running"` (non-affine BatchNorm-style running
            estimates, frozen in eval mode, as in the paper's released code).
        running_momentum (`float`, defaults to 0.3):
            Momentum of the running estimates (the paper's released code uses 0.3).
        whiten_shrinkage (`float`, defaults to 0.0):
            Shrinkage λ of the covariance towards `tr(Σ)/d · I` before whitening; 0 keeps exact affine invariance.
        eps (`float`, defaults to 1e-5):
            Dimensions whose standard deviation over the statistics set is below `eps` are ignored.
        similarity (`str` or `list[str]`, defaults to `"cosine"`):
            The similarity to the anchors: `"cosine"`, `"euclidean"`, `"l1"` or `"linf"` (negative distances after
            the normalization), or a list of them: a product space whose parts are standardized per row and
            concatenated, so the head reads `num_anchors × len(similarity)` values (`hf_relrep.relative.similarities`).
        anchor_texts (`list[str]`):
            The anchors, in order. Saved with the model; their token ids are saved in the weights.
        anchor_count (`int`, *optional*):
            Number of anchors kept outside the config: images and audio live in `anchors.safetensors` beside the
            weights (their fingerprint is `anchor_fingerprint`). Text anchors are counted from `anchor_texts`.
        anchor_set_id (`str`, *optional*):
            The name of the parallel anchor set these anchors belong to (e.g. `"en-fr-sentiment/anchors@1"`). Two
            models stitch only if they declare the same id: anchor i of one is the counterpart of anchor i of the other.
        anchor_text_prefix (`str`, defaults to `""`):
            Prefix added to every text before tokenization (e5 expects `"passage: "`).
        anchor_refresh_steps (`int`, defaults to 1):
            In train mode, anchor latents are re-embedded (with gradient) every this many forward calls and reused
            (detached) in between. 1 is exact; the paper re-embeds every 500 steps.
        head (`str`, defaults to `"linear"`):
            `"linear"` (the paper: one Linear) or `"mlp"`.
        head_hidden_size (`int`, *optional*):
            Hidden size of the `"mlp"` head.
        classifier_dropout (`float`, defaults to 0.0):
            Dropout on the head's input.
        base_model (`str`, *optional*):
            The backbone checkpoint the model was built from (a Hub id or a local path), for model cards.
        provenance (`dict`, *optional*):
            Where the encoder side and the head came from, filled by `stitch()`.

    Example:

    ```python
    >>> from transformers import BertConfig
    >>> from hf_relrep import RelativeEncoderConfig, RelativeModelForSequenceClassification
    >>> backbone = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    >>> config = RelativeEncoderConfig(backbone=backbone, anchor_texts=["good", "bad", "fine"], num_labels=2)
    >>> model = RelativeModelForSequenceClassification(config)
    ```
    """

    model_type = "hf-relrep"
    # Trainer hands only the logits to compute_metrics.
    keys_to_ignore_at_inference = ["latents", "relative", "hidden_states", "attentions"]
    sub_configs_defaults = {"backbone": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    backbone: PreTrainedConfig | dict | None = None
    pooling: str = "cls"
    adapter: str = "none"
    adapter_size: int | None = None
    representation: str = "relative"
    normalization: str = "robust"
    stats: str = "anchors"
    running_momentum: float = 0.3
    whiten_shrinkage: float = 0.0
    eps: float = 1e-5
    similarity: str | list[str] | tuple[str, ...] = "cosine"
    anchor_texts: list[str] | None = None
    anchor_count: int | None = None
    anchor_set_id: str | None = None
    anchor_fingerprint: str | None = None
    anchor_text_prefix: str = ""
    anchor_max_length: int = 128
    anchor_refresh_steps: int = 1
    head: str = "linear"
    head_hidden_size: int | None = None
    classifier_dropout: float = 0.0
    base_model: str | None = None
    provenance: dict | None = None
    hf_relrep_version: str | None = None

    def __post_init__(self, **kwargs: Any):
        unknown = sorted(set(kwargs) - _BASE_CONFIG_KWARGS - set(GenerationConfig._get_default_generation_params()))
        if unknown:
            warnings.warn(
                f"RelativeEncoderConfig ignores unknown setting(s) {unknown}: written by a newer hf-relrep, or a typo. "
                "They are kept on the config and saved again, but nothing reads them.",
                UserWarning,
                stacklevel=3,
            )
        super().__post_init__(**kwargs)
        for name, registry in self.registries().items():
            registry.check(getattr(self, name), what=name)
        parts = similarity_parts(self.similarity)
        self.similarity = parts[0] if len(parts) == 1 else list(parts)  # JSON-stable: one name, or a list
        self._check_numbers()
        # The fingerprint covers the texts and the token ids in the weights: it is set by set_anchors and checked
        # when the weights are loaded (RelativePreTrainedModel.from_pretrained), not here, where no ids exist.
        if REPRESENTATIONS[self.representation].uses_anchors and self.anchor_texts is not None:
            check_anchor_count(len(self.anchor_texts), fix="pass more anchor_texts")
        elif REPRESENTATIONS[self.representation].uses_anchors and self.anchor_count is not None:
            check_anchor_count(self.anchor_count, fix="pass more anchors")

    @staticmethod
    def registries() -> dict[str, Registry]:
        """The named settings and the registry each is checked against (a new registration is accepted at once)."""
        return {
            "pooling": POOLING_MODES,
            "adapter": ADAPTERS,
            "representation": REPRESENTATIONS,
            "normalization": NORMALIZATIONS,
            "stats": STATISTICS_SOURCES,
            "head": HEADS,
        }

    def _check_numbers(self) -> None:
        """Every numeric setting in its range, finite: refused here rather than as NaN logits later."""
        inf = math.inf
        _check_number("eps", self.eps, 0.0, inf, low_open=True, hint=" (e.g. 1e-5)")
        _check_number("whiten_shrinkage", self.whiten_shrinkage, 0.0, 1.0, hint=" (0 keeps exact affine invariance)")
        _check_number("running_momentum", self.running_momentum, 0.0, 1.0, low_open=True, hint=" (the paper: 0.3)")
        _check_number("classifier_dropout", self.classifier_dropout, 0.0, 1.0, high_open=True)
        _check_number("anchor_refresh_steps", self.anchor_refresh_steps, 1, inf)
        _check_number("anchor_max_length", self.anchor_max_length, 1, inf)
        for name in ("adapter_size", "head_hidden_size"):
            if getattr(self, name) is not None:
                _check_number(name, getattr(self, name), 1, inf)
        if self.id2label is not None and len(self.id2label) < 1:
            raise ConfigurationError(
                "num_labels must be ≥ 1 (got 0): a classifier needs at least one output; pass num_labels=N or "
                "id2label={0: 'negative', 1: 'positive', ...}."
            )

    def get_text_config(self, decoder=None, encoder=None) -> PreTrainedConfig:
        """The backbone's text config: where token ids and vocabulary live (Trainer aligns pad/bos/eos there)."""
        backbone = self.__dict__.get("backbone")
        if isinstance(backbone, PreTrainedConfig):
            return backbone.get_text_config(decoder=decoder, encoder=encoder)
        return super().get_text_config(decoder=decoder, encoder=encoder)

    @property
    def num_anchors(self) -> int:
        """Number of anchors, i.e. the size of the relative representation."""
        if self.anchor_texts is not None:
            return len(self.anchor_texts)
        return self.anchor_count or 0

    @property
    def latent_size(self) -> int:
        """Size of the latent z: the adapter's output, else the backbone's hidden size."""
        if self.adapter != "none" and self.adapter_size is not None:
            return self.adapter_size
        return backbone_output_size(self.backbone)

    @property
    def head_input_size(self) -> int:
        """What the head reads: anchors × similarity parts (relative) or the latent size (absolute)."""
        if not REPRESENTATIONS[self.representation].uses_anchors:
            return self.latent_size
        return self.num_anchors * (1 if isinstance(self.similarity, str) else len(self.similarity))

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        output["hf_relrep_version"] = __version__
        return output


ABSOLUTE_KIND_NAMES = ("hf-relrep", "pooled", "first-token")
"""The kinds of absolute classifier a translated stitch splits into halves (`hf_relrep.modeling.translated`)."""


@strict
class TranslatedStitchConfig(PreTrainedConfig):
    r"""Configuration of a [`TranslatedModelForSequenceClassification`]: two absolute classifiers' halves joined by
    a latent translation.

    Args:
        encoder (`PreTrainedConfig` or `dict`):
            Config of the classifier the encoder half comes from (ours, or e.g. a `BertConfig`).
        head (`PreTrainedConfig` or `dict`):
            Config of the classifier the head half comes from; its labels are the model's.
        encoder_kind, head_kind (`str`):
            Where each classifier's halves are (`ABSOLUTE_KIND_NAMES`): ``"hf-relrep"``, ``"pooled"``,
            ``"first-token"``.
        translation (`str`, defaults to `"orthogonal"`):
            The translation method (`hf_relrep.alignment.translation.TRANSLATION_METHODS`).
        source_dim, target_dim (`int`):
            Sizes of the encoder half's latent and of the head half's input.
        num_anchors (`int`), anchor_set_id (`str`), anchor_fingerprint (`str`):
            The parallel anchors the translation was fitted on: how many, the set's declared name, and the
            fingerprint of the ordered (encoder texts, head texts) pairs.
        provenance (`dict`):
            Sources, revisions and content hashes of both halves, and the space comparison when asked for.
    """

    model_type = "hf-relrep-translated"
    sub_configs_defaults = {
        "encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert"),
        "head": SubConfigSpec(config_class=AutoConfig, model_type="bert"),
    }

    encoder: PreTrainedConfig | dict | None = None
    head: PreTrainedConfig | dict | None = None
    encoder_kind: str = "pooled"
    head_kind: str = "pooled"
    translation: str = "orthogonal"
    source_dim: int | None = None
    target_dim: int | None = None
    num_anchors: int | None = None
    anchor_set_id: str | None = None
    anchor_fingerprint: str | None = None
    provenance: dict | None = None
    hf_relrep_version: str | None = None

    def __post_init__(self, **kwargs: Any):
        super().__post_init__(**kwargs)
        for name in ("encoder_kind", "head_kind"):
            if getattr(self, name) not in ABSOLUTE_KIND_NAMES:
                raise ConfigurationError(
                    f"Unknown {name}={getattr(self, name)!r}; choose one of {', '.join(ABSOLUTE_KIND_NAMES)}."
                )
        if self.translation not in TRANSLATION_METHODS:
            raise ConfigurationError(
                f"Unknown translation={self.translation!r}; choose one of {', '.join(TRANSLATION_METHODS)}."
            )
        head = self.__dict__.get("head")
        if isinstance(head, PreTrainedConfig) and "id2label" not in kwargs:
            self.id2label = dict(head.id2label)

    def get_text_config(self, decoder=None, encoder=None) -> PreTrainedConfig:
        """The encoder half's text config: where token ids and vocabulary live."""
        source = self.__dict__.get("encoder")
        if isinstance(source, PreTrainedConfig):
            return source.get_text_config(decoder=decoder, encoder=encoder)
        return super().get_text_config(decoder=decoder, encoder=encoder)

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for part in ("encoder", "head"):  # where a source was loaded from is provenance's business, not its config's
            if isinstance(output.get(part), dict):
                output[part].pop("_name_or_path", None)
        output["hf_relrep_version"] = __version__
        return output


__all__ = ["ABSOLUTE_KIND_NAMES", "RelativeEncoderConfig", "TranslatedStitchConfig", "anchor_fingerprint"]
