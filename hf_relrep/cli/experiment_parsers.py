"""The usage of the experiment subcommands: ``reproduce`` (the paper's stitching table), ``reproduce-vision`` and
``study``. Their implementations are in `hf_relrep.experiments`, imported only when one of them runs.

The names the options accept (presets, methods, studies) are written here, where the usage text needs them without
importing the experiments (torch); tests check that they are the experiments' own.
"""

import argparse
import ast
from pathlib import Path
from typing import Any

from .base import HelpFormatter, set_handler


_EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"

#: `hf_relrep.experiments.reproduce.PRESETS`, `METHODS` and `vision.VISION_METHODS`, by name.
REPRODUCE_PRESETS = ("quick", "paper")
REPRODUCE_METHODS = (
    "absolute",
    "vanilla",
    "robust",
    "robust+topo",
    "whiten",
    "absolute+orthogonal",
    "robust+kmeans",
)
VISION_METHODS = ("absolute", "vanilla", "robust", "whiten")
#: The defaults of `hf_relrep.experiments.reproduce.vision.VisionStitchingConfig` that are options.
VISION_DEFAULTS = {"seeds": (0, 1, 2), "epochs": (25, 12), "num_anchors": 100, "threads": 1}
#: `hf_relrep.experiments.study.STUDIES`, by name.
STUDIES = ("invariance", "batch-stats", "densification")

STUDY_DESCRIPTION = """Studies around the method, each writing results.json, a markdown table (table.md) and plots:

  invariance     which transformations of the latent (activation intertwiners, rotations, shifts, affine maps) each
                 normalization removes, on small trained networks; minutes
  batch-stats    how often a prediction changes when the same input is served in other batches (stats = batch vs
                 anchors vs running), and stitched accuracy by batch size; synthetic, plus the embedded EN/FR data
                 with the offline encoders unless --quick
  densification  robust vs robust + topological densification, paired over seeds, over training size × what trains
                 × densification setting (chosen on validation); resumable: rerun with the same --out to continue

See docs/findings.md for the results of full runs."""

STUDY_EXAMPLES = """examples:
  hf-relrep study invariance --quick
  hf-relrep study batch-stats --out runs/batch-stats
  hf-relrep study densification --trainables head adapter --seeds 20 --out runs/densification
  hf-relrep study densification --trainables top1 --sizes 100 500 --seeds 6 --out runs/densification-top1"""


def module_docstring(path: Path) -> str:
    """The docstring of the module at `path`, read from its source without importing it."""
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


def _documented_parser(subparsers: Any, name: str, doc: str, example: str) -> argparse.ArgumentParser:
    """A subcommand whose help line and description are its module's docstring."""
    doc = doc.strip()
    return subparsers.add_parser(
        name, help=doc.splitlines()[0], description=doc, formatter_class=HelpFormatter, epilog=f"example:\n  {example}"
    )


def add_reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    """The `hf-relrep reproduce` options (read by `hf_relrep.experiments.reproduce.config_from_args`)."""
    parser.add_argument(
        "--preset", default="quick", help=f"one of {', '.join(REPRODUCE_PRESETS)} (default: quick, offline)"
    )
    parser.add_argument("--seeds", type=int, help="seeds per cell (default: 5)")
    parser.add_argument("--methods", nargs="+", help=f"subset of: {' '.join(REPRODUCE_METHODS)} (default: all)")
    parser.add_argument(
        "--out", help="output folder (default: runs/reproduce-<timestamp>); a non-empty one needs --overwrite"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the outputs of an earlier run in --out once the new ones are complete; other files are kept",
    )
    parser.add_argument("--dataset", help="Amazon Reviews multilingual: a local folder or Hub id (paper preset)")
    parser.add_argument("--anchors", help="parallel anchors file with text_en, text_fr columns (paper preset)")
    parser.add_argument("--encoder-en", help="English backbone: offline name, folder or Hub id")
    parser.add_argument("--encoder-fr", help="French backbone: offline name, folder or Hub id")
    parser.add_argument("--epochs", type=float, help="training epochs per model")
    parser.add_argument("--allow-pickle", action="store_true", help="let backbones load pickle checkpoints")
    parser.add_argument(
        "--workers",
        type=int,
        help="processes that train side by side (default: one per core for frozen backbones on CPU, else 1); the "
        "results do not depend on it",
    )
    parser.add_argument(
        "--anchor-sweep",
        action="store_true",
        help="instead of the table: stitched accuracy of robust models for k in {16, ..., 768} anchors chosen by "
        "random, kmeans and fps selection (writes anchor_sweep.json/.txt/.png)",
    )


def add_vision_arguments(parser: argparse.ArgumentParser) -> None:
    """The `hf-relrep reproduce-vision` options (read by `hf_relrep.experiments.reproduce.vision.run_vision_from_args`)."""
    defaults = VISION_DEFAULTS
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=list(defaults["seeds"]), help="Seeds (default: 0 1 2)."
    )
    parser.add_argument(
        "--methods", nargs="+", choices=list(VISION_METHODS), default=list(VISION_METHODS), help="Methods to run."
    )
    parser.add_argument(
        "--epochs", type=int, nargs=2, metavar=("VIT", "CONVNEXT"), default=list(defaults["epochs"]),
        help="Training epochs of each backbone (default: %(default)s).",
    )  # fmt: skip
    parser.add_argument("--anchors", type=int, default=defaults["num_anchors"], help="Anchor images (class-balanced).")
    parser.add_argument("--threads", type=int, default=defaults["threads"], help="torch threads (default 1).")
    parser.add_argument("--json", metavar="OUT", default=None, help="Also write every score to this JSON file.")
    parser.add_argument("--quiet", action="store_true", help="Print only the table.")


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """The `hf-relrep study` options (read by `hf_relrep.experiments.study.cli.run_study`)."""
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


def add_experiment_commands(subparsers: Any) -> None:
    """The reproduce, reproduce-vision and study subcommands."""
    doc = module_docstring(_EXPERIMENTS / "reproduce" / "__init__.py")
    parser = _documented_parser(
        subparsers, "reproduce", doc, "hf-relrep reproduce --seeds 1 --methods robust robust+topo --out runs/quick"
    )
    add_reproduce_arguments(parser)
    set_handler(parser, "hf_relrep.experiments.reproduce:run_from_args")

    doc = module_docstring(_EXPERIMENTS / "reproduce" / "vision.py")
    parser = _documented_parser(
        subparsers, "reproduce-vision", doc, "hf-relrep reproduce-vision --seeds 0 --methods absolute robust"
    )
    add_vision_arguments(parser)
    set_handler(parser, "hf_relrep.experiments.reproduce.vision:run_vision_from_args")

    parser = subparsers.add_parser(
        "study",
        help="Studies around the method: invariance, batch-stats, densification (results, tables, plots).",
        description=STUDY_DESCRIPTION,
        formatter_class=HelpFormatter,
        epilog=STUDY_EXAMPLES,
    )
    add_study_arguments(parser)
    set_handler(parser, "hf_relrep.experiments.study.cli:run_from_args")


__all__ = [
    "REPRODUCE_METHODS",
    "REPRODUCE_PRESETS",
    "STUDIES",
    "VISION_DEFAULTS",
    "VISION_METHODS",
    "add_experiment_commands",
    "add_reproduce_arguments",
    "add_study_arguments",
    "add_vision_arguments",
    "module_docstring",
]
