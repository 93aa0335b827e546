"""Class-pure groups of a batch, the unit that topological densification reads (see :mod:`hf_relrep.topology.densification`).

On CPU the groups are read from the labels on the host (cheap, cached per label layout); on an accelerator they are
built with tensor ops on the device, with static shapes (``batch // n`` rows and a mask), so that nothing waits for
the device.
"""

import functools
from dataclasses import dataclass

import torch

from ..errors import ConfigurationError


@dataclass(frozen=True)
class ClassGroups:
    """Class-pure groups of a batch, all of one size, as tensors.

    Attributes:
        index: ``[G, n]`` batch positions of the members of each group, in batch order.
        classes: ``[G]`` class of each group (``-1`` on padding rows).
        valid: ``[G]`` which rows are groups, or ``None`` when all are (groups built on the host). Groups built on
            the device have a static ``G = batch // n`` rows, the real groups first, then padding.
        consecutive: the groups are the batch's first ``G·n`` samples in order (what TopoTrainer's sampler makes):
            their points are a view of the batch, no gather.
    """

    index: torch.Tensor
    classes: torch.Tensor
    valid: torch.Tensor | None = None
    consecutive: bool = False


def class_groups(
    labels: torch.Tensor, samples_per_class: int | None = None, *, on_device: bool | None = None
) -> list[ClassGroups]:
    """Class-pure groups of a batch: classes in order of first appearance, each class's groups in batch order.

    Args:
        labels: ``[batch]`` integer class of each sample.
        samples_per_class: ``None``: one group per class with all its samples; an integer ``n >= 2``: each class
            cut, in batch order, into consecutive groups of exactly ``n`` (leftovers dropped). Groups of one sample
            are never formed.
        on_device: build the groups with tensor ops where ``labels`` lives, with static shapes and no host
            synchronisation (needs ``samples_per_class``); the default on accelerators. ``False`` reads the labels on
            the host, the default on CPU, where it is cheaper.

    Returns:
        One :class:`ClassGroups` per group size (one at most with ``samples_per_class``); empty when no class has a
        group (with ``on_device``, a :class:`ClassGroups` whose ``valid`` is all false). Treat them as read-only: host
        groups are cached per label layout.
    """
    if on_device is None:
        on_device = labels.device.type != "cpu" and samples_per_class is not None
    if on_device:
        if samples_per_class is None:
            raise ConfigurationError("Class groups built on the device need samples_per_class (a static group size).")
        return [_device_groups(labels, samples_per_class)]
    return list(_host_groups(tuple(labels.tolist()), samples_per_class, labels.device))


@functools.lru_cache(maxsize=256)
def _host_groups(labels: tuple[int, ...], samples_per_class: int | None, device: torch.device) -> tuple[ClassGroups]:
    """`class_groups` from the labels as Python ints; cached, as a class-balanced sampler repeats few label layouts
    (the tensors are shared between calls: read-only)."""
    order: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        order.setdefault(int(label), []).append(index)
    by_size: dict[int, tuple[list[int], list[list[int]]]] = {}
    for label, indices in order.items():
        n = samples_per_class or len(indices)
        for start in range(0, len(indices) - n + 1 if n >= 2 else 0, n):
            classes, rows = by_size.setdefault(n, ([], []))
            classes.append(label)
            rows.append(indices[start : start + n])
    return tuple(
        ClassGroups(
            torch.tensor(rows, device=device),
            torch.tensor(classes, device=device),
            consecutive=[i for row in rows for i in row] == list(range(len(rows) * len(rows[0]))),
        )
        for classes, rows in by_size.values()
    )


def _device_groups(labels: torch.Tensor, n: int) -> ClassGroups:
    """The groups of :func:`class_groups` by tensor ops: ``batch // n`` rows, real groups first (same order)."""
    batch, device = labels.shape[0], labels.device
    rows = batch // n
    arange = torch.arange(batch, device=device)
    sorted_labels, perm = labels.sort(stable=True)  # each class contiguous, in batch order
    is_start = torch.ones(batch, dtype=torch.bool, device=device)
    is_start[1:] = sorted_labels[1:] != sorted_labels[:-1]
    start = torch.where(is_start, arange, 0).cummax(0).values
    rank = arange - start  # position within the class
    full = (torch.searchsorted(sorted_labels, sorted_labels, right=True) - start).div(n, rounding_mode="floor")
    first = perm.gather(0, start)  # the class's first batch position
    at_first = torch.zeros(batch, dtype=torch.long, device=device).scatter_(0, first, full)  # groups per class
    before = (at_first.cumsum(0) - at_first).gather(0, first)  # groups of the classes that appear earlier
    local = rank.div(n, rounding_mode="floor")
    slot = torch.where(local < full, before + local, rows) * n + rank.remainder(n)  # leftovers: a junk row
    table = torch.zeros((rows + 1) * n, dtype=torch.long, device=device).scatter_(0, slot, perm)
    index = table.view(rows + 1, n)[:rows]
    valid = arange[:rows] < at_first.sum()
    return ClassGroups(index, torch.where(valid, labels.gather(0, index[:, 0]), -1), valid)


__all__ = ["ClassGroups", "class_groups"]
