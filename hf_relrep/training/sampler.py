"""`ClassBalancedBatchSampler`: batches of b classes × n samples, each class a contiguous group, rank-aware."""

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from ..errors import ConfigurationError, DataError


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Batches of `classes_per_batch` classes × `samples_per_class` samples, each class a contiguous group.

    Every epoch, each class's indices are shuffled and cut into groups of n (a remainder smaller than n is left out
    of that epoch); batches take one group from each of b distinct classes, preferring the classes with the most groups
    left, so that all classes are used evenly. The batch list is the same on every process (it depends only on the
    seed and the epoch); process r keeps batches r, r + R, r + 2R, ..., so no two processes see the same sample and
    every process gets the same number of batches.

    Args:
        labels: the class of every example of the dataset.
        classes_per_batch: b; `None` means every class of the dataset.
        samples_per_class: n ≥ 2.
        seed: base seed; epoch e uses seed + e.
        num_replicas, rank: data-parallel world size and this process's rank.
    """

    def __init__(
        self,
        labels: Sequence[int],
        *,
        classes_per_batch: int | None,
        samples_per_class: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)
        self.classes = sorted(set(self.labels.tolist()))
        counts = {c: int((self.labels == c).sum()) for c in self.classes}
        if samples_per_class < 2:
            raise ConfigurationError(
                f"samples_per_class must be ≥ 2 (a group of 1 has no MST), got {samples_per_class}."
            )
        self.samples_per_class = samples_per_class
        self.classes_per_batch = len(self.classes) if classes_per_batch is None else classes_per_batch
        eligible = [c for c in self.classes if counts[c] >= samples_per_class]
        if self.classes_per_batch < 1 or len(eligible) < self.classes_per_batch:
            raise DataError(
                f"Cannot build batches of {self.classes_per_batch} classes × {samples_per_class} samples: only "
                f"{len(eligible)} classes have {samples_per_class} examples (class counts {counts}). Lower "
                "topo_classes_per_batch or topo_samples_per_class, or add data."
            )
        if len(self.classes) < 2:
            raise DataError(
                f"The train dataset holds a single class ({self.classes[0] if self.classes else 'none'}, "
                f"{len(self.labels)} examples): a classifier needs examples of at least 2 classes. Check the labels "
                "column (a filter or a split that kept one class?)."
            )
        never = {c: counts[c] for c in self.classes if counts[c] < samples_per_class}
        if never:
            raise DataError(
                f"Class(es) {sorted(never)} have fewer examples than topo_samples_per_class={samples_per_class} "
                f"(counts {never}): class-balanced batches would never include them, so the model would never be "
                f"trained on them. Lower topo_samples_per_class to {min(never.values())} or less (≥ 2), or add "
                "examples of those classes, or drop them from the dataset and the labels."
            )
        if self.classes_per_batch < 2:
            raise DataError(
                f"topo_classes_per_batch={self.classes_per_batch}: every batch would hold one class, so the "
                "classification loss would see a single label per step. Set topo_classes_per_batch ≥ 2 (or None for "
                "every class)."
            )
        self.seed, self.num_replicas, self.rank, self.epoch = seed, num_replicas, rank, 0
        if len(self._global_batches(0)) < num_replicas:
            raise DataError(
                f"The dataset yields fewer class-balanced batches than there are processes ({num_replicas}); lower "
                "topo_classes_per_batch or topo_samples_per_class."
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _global_batches(self, epoch: int) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        n, groups = self.samples_per_class, {}
        for c in self.classes:
            members = torch.nonzero(self.labels == c).flatten()
            members = members[torch.randperm(len(members), generator=generator)].tolist()
            groups[c] = [members[i : i + n] for i in range(0, len(members) - n + 1, n)]
        batches = []
        while True:
            available = [c for c in self.classes if groups[c]]
            if len(available) < self.classes_per_batch:
                break
            # Classes with the most groups left first; ties broken at random so no class is always favoured.
            ties = torch.rand(len(available), generator=generator).tolist()
            order = sorted(range(len(available)), key=lambda i: (-len(groups[available[i]]), ties[i]))
            chosen = sorted(available[i] for i in order[: self.classes_per_batch])
            batches.append([index for c in chosen for index in groups[c].pop()])
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._global_batches(self.epoch)
        usable = len(batches) - len(batches) % self.num_replicas
        self.epoch += 1  # a new order next time, also when nobody calls set_epoch
        yield from batches[self.rank : usable : self.num_replicas]

    def __len__(self) -> int:
        return len(self._global_batches(self.epoch)) // self.num_replicas
