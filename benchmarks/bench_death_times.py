"""0-dimensional persistence death times of class-pure groups: hf-relrep against the persistence libraries, side by side.

Two tables, forward only and forward + backward (median milliseconds; ratio = peer / hf-relrep, above 1 means
hf-relrep is faster). Each round calls every method once in turn (interleaved rounds), so load from other processes on
a shared machine hits all of them alike; the order rotates every round, so each method follows each other one equally
often (on a virtual machine, a call right after a method that waits on its threads, as giotto-ph's do, can run at half
speed: that cost belongs to the one that waited, not to whoever comes next).

- ``hf-relrep``: :func:`hf_relrep.topology.death_times` with ``--backend`` (default ``auto``: spanning trees of all
  groups at once: on CPU, Prim on the host, ``numba-prim`` where Numba is installed (the ``bench`` extra installs it;
  ``HF_RELREP_NUMBA=0`` or ``--backend numpy-prim`` times the NumPy rounds); on CUDA, ``boruvka``'s batched rounds);
- ``gudhi``: a good plain use of gudhi: float64 distances in numpy (scipy ``cdist``), gudhi's Rips persistence one
  group at a time (``flag_persistence_generators``), the death edges' lengths gathered from the torch points with plain
  autograd (``gather``, ``vector_norm``, ``sort``);
- ``giotto-ph``: ``gph.ripser_parallel(..., return_generators=True)`` per group, lengths gathered the same way;
- ``torch-topological``: ``torch_topological.nn.VietorisRipsComplex(dim=0)`` on the batch (giotto-ph inside);
- ``ripser``: ``ripser.ripser(distance_matrix=True, maxdim=0)`` per group: forward only (no death edges, so no
  gradient).

Every method returns the same death times (checked before timing, 1e-5), and the differentiable ones the same gradient.
A peer that is not installed is skipped with a note. The peers come with the ``bench`` extra::

    pip install -e ".[bench]"     # ripser, giotto-ph, torch-topological (which keeps the installed torch)
    python benchmarks/bench_death_times.py --threads 2

``--device cuda`` times hf-relrep on the GPU (synchronized) against the CPU peers.
"""

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import gudhi
import numpy as np
import torch
from scipy.spatial.distance import cdist

from hf_relrep.topology import death_times
from hf_relrep.topology.dispatch import BACKENDS


SHAPES = ((5, 16, 768), (8, 64, 128), (2, 256, 64))
Method = Callable[[torch.Tensor], torch.Tensor]


def gathered_lengths(points: torch.Tensor, edges: np.ndarray) -> torch.Tensor:
    """``[groups, n-1]`` sorted lengths of the edges ``[groups, n-1, 2]`` by plain autograd ops."""
    index = torch.as_tensor(edges, dtype=torch.long).unsqueeze(-1).expand(-1, -1, -1, points.shape[-1])
    x_u, x_v = points.gather(1, index[:, :, 0]), points.gather(1, index[:, :, 1])
    return torch.linalg.vector_norm(x_u - x_v, dim=-1).sort(-1).values


def distances(points: torch.Tensor) -> np.ndarray:
    return np.stack([cdist(group, group) for group in points.detach().double().numpy()])


def gudhi_method(points: torch.Tensor) -> torch.Tensor:
    edges = []
    for matrix in distances(points):
        tree = gudhi.RipsComplex(distance_matrix=matrix).create_simplex_tree(max_dimension=1)
        tree.compute_persistence(min_persistence=-1.0)
        edges.append(tree.flag_persistence_generators()[0][:, 1:3])  # rows: birth vertex, death edge (u, v)
    return gathered_lengths(points, np.stack(edges))


def make_giotto() -> Method | None:
    try:
        from gph import ripser_parallel
    except ImportError:
        return None

    def giotto(points: torch.Tensor) -> torch.Tensor:
        edges = []
        for matrix in distances(points):
            result = ripser_parallel(matrix, maxdim=0, metric="precomputed", return_generators=True, n_threads=1)
            edges.append(result["gens"][0][:, 1:3])  # finite 0-dim pairs: birth vertex, death edge (u, v)
        return gathered_lengths(points, np.stack(edges))

    return giotto


def make_torch_topological() -> Method | None:
    try:
        from torch_topological.nn import VietorisRipsComplex
    except ImportError:
        return None
    layer = VietorisRipsComplex(dim=0)

    def torch_topological(points: torch.Tensor) -> torch.Tensor:
        deaths = []
        for info in layer(points):  # one list of persistence informations per group
            diagram = info[0].diagram
            deaths.append(diagram[diagram[:, 1].isfinite(), 1].sort().values)
        return torch.stack(deaths)

    return torch_topological


def make_ripser() -> Method | None:
    try:
        from ripser import ripser
    except ImportError:
        return None

    def ripser_method(points: torch.Tensor) -> torch.Tensor:
        deaths = []
        for matrix in distances(points):
            diagram = ripser(matrix, distance_matrix=True, maxdim=0)["dgms"][0]
            deaths.append(np.sort(diagram[np.isfinite(diagram[:, 1]), 1]))
        return torch.as_tensor(np.stack(deaths), dtype=points.dtype)

    return ripser_method


def seconds(fn: Method, points: torch.Tensor, backward: bool) -> float:
    x = points.detach().requires_grad_(backward)
    synchronize = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    start = time.perf_counter()
    deaths = fn(x)
    if backward:
        deaths.sum().backward()
    synchronize()
    return time.perf_counter() - start


def median_ms(
    methods: dict[str, Method], points: dict[str, torch.Tensor], backward: bool, warmup: int, repeats: int
) -> dict[str, float]:
    """Median milliseconds per method over ``repeats`` interleaved rounds (after ``warmup`` rounds), the order of the
    methods rotating every round."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for round_ in range(warmup + repeats):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            elapsed = seconds(methods[name], points[name], backward)
            if round_ >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def check_agreement(methods: dict[str, Method], differentiable: set[str], points: dict[str, torch.Tensor]) -> None:
    """Same death times for all, same gradient of a generic weighted sum for the differentiable ones."""
    reference = None
    for name, fn in methods.items():
        x = points[name].detach().requires_grad_(name in differentiable)
        deaths = fn(x)
        weights = torch.linspace(-1, 1, deaths.shape[-1], device=deaths.device)
        grad = torch.autograd.grad((deaths * weights).sum(), x)[0].cpu() if name in differentiable else None
        if reference is None:
            reference = (deaths.detach().cpu(), grad)
            continue
        torch.testing.assert_close(deaths.detach().cpu(), reference[0], rtol=1e-5, atol=1e-5, msg=f"{name} differs")
        if grad is not None:
            torch.testing.assert_close(grad, reference[1], rtol=1e-4, atol=1e-5, msg=f"{name}'s gradient differs")


def cell(ms: dict[str, float], name: str, width: int) -> str:
    if name not in ms:
        return "-".rjust(width)
    if name == "hf-relrep":
        return f"{ms[name]:.3f}".rjust(width)
    return f"{ms[name]:.3f} ({ms[name] / ms['hf-relrep']:.1f}x)".rjust(width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="where hf-relrep runs (the peers run on CPU)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS.names(), help="hf-relrep's persistence backend")
    parser.add_argument("--shapes", default=",".join("x".join(map(str, s)) for s in SHAPES), help="GxNxD,...")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)

    candidates: dict[str, Method | None] = {
        "hf-relrep": functools.partial(death_times, backend=args.backend),
        "gudhi": gudhi_method,
        "giotto-ph": make_giotto(),
        "torch-topological": make_torch_topological(),
        "ripser": make_ripser(),
    }
    differentiable = {"hf-relrep", "gudhi", "giotto-ph", "torch-topological"}
    methods = {name: fn for name, fn in candidates.items() if fn is not None}
    missing = [name for name, fn in candidates.items() if fn is None]
    print(
        f"torch {torch.__version__}, gudhi {gudhi.__version__}, {args.threads} thread(s), float32 points, "
        f"hf-relrep ({args.backend}) on {args.device}; median of {args.repeats} interleaved rounds (rotating order) after "
        f"{args.warmup} (ms; ratio = peer / hf-relrep)"
    )
    if missing:
        print(f"not installed (skipped): {', '.join(missing)}; pip install -e '.[bench]'")
    width = 22
    for backward in (False, True):
        names = [name for name in methods if not backward or name in differentiable]
        title = "forward + backward" if backward else "forward only"
        header = f"{title:<20}" + "".join(name.rjust(width) for name in names)
        print(f"\n{header}\n{'-' * len(header)}")
        for shape in args.shapes.split(","):
            b, n, d = (int(v) for v in shape.split("x"))
            points = torch.randn(b, n, d, generator=generator)
            on = {name: points.to(args.device) if name == "hf-relrep" else points for name in names}
            chosen = {name: methods[name] for name in names}
            if not backward:
                check_agreement(chosen, differentiable, on)
            ms = median_ms(chosen, on, backward, args.warmup, args.repeats)
            print(f"{f'{b} x {n} x {d}':<20}" + "".join(cell(ms, name, width) for name in names))


if __name__ == "__main__":
    main()
