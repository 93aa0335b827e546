"""The ``hf-relrep`` command line: stitch two relative models, push a saved one, evaluate one, reproduce the paper.

Each subcommand parses its options (`model_parsers`, `experiment_parsers`: the usage text imports neither torch nor
transformers) and then imports and calls its implementation (`model_commands`, the experiments), which calls the library: `hf_relrep.stitch` and `save_pretrained`,
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
import os
import sys
import warnings
from collections.abc import Iterator, Sequence

from ..errors import ConfigurationError
from .base import PARALLEL_SENTIMENT, PROG, ArgumentParser, HelpFormatter, add_debug, load_handler
from .experiment_parsers import add_experiment_commands
from .model_parsers import add_model_commands


# The usage text imports nothing but the standard library (`base`, `model_parsers`, `experiment_parsers`); a
# subcommand imports its implementation, and with it torch and transformers, only when it runs (`run`).


#: The optional packages a subcommand may need, by import name → the extra of hf-relrep that installs them.
_EXTRA_OF = {"matplotlib": "experiments", "scipy": "experiments", "sklearn": "vision", "PIL": "vision"}


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings of the library (e.g. a tokenizer taken from the base model) as one line on stderr."""
    print(f"{PROG}: warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    """With `enabled` False, silence the progress bars of transformers, datasets and huggingface_hub meanwhile."""
    if enabled:
        yield
        return
    import datasets  # a subcommand is running: it imports these anyway
    from huggingface_hub import utils as hf_hub_utils
    from transformers.utils import logging as transformers_logging

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


def run(args: argparse.Namespace) -> int:
    """Run the subcommand chosen in `args` (parsed by `build_parser`): import its implementation, then call it with
    the progress bars of the Hugging Face libraries off under ``--quiet`` and warnings printed on one line."""
    inductor_cache_was_set = "TORCHINDUCTOR_CACHE_DIR" in os.environ
    try:
        handler = load_handler(args.handler)
    except ModuleNotFoundError as error:
        extra = _EXTRA_OF.get((error.name or "").partition(".")[0])
        if extra is None:
            raise
        raise ConfigurationError(
            f"`{PROG} {args.command}` needs {error.name}, which is not installed: pip install 'hf-relrep[{extra}]'."
        ) from error
    if not inductor_cache_was_set:  # set by importing transformers (see `hf_relrep/__init__.py`)
        os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
    with _progress_bars(not getattr(args, "quiet", False)), warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return int(handler(args))


class _VersionAction(argparse.Action):
    """``--version``: print the program's version and exit (read from the package metadata only then)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show program's version number and exit"
        )

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from ..version import __version__

        print(f"{parser.prog} {__version__}")
        parser.exit()


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
    parser.add_argument("--version", action=_VersionAction)
    add_debug(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    add_model_commands(subparsers)
    add_experiment_commands(subparsers)
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
        return run(args)
    except (Exception, KeyboardInterrupt) as error:
        from .failures import report_failure  # imports huggingface_hub: only when a command failed

        return report_failure(f"{PROG} {args.command}", error, debug=getattr(args, "debug", False))


__all__ = ["build_parser", "main", "run"]
