"""How the command line reports a failure: one line on stderr, always.

- **Your mistake** (a `RelRepError`, a missing or private Hub repository, a malformed repo id, no connection to the
  Hub): one line naming the problem and the fix; exit status 2.
- **A bug** (anything else): one line naming the error and the file where its full traceback was written; exit status
  1. ``--debug`` (or ``HF_RELREP_DEBUG=1``) shows the traceback instead.
- **Ctrl-C**: one line; exit status 130. Outputs are swapped in whole (`hf_relrep.utils.files`), so none is left half-written.
"""

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, HFValidationError, RepositoryNotFoundError

from ..errors import RelRepError


#: Errors a user can fix, reported as one line with exit status 2.
USER_ERRORS = (RelRepError, RepositoryNotFoundError, EntryNotFoundError, HfHubHTTPError, HFValidationError)
#: Names of the connection errors of the HTTP clients huggingface_hub may use (requests, httpx).
_NETWORK_ERRORS = {"ConnectError", "ConnectTimeout", "ReadTimeout", "ConnectionError", "RemoteProtocolError"}
DEBUG_ENV_VAR = "HF_RELREP_DEBUG"
EXIT_USER_ERROR, EXIT_BUG, EXIT_INTERRUPTED = 2, 1, 130


def _chain(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        yield error
        seen.add(id(error))
        error = error.__cause__ or error.__context__


def is_hub_error(error: BaseException) -> bool:
    """Whether `error` is a Hub error, or an `OSError` that transformers raised from one (``from_pretrained``)."""
    return any(isinstance(e, (RepositoryNotFoundError, EntryNotFoundError, HfHubHTTPError)) for e in _chain(error))


def is_network_error(error: BaseException) -> bool:
    """Whether `error` comes from a connection that could not be made (offline, DNS, timeout)."""
    return any(isinstance(e, ConnectionError) or type(e).__name__ in _NETWORK_ERRORS for e in _chain(error))


def is_user_error(error: BaseException) -> bool:
    """Whether `error` is bad input or an unreachable Hub (one line, exit 2) rather than a bug."""
    return isinstance(error, USER_ERRORS) or is_hub_error(error) or is_network_error(error)


def one_line(error: BaseException) -> str:
    """The error's type and message on one line (Hub errors span several)."""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def describe(error: BaseException) -> str:
    """What to print for a user error: its message, or for a missing connection, what to do about it."""
    if is_network_error(error) and not isinstance(error, RelRepError) and not is_hub_error(error):
        return (
            f"cannot reach the Hub ({one_line(error)}); check the connection (or HF_ENDPOINT), or pass a local folder "
            "instead of a Hub id."
        )
    return one_line(error)


def write_traceback(error: BaseException, argv: list[str] | None = None) -> Path:
    """Write `error`'s full traceback (and the command line) to a new file in the temporary folder; return its path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(tempfile.gettempdir()) / f"hf-relrep-error-{stamp}-{os.getpid()}.txt"
    text = "".join(traceback.format_exception(error))
    header = f"hf-relrep {' '.join(argv if argv is not None else sys.argv[1:])}\n\n"
    path.write_text(header + text)
    return path


def report_failure(prefix: str, error: BaseException, *, debug: bool = False) -> int:
    """Print the one line that reports `error` and return the exit status (see the module docstring).

    Raises:
        BaseException: `error` itself for a bug when `debug` (or ``HF_RELREP_DEBUG=1``): the traceback is shown.
    """
    if isinstance(error, KeyboardInterrupt):
        print(f"{prefix}: interrupted; nothing half-written was left.", file=sys.stderr)
        return EXIT_INTERRUPTED
    if is_user_error(error):
        print(f"{prefix}: error: {describe(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    if debug or os.environ.get(DEBUG_ENV_VAR, "").lower() in ("1", "true", "yes"):
        raise error
    try:
        where = f"the full traceback is in {write_traceback(error)}"
    except OSError:
        where = "the traceback could not be written"
    print(
        f"{prefix}: internal error: {one_line(error)} (a bug in hf-relrep; {where}; rerun with --debug to show it, "
        "and please report it)",
        file=sys.stderr,
    )
    return EXIT_BUG


__all__ = [
    "DEBUG_ENV_VAR",
    "USER_ERRORS",
    "describe",
    "is_hub_error",
    "is_network_error",
    "is_user_error",
    "one_line",
    "report_failure",
    "write_traceback",
]
