"""Quieter transformers logs for the length of a run, and the caller's settings back afterwards."""

import contextlib
from collections.abc import Iterator

from transformers.utils import logging as transformers_logging


@contextlib.contextmanager
def transformers_errors_only() -> Iterator[None]:
    """Show only transformers' errors meanwhile (the load reports of backbones whose pooler is dropped on purpose);
    the verbosity the caller had is restored on the way out, so a run called from a user's process or a notebook does
    not silence transformers for the rest of it. Usable as a decorator.

    Example:
        >>> from transformers.utils import logging
        >>> before = logging.get_verbosity()
        >>> with transformers_errors_only():
        ...     logging.get_verbosity() == logging.ERROR
        True
        >>> logging.get_verbosity() == before
        True
    """
    previous = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(previous)


__all__ = ["transformers_errors_only"]
