"""Forward + backward of 0-dimensional persistence death times on class-pure groups, side by side.

Columns (median milliseconds of forward + backward over ``--repeats`` runs, after ``--warmup`` runs):

- ``hf-relrep``: :func:`hf_relrep.topology.death_times` (batched Prim in torch, all groups at once);
- ``gudhi``: a good plain use of gudhi: float64 distances in numpy (scipy ``cdist``), gudhi's Rips persistence one
  group at a time, then the death edges' endpoints gathered from the torch points, differentiable with plain autograd
  (``gather``, ``vector_norm``, ``sort``);
- ``gudhi, our grad``: the same gudhi edges, lengths and gradient by hf-relrep's own fused autograd function: this
  column differs from ``hf-relrep`` only in how the tree is chosen;
- ``torch-topological``: ``torch_topological.nn.VietorisRipsComplex(dim=0)`` (giotto-ph on CPU), if installed;
- ``scipy MST loop``: scipy's ``minimum_spanning_tree`` one group at a time, edges gathered as in ``gudhi``.

Every column returns the same death times and gradients (checked before timing). Ratios are (other column) / (hf-relrep): above 1
means hf-relrep is faster.

Run::

    python benchmarks/bench_death_times.py --threads 2

pytorch-topological is not a dependency of hf-relrep; install it in a separate environment to fill its column.
"""

import argparse
import statistics
import time
from collections.abc import Callable

import gudhi
import numpy as np
import torch
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import cdist

from hf_relrep.topology import _sorted_edge_lengths, death_times


SHAPES = ((5, 16, 768), (8, 64, 128))


def gathered_lengths(points: torch.Tensor, edges: np.ndarray) -> torch.Tensor:
    """``[groups, n-1]`` sorted lengths of the edges ``[groups, n-1, 2]`` by plain autograd ops."""
    index = torch.as_tensor(edges, dtype=torch.long).unsqueeze(-1).expand(-1, -1, -1, points.shape[-1])
    x_u, x_v = points.gather(1, index[:, :, 0]), points.gather(1, index[:, :, 1])
    return torch.linalg.vector_norm(x_u - x_v, dim=-1).sort(-1).values


def fused_lengths(points: torch.Tensor, edges: np.ndarray) -> torch.Tensor:
    """The same with hf-relrep's (private) fused autograd function."""
    index = torch.as_tensor(edges, dtype=torch.long)
    return _sorted_edge_lengths(points, index[..., 0], index[..., 1])


def gudhi_edges(points: torch.Tensor) -> np.ndarray:
    edges = []
    for group in points.detach().double().numpy():
        tree = gudhi.RipsComplex(distance_matrix=cdist(group, group)).create_simplex_tree(max_dimension=1)
        tree.compute_persistence(min_persistence=-1.0)
        edges.append(tree.flag_persistence_generators()[0][:, 1:3])  # rows: birth vertex, death edge (u, v)
    return np.stack(edges)


def scipy_edges(points: torch.Tensor) -> np.ndarray:
    edges = []
    for group in points.detach().double().numpy():
        tree = minimum_spanning_tree(cdist(group, group)).tocoo()  # zero distances would be read as missing edges
        edges.append(np.stack([tree.row, tree.col], 1))
    return np.stack(edges)


def ours(points: torch.Tensor) -> torch.Tensor:
    return death_times(points)


def make_torch_topological() -> Callable[[torch.Tensor], torch.Tensor] | None:
    try:
        from torch_topological.nn import VietorisRipsComplex
    except ImportError:
        return None
    layer = VietorisRipsComplex(dim=0)

    def torch_topological(points: torch.Tensor) -> torch.Tensor:
        deaths = []
        for info in layer(points):  # one list of persistence informations per group
            diagram = info[0].diagram
            finite = diagram[:, 1].isfinite()
            deaths.append(diagram[finite, 1].sort().values)
        return torch.stack(deaths)

    return torch_topological


def forward_backward_seconds(fn: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor) -> float:
    x = points.detach().requires_grad_(True)
    start = time.perf_counter()
    fn(x).sum().backward()
    return time.perf_counter() - start


def median_ms(
    methods: dict[str, Callable[[torch.Tensor], torch.Tensor]], points: torch.Tensor, warmup: int, repeats: int
) -> dict[str, float]:
    """Median milliseconds per method; the methods take turns in each round, so load from other processes on a
    shared machine hits all of them alike instead of whichever happened to run at the time."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for round_ in range(warmup + repeats):
        for name, fn in methods.items():
            elapsed = forward_backward_seconds(fn, points)
            if round_ >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)

    methods: dict[str, Callable[[torch.Tensor], torch.Tensor] | None] = {
        "hf-relrep": ours,
        "gudhi": lambda points: gathered_lengths(points, gudhi_edges(points)),
        "gudhi, our grad": lambda points: fused_lengths(points, gudhi_edges(points)),
        "torch-topological": make_torch_topological(),
        "scipy MST loop": lambda points: gathered_lengths(points, scipy_edges(points)),
    }
    print(f"torch {torch.__version__}, gudhi {gudhi.__version__}, {args.threads} thread(s), float32 points")
    print(
        f"forward + backward, median of {args.repeats} after {args.warmup} warmups (ms; ratio = other / hf-relrep)\n"
    )
    header = f"{'b x n x d':<14}" + "".join(f"{name:>20}" for name in methods)
    print(header)
    print("-" * len(header))
    for b, n, d in SHAPES:
        points = torch.randn(b, n, d, generator=generator)
        available = {name: fn for name, fn in methods.items() if fn is not None}
        reference = None
        for name, fn in available.items():  # same death times and same gradients of a generic weighted sum
            x = points.detach().requires_grad_(True)
            deaths = fn(x)
            (grad,) = torch.autograd.grad((deaths * torch.linspace(-1, 1, n - 1)).sum(), x)
            reference = reference or (deaths.detach(), grad)
            torch.testing.assert_close(deaths.detach(), reference[0], rtol=1e-5, atol=1e-5, msg=f"{name} disagrees")
            torch.testing.assert_close(grad, reference[1], rtol=1e-4, atol=1e-5, msg=f"{name}'s gradient disagrees")
        ms = median_ms(available, points, args.warmup, args.repeats)
        cells = []
        for name in methods:
            if name not in ms:
                cells.append(f"{'not installed':>20}")
            elif name == "hf-relrep":
                cells.append(f"{ms[name]:>20.3f}")
            else:
                cells.append(f"{ms[name]:>11.3f} ({ms[name] / ms['hf-relrep']:4.1f}x)".rjust(20))
        print(f"{f'{b} x {n} x {d}':<14}" + "".join(cells))


if __name__ == "__main__":
    main()
