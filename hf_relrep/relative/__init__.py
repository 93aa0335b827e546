"""The relative step: pooling a backbone's outputs into a latent, the normalizations and the similarity kernels.

latent z → normalize with the statistics of a reference set (`projection`) → similarities to the anchors
(`similarities`) → relative vector r. `pooling` turns a backbone's hidden states into z.
"""

from .pooling import backbone_output_size, pool, pool_outputs
from .projection import NormalizationStatistics, RelativeProjection, compute_statistics, relative_transform


__all__ = [
    "NormalizationStatistics",
    "RelativeProjection",
    "backbone_output_size",
    "compute_statistics",
    "pool",
    "pool_outputs",
    "relative_transform",
]
