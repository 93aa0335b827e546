r"""What every persistence backend is, and the pieces they share.

A backend computes the Euclidean minimum spanning trees (MST) of many point clouds at once and the differentiable
lengths :math:`\lVert x_v - x_u \rVert_2` of the tree edges (the 0-dimensional persistence death times,
:mod:`hf_relrep.topology.persistence`), and from them the deviation loss :math:`\sum |w - \beta|` that densification
reads; a backend may fuse that loss into its own computation (Prim on the host does).

Shared here: :class:`PersistenceBackend` (the interface and the generic deviation loss), :func:`edge_lengths` (the
differentiable lengths of given edges, by plain autograd ops), :func:`centred_gram` (the Gram product that squared
distances are built from, measured from each cloud's first point) and the error for non-finite points.
"""

from collections.abc import Sequence

import torch

from ...errors import NonFiniteError, RelRepError


NON_FINITE_MESSAGE = (
    "death_times got NaN or infinite points (or points so large that squared distances overflow); check the "
    "latents (e.g. a diverged model)."
)


def non_finite() -> NonFiniteError:
    """The error for NaN or infinite points."""
    return NonFiniteError(NON_FINITE_MESSAGE)


class PersistenceBackend:
    """One way of computing the spanning trees of point clouds: a name, what it can compute, the tree lengths.

    Subclasses set :attr:`name` and implement :meth:`tree_lengths`; :meth:`refusal` says which clouds they cannot
    take, and :meth:`deviation_losses` may be replaced by a fused computation.
    """

    name: str = ""

    def refusal(self, n: int, device: torch.device) -> RelRepError | None:
        """The error that says why clouds of ``n`` points on ``device`` cannot be computed here (a
        :class:`~hf_relrep.errors.ConfigurationError` for a missing package or a device the backend does not run
        on, a :class:`~hf_relrep.errors.TopologyError` for too many points), or ``None`` where they can."""
        return None

    def select(self, n: int, device: torch.device) -> "PersistenceBackend":
        """The backend that computes clouds of ``n`` points on ``device`` when this one is asked for: itself.

        Raises:
            ConfigurationError, TopologyError: this backend cannot compute them (:meth:`refusal`).
        """
        error = self.refusal(n, device)
        if error is not None:
            raise error
        return self

    def tree_lengths(self, clouds: list[torch.Tensor], *, sort: bool) -> list[torch.Tensor]:
        """Differentiable MST edge lengths of every tensor of clouds, in one computation.

        Args:
            clouds: floating-point tensors ``[G_s, n, d_s]`` on one device, the same ``n >= 2`` in each.
            sort: sort each cloud's lengths ascending (gradients follow the values); otherwise in edge order.

        Returns:
            One ``[G_s, n - 1]`` tensor per tensor of ``clouds``.

        Raises:
            NonFiniteError: a point is NaN or infinite (where checks are deferred, a later call raises it).
        """
        raise NotImplementedError

    def deviation_losses(
        self, clouds: list[torch.Tensor], betas: Sequence[float], valid: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        r"""Per tensor of clouds, :math:`\sum_{g, k} |w_{gk} - \beta|` over the MST edge lengths of the rows that
        count, and the lengths.

        Args:
            clouds: as for :meth:`tree_lengths`.
            betas: the target length :math:`\beta` of each tensor.
            valid: ``[G]`` boolean mask of the rows that count (the others add nothing and get no gradient), or
                ``None`` for all.

        Returns:
            ``(losses, lengths)``: the 0-dim loss of each tensor, with gradient
            :math:`\operatorname{sign}(w - \beta)` per edge (0 at :math:`w = \beta`), and its ``[G_s, n - 1]``
            lengths in edge order, without gradient.
        """
        lengths = self.tree_lengths(clouds, sort=False)
        losses = []
        for w, beta in zip(lengths, betas, strict=True):
            deviation = (w - beta).abs()
            losses.append((deviation if valid is None else deviation * valid.unsqueeze(1)).sum())
        return losses, [w.detach() for w in lengths]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def centred_gram(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gram [G, n, n], squared norms [G, n])`` of ``[G, n, d]`` clouds measured from each cloud's first point.

    Squared distances follow as ``norms_i + norms_j - 2 gram_ij``; the Gram form loses about
    :math:`\\epsilon \\lVert x \\rVert^2` to cancellation, which measuring from inside the cloud keeps small.
    """
    x = x - x[:, :1]
    gram = torch.bmm(x, x.transpose(1, 2))
    return gram, gram.diagonal(dim1=1, dim2=2)


def _edge_vectors(x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``x[g, v] - x[g, u]`` as ``[G, k, d]``: one gather of both ends from the flattened points, one subtraction."""
    groups, n, d = x.shape
    k = u.shape[1]
    offset = torch.arange(0, groups * n, n, device=x.device).unsqueeze(1)
    ends = x.reshape(groups * n, d).index_select(0, (torch.cat((v, u), dim=1) + offset).view(-1))
    ends = ends.view(groups, 2, k, d)
    return ends[:, 0] - ends[:, 1]


def edge_lengths(
    clouds: Sequence[torch.Tensor], edges: Sequence[tuple[torch.Tensor, torch.Tensor]], *, sort: bool = True
) -> list[torch.Tensor]:
    r"""Differentiable lengths :math:`\lVert x_v - x_u \rVert_2` of the edges ``(u, v)`` of each batch of clouds.

    The lengths come from the points, not from a Gram form (exact for close points), by plain autograd ops:
    ``vector_norm``'s backward is :math:`(x_v - x_u) / w` at ``v``, its negative at ``u``, and 0 (not NaN) where
    :math:`w = 0` (duplicate points).

    Args:
        clouds: tensors ``[G_s, n_s, d_s]``.
        edges: one ``(u, v)`` pair of ``[G_s, k_s]`` long tensors per tensor of ``clouds``.
        sort: sort the lengths of each cloud ascending (gradients follow the values).

    Returns:
        One ``[G_s, k_s]`` tensor per cloud batch.
    """
    lengths = [
        torch.linalg.vector_norm(_edge_vectors(x, u, v), dim=-1) for (u, v), x in zip(edges, clouds, strict=True)
    ]
    return [w.sort(dim=-1).values for w in lengths] if sort else lengths


__all__ = ["NON_FINITE_MESSAGE", "PersistenceBackend", "centred_gram", "edge_lengths", "non_finite"]
