"""How the encoder side gets its anchor latents: embedded in chunks through the same path as the inputs, cached
while the weights cannot change, re-embedded in train mode, or taken from precomputed features or inputs.

`AnchorLatentsMixin` holds these methods of `hf_relrep.modeling.encoder.RelativeModel`; it reads the model's
``config``, ``backbone``, ``adapter``, ``modality`` and ``backbone_features`` and keeps its caches on the model.
"""

import torch

from ..errors import AnchorError
from ..relative.pooling import backbone_output_size


ANCHOR_CHUNK_SIZE = 64
# Processed image/audio anchors are kept for reuse (train mode re-embeds them every step) up to this many bytes.
ANCHOR_INPUT_CACHE_BYTES = 256 * 2**20


class AnchorLatentsMixin:
    """The anchor-latent methods of `RelativeModel` (see the module docstring)."""

    def set_anchor_features(self, features: torch.Tensor | None) -> None:
        """Use precomputed pooled backbone outputs of the anchors instead of running the backbone on them.

        For training on cached features of a frozen backbone (see ``backbone_features`` in `forward`): the anchors
        then cost one adapter call per step. Ignored as soon as any backbone parameter requires grad, since the
        features would be stale. `None` goes back to embedding the anchors with the backbone.

        Args:
            features: ``[num_anchors, backbone output size]``, pooled like the model's inputs.
        """
        if features is not None:
            expected = (self.config.num_anchors, backbone_output_size(self.config.backbone))
            if tuple(features.shape) != expected:
                raise AnchorError(
                    f"Anchor features must have shape {expected} (anchors × backbone hidden size), got "
                    f"{tuple(features.shape)}."
                )
            features = features.detach().to(self.device)
        self._anchor_feature_override = features
        self.clear_anchor_cache()

    def set_anchor_inputs(self, inputs: dict[str, torch.Tensor]) -> None:
        """Feed the backbone these inputs for the anchors instead of processing the stored anchors.

        For a backbone that reads something its processor does not make, e.g. the top transformer layers of a model
        trained on cached hidden states of the layer below (``inputs_embeds``): the anchors then go through the same
        path as the training inputs, with gradients where the backbone trains. Kept until the anchors change
        (`set_anchors`); not saved with the model.

        Args:
            inputs: backbone keyword arguments, each ``[num_anchors, ...]`` (an ``attention_mask [num_anchors, T]``
                is honoured: each chunk is cut to its longest row).

        Raises:
            AnchorError: a tensor without one row per anchor.
        """
        wrong = {
            name: tuple(v.shape) for name, v in inputs.items() if v.ndim == 0 or v.shape[0] != self.config.num_anchors
        }
        if wrong or not inputs:
            raise AnchorError(
                f"Anchor inputs need one row per anchor ({self.config.num_anchors}); got shapes {wrong or 'nothing'}."
            )
        count, mask = self.config.num_anchors, inputs.get("attention_mask")
        chunks = []
        for start in range(0, count, ANCHOR_CHUNK_SIZE):
            rows = slice(start, min(start + ANCHOR_CHUNK_SIZE, count))
            length = None if mask is None else max(1, int(mask[rows].sum(1).max()))
            chunk = {name: value[rows] if value.ndim < 2 or length is None else value[rows, :length]
                     for name, value in inputs.items()}  # fmt: skip
            chunks.append((list(range(rows.start, rows.stop)), chunk))
        self._anchor_input_cache = chunks
        self.clear_anchor_cache()

    def clear_anchor_cache(self) -> None:
        """Forget cached anchor latents; call after changing weights in place while in eval mode."""
        self._anchor_latent_cache = None
        self._anchor_feature_cache = None
        self._forward_calls = 0

    def _backbone_is_frozen(self) -> bool:
        return not any(param.requires_grad for param in self.backbone.parameters())

    def _anchor_features(self) -> torch.Tensor:
        """Pooled backbone outputs of the anchors, embedded in chunks through the same path as the inputs."""
        if self._anchor_feature_override is not None and self._backbone_is_frozen():
            # A plain attribute, not a buffer: follow the model when it moves to another device.
            self._anchor_feature_override = self._anchor_feature_override.to(self.device)
            return self._anchor_feature_override
        if self.config.num_anchors == 0:
            raise AnchorError(
                f"This model has no anchors. Build it with {self.modality.task_class}.from_backbone_pretrained(..., "
                f"{self.modality.anchor_argument}=[...]) or call model.set_anchors(anchors, processor)."
            )
        features, order = [], []
        for indices, inputs in self._anchor_inputs():
            features.append(self.backbone_features(inputs)[0])
            order.extend(indices)
        features = torch.cat(features)
        if order != list(range(len(order))):
            features = features[torch.as_tensor(order, device=features.device).argsort()]
        return features

    def _anchor_inputs(self):
        """The modality's anchor batches; image and audio ones processed once and kept (up to a memory budget)."""
        if self._anchor_input_cache is not None:
            for indices, inputs in self._anchor_input_cache:
                yield indices, {key: value.to(self.device) for key, value in inputs.items()}
            return
        cache, size = [], 0
        for indices, inputs in self.modality.anchor_batches(self, ANCHOR_CHUNK_SIZE):
            if cache is not None and self.modality.stores_arrays:
                size += sum(value.numel() * value.element_size() for value in inputs.values())
                if size <= ANCHOR_INPUT_CACHE_BYTES:
                    cache.append((indices, inputs))
                else:
                    cache = None
            yield indices, inputs
        if cache is not None and self.modality.stores_arrays:
            self._anchor_input_cache = cache

    def anchor_latents(self) -> torch.Tensor:
        """The anchor latents ``[num_anchors, latent_size]``, from cache when the weights cannot have changed."""
        if not self.training:
            if self._anchor_latent_cache is None:
                with torch.no_grad():
                    self._anchor_latent_cache = self.adapter(self._anchor_features())
            return self._anchor_latent_cache
        if self._backbone_is_frozen():
            if self._anchor_feature_cache is None:
                with torch.no_grad():
                    self._anchor_feature_cache = self._anchor_features()
            return self.adapter(self._anchor_feature_cache)
        refresh = self._anchor_latent_cache is None or self._forward_calls % self.config.anchor_refresh_steps == 0
        if refresh:
            latents = self.adapter(self._anchor_features())
            self._anchor_latent_cache = latents.detach()
            return latents
        return self._anchor_latent_cache


__all__ = ["ANCHOR_CHUNK_SIZE", "ANCHOR_INPUT_CACHE_BYTES", "AnchorLatentsMixin"]
