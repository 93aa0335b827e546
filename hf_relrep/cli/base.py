"""What every part of the ``hf-relrep`` command line shares: the program name, the parser class, ``--debug``, and
subcommands whose implementation is imported only when they run.

This module and the parser modules import nothing but the standard library, so that ``hf-relrep --help`` is instant.
"""

import argparse
import importlib
from collections.abc import Callable
from typing import Any


PROG = "hf-relrep"

#: The name of the parallel sentiment set shipped with hf-relrep (`hf_relrep.evaluation.PARALLEL_SENTIMENT`), for
#: the usage texts: they cannot import the evaluation module, which imports torch.
PARALLEL_SENTIMENT = "parallel-sentiment"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and examples."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error on one line that points to ``--help`` (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def add_debug(parser: argparse.ArgumentParser, default: Any = False) -> None:
    """``--debug``: show an unexpected error's traceback (a subcommand passes ``argparse.SUPPRESS`` so that the flag
    given before the subcommand is not reset)."""
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="Show the full traceback of an unexpected error (instead of the file it was written to).",
    )


def set_handler(parser: argparse.ArgumentParser, target: str) -> None:
    """Run the function `target` (``"module:function"``, taking the parsed arguments and returning the exit status)
    when `parser`'s subcommand is chosen; its module is imported only then (`load_handler`)."""
    parser.set_defaults(handler=target)


def load_handler(target: str) -> Callable[[argparse.Namespace], int]:
    """The function named by `target` (``"module:function"``), its module imported now."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


__all__ = ["PARALLEL_SENTIMENT", "PROG", "ArgumentParser", "HelpFormatter", "add_debug", "load_handler", "set_handler"]
