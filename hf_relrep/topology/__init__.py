"""Topology: 0-dimensional persistence of point clouds and the densification loss built on it.

`persistence` computes death times (minimum-spanning-tree edge lengths) through one backend dispatch;
`densification` turns the death times of class-pure groups into the loss; `grouping` forms those groups.
"""

from .densification import death_times_by_class, densification_loss
from .persistence import death_times


__all__ = ["death_times", "death_times_by_class", "densification_loss"]
