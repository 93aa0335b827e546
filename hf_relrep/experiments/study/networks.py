"""Small trained networks for the synthetic studies: Gaussian-cluster data and an MLP with a relative step.

The network is ``x → Linear → σ → Linear → σ = z → T_rel(z; anchors) → Linear → logits``: the second Linear is "the
layer before the relative step", the one the invariance study transforms. Everything runs in float64 so that a map
the relative step is exactly invariant to changes the relative vector by ~1e-15, far below any decision margin.
"""

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ...errors import ConfigurationError
from ...relative.projection import RelativeProjection


DTYPE = torch.float64

#: The activations the studies cover; LeakyReLU's slope and ELU's α are PyTorch's defaults.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
}


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with `count` torch threads (`None`: unchanged), restoring the previous number afterwards.

    The synthetic networks are tiny: one thread is faster than two, and on a shared machine several threads of
    small kernels spin against each other.
    """
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class SyntheticTask:
    """A classification task of Gaussian clusters (each class a mixture of a few blobs), split three ways.

    Attributes:
        train_x, train_y, test_x, test_y: ``[n, input_size]`` inputs (float64) and ``[n]`` labels.
        anchor_x: ``[k, input_size]`` anchor inputs, drawn like training inputs (disjoint from them).
        num_classes: number of classes.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    anchor_x: torch.Tensor
    num_classes: int


def make_task(
    seed: int = 0,
    *,
    num_classes: int = 5,
    input_size: int = 16,
    blobs_per_class: int = 3,
    train_size: int = 2000,
    test_size: int = 1024,
    num_anchors: int = 64,
    spread: float = 0.8,
) -> SyntheticTask:
    """Draw a [`SyntheticTask`]: blob centres ~ N(0, spread² I), points = centre + N(0, I).

    The blobs overlap (a few points per hundred sit near a decision boundary), so that a transformation the relative
    step is not invariant to visibly changes predictions.
    """
    generator = torch.Generator().manual_seed(seed)
    centres = spread * torch.randn(num_classes, blobs_per_class, input_size, generator=generator, dtype=DTYPE)

    def draw(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(num_classes, (count,), generator=generator)
        blobs = torch.randint(blobs_per_class, (count,), generator=generator)
        noise = torch.randn(count, input_size, generator=generator, dtype=DTYPE)
        return centres[labels, blobs] + noise, labels

    train_x, train_y = draw(train_size)
    test_x, test_y = draw(test_size)
    anchor_x, _ = draw(num_anchors)
    return SyntheticTask(train_x, train_y, test_x, test_y, anchor_x, num_classes)


class RelativeMLP(nn.Module):
    """``x → Linear → σ → Linear (last) → σ = z → [z ↦ Mz + h] → relative step → Linear head``.

    Args:
        input_size, hidden_size, latent_size: layer widths; latent_size is the dimension of z.
        num_anchors, num_classes: the relative vector's size and the head's output size.
        activation: a name in `ACTIVATIONS`.
        normalization, stats, shrinkage: the [`RelativeProjection`] settings.

    Attributes:
        latent_map: ``(M, h)`` applied to z before the relative step, or `None` (the identity). The invariance study
            sets it to model two networks whose latents differ by an affine map.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        latent_size: int,
        num_anchors: int,
        num_classes: int,
        *,
        activation: str,
        normalization: str,
        stats: str,
        shrinkage: float = 0.0,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigurationError(f"Unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}.")
        self.activation = activation
        self.first = nn.Linear(input_size, hidden_size)
        self.last = nn.Linear(hidden_size, latent_size)
        self.sigma = ACTIVATIONS[activation]()
        self.projection = RelativeProjection(
            latent_size, normalization=normalization, stats=stats, shrinkage=shrinkage
        )
        self.head = nn.Linear(num_anchors, num_classes)
        self.latent_map: tuple[torch.Tensor, torch.Tensor] | None = None

    def preactivations(self, x: torch.Tensor) -> torch.Tensor:
        """The input of the last activation, ``W_last σ(W_first x + b_first) + b_last``."""
        return self.last(self.sigma(self.first(x)))

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """The latent z (after `latent_map` when one is set)."""
        z = self.sigma(self.preactivations(x))
        if self.latent_map is not None:
            matrix, shift = self.latent_map
            z = z @ matrix.T + shift
        return z

    def relative(self, x: torch.Tensor, anchor_x: torch.Tensor) -> torch.Tensor:
        """The relative vector of `x` against the anchors (what the head reads)."""
        return self.projection(self.latents(x), self.latents(anchor_x))

    def forward(self, x: torch.Tensor, anchor_x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relative(x, anchor_x))


@dataclass(frozen=True)
class TrainSettings:
    """How the small networks are built and trained (AdamW on random batches), and how many test inputs score them."""

    hidden_size: int = 64
    latent_size: int = 32
    steps: int = 300
    batch_size: int = 128
    learning_rate: float = 1e-2
    weight_decay: float = 1e-4
    calibration_batches: int = 16
    test_size: int = 1024


def build_network(
    task: SyntheticTask, activation: str, normalization: str, stats: str, settings: TrainSettings, seed: int
) -> RelativeMLP:
    """A fresh [`RelativeMLP`] for `task`, initialised from `seed`, in float64."""
    torch.manual_seed(seed)
    model = RelativeMLP(
        task.train_x.shape[1], settings.hidden_size, settings.latent_size, task.anchor_x.shape[0], task.num_classes,
        activation=activation, normalization=normalization, stats=stats,
    )  # fmt: skip
    return model.to(DTYPE)


def train_network(
    model: RelativeMLP, x: torch.Tensor, y: torch.Tensor, anchor_x: torch.Tensor, settings: TrainSettings, seed: int
) -> RelativeMLP:
    """Train `model` with cross-entropy on random batches of ``(x, y)``; returns it in eval mode.

    With ``stats="running"`` the running statistics are recalibrated at the end (see [`calibrate_running`]).
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.steps)
    model.train()
    for _ in range(settings.steps):
        batch = torch.randint(x.shape[0], (settings.batch_size,), generator=generator)
        loss = nn.functional.cross_entropy(model(x[batch], anchor_x), y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    calibrate_running(model, x, anchor_x, settings, seed)
    return model


@torch.no_grad()
def calibrate_running(
    model: RelativeMLP, x: torch.Tensor, anchor_x: torch.Tensor, settings: TrainSettings, seed: int
) -> None:
    """Re-estimate the running statistics of a ``stats="running"`` network from a fixed stream of batches.

    The stream (random training batches joined with the anchors, as `RelativeProjection` does in train mode) depends
    only on `seed`, so two networks calibrated with the same seed saw the same inputs: their running statistics are
    a function of the network alone, as after training. A no-op for other statistics sources.
    """
    projection = model.projection
    if not hasattr(projection, "running_mean"):
        return
    generator = torch.Generator().manual_seed(seed + 7919)
    projection.reset_running_stats()
    anchors = model.latents(anchor_x)
    for _ in range(settings.calibration_batches):
        batch = torch.randint(x.shape[0], (settings.batch_size,), generator=generator)
        projection.update_running_stats(torch.cat([model.latents(x[batch]), anchors]))


def clone(model: RelativeMLP) -> RelativeMLP:
    """An independent copy (parameters, buffers and latent map)."""
    return copy.deepcopy(model)


@torch.no_grad()
def predict(model: RelativeMLP, x: torch.Tensor, anchor_x: torch.Tensor, *, batch_size: int | None = None):
    """Relative vectors ``[n, k]`` and predicted classes ``[n]``, in consecutive batches (`None`: one batch)."""
    model.eval()
    size = batch_size or x.shape[0]
    relative = torch.cat([model.relative(chunk, anchor_x) for chunk in x.split(size)])
    return relative, model.head(relative).argmax(-1)


__all__ = [
    "ACTIVATIONS",
    "DTYPE",
    "RelativeMLP",
    "SyntheticTask",
    "TrainSettings",
    "build_network",
    "calibrate_running",
    "clone",
    "make_task",
    "predict",
    "torch_threads",
    "train_network",
]
