"""The ``hf-relrep`` command line: stitch two relative models, push a saved one, evaluate one, reproduce the paper.

Each subcommand parses its options and calls the library: `hf_relrep.stitch` and `save_pretrained`,
`push_to_hub` of a relative model, `hf_relrep.evaluation.evaluate`, `hf_relrep.experiments.reproduce.run_reproduce`; run
``hf-relrep SUBCOMMAND --help`` for its options and an example.

Every failure is one line on stderr (`hf_relrep.cli.failures`): errors a user can fix (a `hf_relrep.RelRepError`, a
missing repository, file or revision on the Hub, a malformed repo id, an unreachable Hub, a usage error) name the
problem and the fix and exit with status 2; anything else is a bug: one line that says where its traceback was written
(``--debug`` shows it), status 1. Warnings are printed as one line too. ``--overwrite`` means the same everywhere (`hf_relrep.utils.files`): once the new
outputs are complete they replace those of an earlier hf-relrep run in the output folder, other files are kept, and a
folder hf-relrep did not write is refused.

Example:
    ```bash
    hf-relrep stitch --encoder me/relrep-fr --head me/relrep-en --out stitched-fr-en
    hf-relrep evaluate stitched-fr-en --dataset parallel-sentiment --language fr
    hf-relrep push stitched-fr-en me/relrep-fr-encoder-en-head
    ```
"""

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import datasets
from huggingface_hub import utils as hf_hub_utils
from transformers.utils import logging as transformers_logging

from .. import __version__
from ..evaluation import PARALLEL_SENTIMENT
from ..experiments import reproduce
from .base import PROG, ArgumentParser, HelpFormatter, add_debug
from .failures import report_failure
from .model_commands import add_model_commands


# ------------------------------------------------------------------------------------------------------ presentation


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings of the library (e.g. a tokenizer taken from the base model) as one line on stderr."""
    print(f"{PROG}: warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """With `enabled` False, silence the progress bars of transformers, datasets and huggingface_hub meanwhile."""
    if enabled:
        yield
        return
    was_enabled = (
        transformers_logging.is_progress_bar_enabled(),
        datasets.is_progress_bar_enabled(),
        not hf_hub_utils.are_progress_bars_disabled(),
    )
    transformers_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    hf_hub_utils.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled[0]:
            transformers_logging.enable_progress_bar()
        if was_enabled[1]:
            datasets.enable_progress_bars()
        if was_enabled[2]:
            hf_hub_utils.enable_progress_bars()


def _documented_parser(subparsers: Any, name: str, doc: str | None, example: str) -> argparse.ArgumentParser:
    """A subcommand whose help line and description are its module's docstring."""
    doc = (doc or "").strip()
    return subparsers.add_parser(
        name, help=doc.splitlines()[0], description=doc, formatter_class=HelpFormatter, epilog=f"example:\n  {example}"
    )


def _add_reproduce_parser(subparsers: Any) -> None:
    example = "hf-relrep reproduce --seeds 1 --methods robust robust+topo --out runs/quick"
    parser = _documented_parser(subparsers, "reproduce", reproduce.__doc__, example)
    reproduce.add_arguments(parser)
    parser.set_defaults(handler=reproduce.run_from_args)


def _add_reproduce_vision_parser(subparsers: Any) -> None:
    from ..experiments.reproduce import vision

    example = "hf-relrep reproduce-vision --seeds 0 --methods absolute robust"
    parser = _documented_parser(subparsers, "reproduce-vision", vision.__doc__, example)
    vision.add_vision_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="Print only the table.")
    parser.set_defaults(handler=vision.run_vision_from_args)


def _add_study_parser(subparsers: Any) -> None:
    from ..experiments.study import cli as study_cli

    parser = subparsers.add_parser(
        "study",
        help="Studies around the method: invariance, batch-stats, densification (results, tables, plots).",
        description=study_cli.DESCRIPTION,
        formatter_class=HelpFormatter,
        epilog=study_cli.EXAMPLES,
    )
    study_cli.add_arguments(parser)
    parser.set_defaults(handler=study_cli.run_from_args)


def build_parser() -> argparse.ArgumentParser:
    """The ``hf-relrep`` argument parser with its subcommands."""
    parser = ArgumentParser(
        prog=PROG,
        formatter_class=HelpFormatter,
        description=(
            "Relative representations and zero-shot model stitching for Hugging Face Transformers\n"
            "(García-Castellanos et al., arXiv 2409.10967). Run `hf-relrep SUBCOMMAND --help` for details."
        ),
        epilog=(
            "example:\n"
            "  hf-relrep stitch --encoder me/relrep-fr --head me/relrep-en --out stitched-fr-en\n"
            f"  hf-relrep evaluate stitched-fr-en --dataset {PARALLEL_SENTIMENT} --language fr\n"
            "  hf-relrep push stitched-fr-en me/relrep-fr-encoder-en-head"
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_debug(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    add_model_commands(subparsers)
    _add_reproduce_parser(subparsers)
    _add_reproduce_vision_parser(subparsers)
    _add_study_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hf-relrep`` command line.

    Args:
        argv: the arguments after the program name; `None` reads ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success; 2 on a usage error or an error the user can fix; 1 on a bug; 130 when
        interrupted. Each failure is one line on stderr (`hf_relrep.cli.failures`); a bug's traceback goes to a file, or
        to the terminal with ``--debug``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error argparse already printed
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    try:
        with _progress_bars(not getattr(args, "quiet", False)), warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(args.handler(args))
    except (Exception, KeyboardInterrupt) as error:
        return report_failure(f"{PROG} {args.command}", error, debug=getattr(args, "debug", False))


__all__ = ["build_parser", "main"]
