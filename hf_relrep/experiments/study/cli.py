"""The ``hf-relrep study`` options and handler (the command line only wires them: ``hf_relrep.cli``)."""

import argparse
import sys
from pathlib import Path

import torch

from ...errors import ConfigurationError
from . import STUDIES


DESCRIPTION = """Studies around the method, each writing results.json, a markdown table (table.md) and plots:

  invariance     which transformations of the latent (activation intertwiners, rotations, shifts, affine maps) each
                 normalization removes, on small trained networks; minutes
  batch-stats    how often a prediction changes when the same input is served in other batches (stats = batch vs
                 anchors vs running), and stitched accuracy by batch size; synthetic, plus the embedded EN/FR data
                 with the offline encoders unless --quick
  densification  robust vs robust + topological densification, paired over seeds, over training size × what trains
                 × densification setting (chosen on validation); resumable: rerun with the same --out to continue

See docs/findings.md for the results of full runs."""

EXAMPLES = """examples:
  hf-relrep study invariance --quick
  hf-relrep study batch-stats --out runs/batch-stats
  hf-relrep study densification --trainables head adapter --seeds 20 --out runs/densification
  hf-relrep study densification --trainables top1 --sizes 100 500 --seeds 6 --out runs/densification-top1"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `hf-relrep study` options."""
    parser.add_argument("name", choices=list(STUDIES), help="the study to run")
    parser.add_argument("--out", help="output folder (default: runs/study-NAME-<timestamp>); a folder of the same "
                        "study is continued, any other non-empty folder refused")  # fmt: skip
    parser.add_argument("--seeds", type=int, help="seeds per cell (default: invariance 3, batch-stats 3, "
                        "densification 20)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a reduced run of a few minutes")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    text = parser.add_argument_group("batch-stats and densification (embedded EN/FR data)")
    text.add_argument("--encoder-en", help="English backbone: offline name or folder (default: all-MiniLM-L6-v2)")
    text.add_argument("--encoder-fr", help="French backbone: offline name or folder (default: multilingual-e5-small)")
    grid = parser.add_argument_group("densification grid")
    grid.add_argument("--sizes", type=int, nargs="+", help="training sentences per language (default: 50 100 250 "
                      "500 1000 2000)")  # fmt: skip
    grid.add_argument(
        "--trainables",
        nargs="+",
        help="head (linear head), adapter (MLP adapter + head), top1/top2 "
        "(top transformer layers + head, on cached hidden states of the layer below), full (the whole "
        "backbone) (default: all)",
    )
    grid.add_argument("--settings", nargs="+", help="densification settings to choose from on validation "
                      "(default: all)")  # fmt: skip
    grid.add_argument("--selection-seeds", type=int, default=3, help="seeds whose validation scores choose the "
                      "setting of each cell (default: 3)")  # fmt: skip


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


__all__ = ["DESCRIPTION", "EXAMPLES", "add_arguments", "run_from_args", "run_study"]
