"""The ``hf-relrep study`` handler: runs the study its arguments name (parsed by `hf_relrep.cli.experiment_parsers`)."""

import argparse
import sys
from pathlib import Path

import torch

from ...errors import ConfigurationError
from . import STUDIES


def _encoders(args: argparse.Namespace) -> dict[str, str] | None:
    if not (args.encoder_en or args.encoder_fr):
        return None
    from ..reproduce import PRESETS

    encoders = dict(PRESETS["quick"].encoders)
    encoders.update({k: v for k, v in (("en", args.encoder_en), ("fr", args.encoder_fr)) if v})
    return encoders


def run_study(args: argparse.Namespace) -> dict:
    """Run the study named in `args`; returns its results."""
    misplaced = [f"--{name.replace('_', '-')}" for name in ("sizes", "trainables", "settings")
                 if getattr(args, name) and args.name != "densification"]  # fmt: skip
    if args.name == "invariance" and (args.encoder_en or args.encoder_fr):
        misplaced.append("--encoder-en/--encoder-fr")
    if misplaced:
        raise ConfigurationError(f"{', '.join(misplaced)}: not an option of the {args.name} study.")
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigurationError(f"--threads must be ≥ 1, got {args.threads}.")
        torch.set_num_threads(args.threads)
    seeds = {} if args.seeds is None else {"seeds": args.seeds}
    if args.name == "invariance":
        return STUDIES["invariance"](args.out, quick=args.quick, **seeds)
    if args.name == "batch-stats":
        from .batch_stats import run_batch_stats

        return run_batch_stats(args.out, quick=args.quick, text=not args.quick, encoders=_encoders(args), **seeds)
    from tqdm.auto import tqdm

    from .densification import plan, run_densification

    grid = {"quick": args.quick, "sizes": args.sizes, "trainables": args.trainables, "settings": args.settings,
            "selection_seeds": args.selection_seeds, **seeds}  # fmt: skip
    total = plan(**grid)["units"]  # validates the grid before anything loads
    with tqdm(total=total, desc="densification", unit="unit", file=sys.stderr) as bar:
        return run_densification(args.out, encoders=_encoders(args), progress=bar.update, **grid)


def run_from_args(args: argparse.Namespace) -> int:
    """Run `hf-relrep study` from parsed arguments; print the table and where the outputs are."""
    results = run_study(args)
    folder = Path(results["out"])
    print((folder / "table.md").read_text(encoding="utf-8").rstrip())
    print(f"\n{args.name}: results.json, table.md and plots in {folder} ({results['seconds']:.0f} s)")
    return 0


__all__ = ["run_from_args", "run_study"]
