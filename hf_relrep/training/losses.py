r"""The densification loss as a module the trainer calls, returning its named components.

For a (micro-)batch made of class-pure groups G, with †(·) the 0-dimensional persistence death times
(minimum-spanning-tree edge lengths) of a group, z the latents (placement "pre") and r the relative vectors
(placement "post"):

    L_topo = λ_pre · mean_G Σ_{w ∈ †(z_G)} |w − β_pre| + λ_post · mean_G Σ_{w ∈ †(r_G)} |w − β_post|

The terms are averaged over groups, so their scale does not depend on how many groups a batch holds (the paper sums
over its b = 5 groups: its λ are ours / 5).
"""

from collections.abc import Mapping

import torch
from torch import nn

from ..errors import ConfigurationError, TopologyError
from ..topology.densification import densification


PLACEMENTS = ("pre", "post", "both")

# Which model output each placement reads.
SPACES = {"pre": "latents", "post": "relative"}


class DensificationLoss(nn.Module):
    """Topological densification of the class-pure groups of a batch, on the latent, the relative vector, or both.

    Args:
        placement: ``"pre"`` (latents z), ``"post"`` (relative vectors r) or ``"both"``.
        beta_pre, beta_post: target death time β per space.
        group_size: n, the size of the consecutive class-pure groups whose death times are read.

    Example:
        >>> loss = DensificationLoss("both", beta_pre=0.5, beta_post=1.0, group_size=4)
        >>> parts = loss(outputs, labels, weight_pre=1e-2, weight_post=2e-2)  # doctest: +SKIP
        >>> parts["loss"], parts["loss_topo_pre"], parts["topo_death_median_post"]  # doctest: +SKIP
    """

    def __init__(self, placement: str = "both", *, beta_pre: float, beta_post: float, group_size: int):
        super().__init__()
        if placement not in PLACEMENTS:
            raise ConfigurationError(f"placement must be one of {PLACEMENTS}, got {placement!r}.")
        if group_size < 2:
            raise ConfigurationError(f"group_size must be ≥ 2 (a group of one has no MST edge), got {group_size}.")
        self.placement, self.group_size = placement, group_size
        self.betas = {"pre": beta_pre, "post": beta_post}

    @property
    def spaces(self) -> tuple[str, ...]:
        """The spaces this loss reads, in order: a subset of ``("pre", "post")``."""
        return tuple(space for space in SPACES if self.placement in (space, "both"))

    def forward(
        self, outputs: Mapping[str, torch.Tensor], labels: torch.Tensor, *, weight_pre: float, weight_post: float
    ) -> dict[str, torch.Tensor]:
        """The weighted loss (``"loss"``) and, per space, ``loss_topo_<space>`` and ``topo_death_median_<space>``.

        Args:
            outputs: the model's output, with ``latents`` and (for "post") ``relative``.
            labels: ``[batch]`` class ids, class-pure groups of ``group_size`` consecutive samples.
            weight_pre, weight_post: λ at this step (the schedule is the caller's).
        """
        weights = {"pre": weight_pre, "post": weight_post}
        spaces = self.spaces
        for space in spaces:
            if outputs[SPACES[space]] is None:
                raise ConfigurationError(
                    f"Densification '{space}' reads the model output {SPACES[space]!r}, which this model does not "
                    "produce (an absolute model has no relative vector): use placement 'pre'."
                )
        # both spaces in one call: one grouping, one spanning-tree computation; no host synchronisation on GPUs
        results = densification(
            [outputs[SPACES[space]] for space in spaces],
            labels,
            betas=[self.betas[space] for space in spaces],
            samples_per_class=self.group_size,
        )
        total, parts = None, {}
        for space, result in zip(spaces, results, strict=True):
            topo = result.loss / result.num_groups
            weighted = weights[space] * topo
            total = weighted if total is None else total + weighted
            parts[f"loss_topo_{space}"] = topo.detach()
            parts[f"topo_death_median_{space}"] = result.median_death_time()
        if total is None:  # pragma: no cover - placement always names a space
            raise TopologyError("No space to densify.")
        return {"loss": total, **parts}
