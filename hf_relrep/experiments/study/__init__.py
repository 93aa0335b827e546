"""`hf-relrep study`: measurements around the method, clients of the library (the library never imports them).

- [`invariance`](invariance.py): which transformations of the latent space each normalization removes, per activation
  and intertwiner group; the core is [`intertwiner_agreement`].
- [`batch_stats`](batch_stats.py): how predictions move with the batch when the statistics come from the batch.
- [`densification`](densification.py): paired comparisons robust vs robust + topological densification.

Each study writes ``results.json``, a markdown table and plots into its output folder; see ``docs/findings.md``.
"""

from .invariance import intertwiner_agreement, run_invariance


def run_batch_stats(*args, **kwargs) -> dict:
    """See [`hf_relrep.experiments.study.batch_stats.run_batch_stats`]."""
    from .batch_stats import run_batch_stats as run

    return run(*args, **kwargs)


def run_densification(*args, **kwargs) -> dict:
    """See [`hf_relrep.experiments.study.densification.run_densification`] (imports the reproduce pipeline)."""
    from .densification import run_densification as run

    return run(*args, **kwargs)


#: The studies by CLI name.
STUDIES = {"invariance": run_invariance, "batch-stats": run_batch_stats, "densification": run_densification}

__all__ = ["STUDIES", "intertwiner_agreement", "run_batch_stats", "run_densification", "run_invariance"]
