"""Topology: 0-dimensional persistence of point clouds and the densification loss built on it.

`persistence` computes death times (minimum-spanning-tree edge lengths); `densification` turns the death times of
class-pure groups into the loss; `grouping` forms those groups. Both go through `dispatch`, the one place that picks a
backend (by device, cloud size and what is installed) among `backends/`: `boruvka` (torch, any device),
`numpy_prim` and `numba_prim` (Prim on the host for small CPU clouds), `gudhi` (a reference).
"""

from .densification import death_times_by_class, densification_loss
from .persistence import death_times


__all__ = ["death_times", "death_times_by_class", "densification_loss"]
