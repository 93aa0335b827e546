"""What every part of the ``hf-relrep`` command line shares: the program name, the parser class, ``--debug``."""

import argparse
from typing import Any


PROG = "hf-relrep"


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


__all__ = ["PROG", "ArgumentParser", "HelpFormatter", "add_debug"]
