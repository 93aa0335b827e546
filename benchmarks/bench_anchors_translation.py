"""Speed of anchor selection on a large candidate pool and of fitting a latent translation, against the 10 s target.

Issue 11's target: ``select_anchors(strategy="kmeans")`` on 100,000 × 384 candidates and ``fit_translation`` on 768
anchors, each under 10 s on 2 CPU cores. The pool is a synthetic mixture of Gaussian blobs of unequal sizes (latents
cluster); the translation maps 384-dimensional anchors (MiniLM-sized) to 768-dimensional ones (RoBERTa-sized).
Prints the median seconds of each next to the target and their ratio.

    python benchmarks/bench_anchors_translation.py [--threads 2] [--candidates 100000] [--dim 384] [--anchors 768]
        [--strategies random,kmeans,fps] [--repeats 3]
"""

import argparse
import statistics
import time

import torch

from hf_relrep import fit_translation, select_anchors
from hf_relrep.alignment.translation import TRANSLATION_METHODS


TARGET_SECONDS = 10.0


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def clustered_pool(rows: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Rows from 200 Gaussian blobs whose sizes follow a Zipf-like law, plus 10 % uniform background."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(200, dim, generator=generator) * 3
    weights = 1.0 / torch.arange(1, 201, dtype=torch.float64)
    blob = torch.multinomial(weights, rows, replacement=True, generator=generator)
    pool = centres[blob] + torch.randn(rows, dim, generator=generator)
    background = torch.rand(rows, generator=generator) < 0.1
    pool[background] = torch.randn(int(background.sum()), dim, generator=generator) * 4
    return pool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--candidates", type=int, default=100_000, help="rows of the candidate pool")
    parser.add_argument("--dim", type=int, default=384, help="latent size of the pool and of the source anchors")
    parser.add_argument("--target-dim", type=int, default=768, help="latent size of the target anchors")
    parser.add_argument("--anchors", type=int, default=768, help="k, the number of anchors")
    parser.add_argument("--strategies", default="random,kmeans,fps", help="comma-separated anchor strategies")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is printed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pool = clustered_pool(args.candidates, args.dim)
    print(f"{args.candidates:,} × {args.dim} candidates, k = {args.anchors}, {args.threads} threads, "
          f"median of {args.repeats}; target {TARGET_SECONDS:.0f} s")  # fmt: skip
    print(f"{'operation':<44}{'seconds':>9}{'target':>8}{'ratio':>8}")
    for strategy in args.strategies.split(","):
        seconds = median_time(lambda s=strategy: select_anchors(pool, args.anchors, strategy=s), args.repeats)
        name = f"select_anchors(strategy={strategy!r})"
        print(f"{name:<44}{seconds:>9.2f}{TARGET_SECONDS:>8.0f}{seconds / TARGET_SECONDS:>8.3f}")

    generator = torch.Generator().manual_seed(1)
    source = pool[select_anchors(pool, args.anchors, strategy="random")]
    mixing = torch.randn(args.dim, args.target_dim, generator=generator) / args.dim**0.5
    target = source @ mixing + 0.1 * torch.randn(args.anchors, args.target_dim, generator=generator)
    for method in TRANSLATION_METHODS:
        seconds = median_time(lambda m=method: fit_translation(source, target, method=m), args.repeats)
        name = f"fit_translation({args.dim}→{args.target_dim}, {method!r})"
        print(f"{name:<44}{seconds:>9.2f}{TARGET_SECONDS:>8.0f}{seconds / TARGET_SECONDS:>8.3f}")


if __name__ == "__main__":
    main()
