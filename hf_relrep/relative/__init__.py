"""The relative step: pooling a backbone's outputs into a latent, the normalizations and the similarity kernels.

latent z → normalize with the statistics of a reference set (`normalizations`) → similarities to the anchors
(`similarities`) → relative vector r, both run by `projection`. `pooling` turns a backbone's hidden states into z;
`layers` holds the trainable adapter after pooling and the head after the projection. Each named choice is a
registry (`hf_relrep.utils.registry`): `POOLING_MODES`, `NORMALIZATIONS`, `STATISTICS_SOURCES`, `SIMILARITIES`,
`ADAPTERS`, `HEADS`.
"""

from .normalizations import NormalizationStatistics, compute_statistics
from .pooling import backbone_output_size, pool, pool_outputs
from .projection import RelativeProjection, relative_transform


__all__ = [
    "NormalizationStatistics",
    "RelativeProjection",
    "backbone_output_size",
    "compute_statistics",
    "pool",
    "pool_outputs",
    "relative_transform",
]
