"""Pointing the Hub clients of this process at a local endpoint and a throwaway ``HF_HOME``, then putting them back.

``huggingface_hub`` reads ``HF_ENDPOINT`` and its cache paths once, when it is imported; ``transformers``,
``datasets`` and others keep copies of them in module globals, and ``transformers`` caches an ``HfApi``. Setting
``os.environ`` is therefore not enough in a process that already imported them (``import hf_relrep`` imports
``transformers``): :func:`hub_environment` also rewrites those globals, records every change, and undoes all of it on
exit. Nothing in this module runs at import.
"""

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .hub import LocalHub
from .protocol import HOST


logger = logging.getLogger(__name__)

CLIENT_PACKAGES = ("huggingface_hub", "transformers", "datasets", "evaluate", "peft", "accelerate")
"""Packages whose module globals are rewritten (they copy the Hub environment at import)."""

REMOVED_VARIABLES = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "HUGGINGFACE_CO_STAGING",
    "HUGGINGFACE_HUB_CACHE",
    "HUGGINGFACE_ASSETS_CACHE",
    "TRANSFORMERS_CACHE",
)
"""Removed while the environment is active: a real token never reaches the local server, offline and staging
switches and legacy cache variables do not override the local settings."""

_Change = tuple[Any, str, Any]  # (module or object, attribute, value before the change)


@dataclass(frozen=True)
class HubEnvironment:
    """The endpoint and ``HF_HOME`` the Hub clients of this process use while a :func:`hub_environment` is active."""

    endpoint: str
    home: Path

    @property
    def port(self) -> int:
        return int(urlsplit(self.endpoint).port or 0)


def environment_variables(endpoint: str, home: Path) -> dict[str, str]:
    """The variables :func:`hub_environment` sets: a child process given them uses the same hub and caches."""
    return {
        "HF_ENDPOINT": endpoint,
        "HF_HUB_DISABLE_XET": "1",  # the plain HTTP server does not speak the Xet protocol
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_DATASETS_CACHE": str(home / "datasets"),
        "HF_MODULES_CACHE": str(home / "modules"),
        "HF_TOKEN_PATH": str(home / "token"),
    }


@contextlib.contextmanager
def hub_environment(endpoint: str | None = None, home: str | Path | None = None) -> Iterator[HubEnvironment]:
    """Point ``huggingface_hub``, ``transformers`` and ``datasets`` at a local hub and a throwaway ``HF_HOME``.

    On entry: sets ``HF_ENDPOINT``, ``HF_HUB_DISABLE_XET=1``, ``HF_HUB_DISABLE_TELEMETRY=1``, ``HF_HOME`` and every
    cache below it (:func:`environment_variables`), removes tokens and offline/staging switches
    (:data:`REMOVED_VARIABLES`), and rewrites the globals that already imported Hub clients computed from the old
    environment. On exit: every variable and every rewritten global gets its old value back, globals created
    meanwhile that point at the local endpoint or home are pointed back, the temporary ``HF_HOME`` is removed and the
    reserved port released. Nests (the inner one restores the outer one). Not thread-safe: enter it before starting
    threads that use the Hub.

    Args:
        endpoint: URL of the hub; ``None`` reserves a free port (:meth:`LocalHub.reserve_endpoint`): requests are
            refused until a :class:`LocalHub` serves it, none reaches huggingface.co.
        home: ``HF_HOME`` to use (kept on exit); ``None`` creates a temporary folder, removed on exit.

    Yields:
        The endpoint and home in use.

    Example:
        ```python
        from huggingface_hub import HfApi

        from hf_relrep.testing import LocalHub, hub_environment

        with hub_environment() as env, LocalHub(port=env.port) as hub:
            HfApi().create_repo("test-user/demo")  # no endpoint= needed: HF_ENDPOINT is the local hub
        ```
    """
    reserved = endpoint is None
    endpoint = (endpoint or LocalHub.reserve_endpoint()).rstrip("/")
    temporary_home = home is None
    home = Path(tempfile.mkdtemp(prefix="hf-relrep-hf-home-") if home is None else home)
    variables = environment_variables(endpoint, home)
    saved = {name: os.environ.get(name) for name in (*REMOVED_VARIABLES, *variables)}
    changes: list[_Change] = []
    original: tuple[str, str] | None = None
    try:
        for name in REMOVED_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update(variables)
        original = _point_clients(endpoint, home, changes)
        logger.debug("hub_environment: %s, HF_HOME=%s", endpoint, home)
        yield HubEnvironment(endpoint, home)
    finally:
        for target, attribute, value in reversed(changes):
            setattr(target, attribute, value)
        if original is not None:
            _point_clients_back(endpoint, home, *original)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if temporary_home:
            shutil.rmtree(home, ignore_errors=True)
        if reserved:
            LocalHub.release_endpoint(endpoint)


@contextlib.contextmanager
def use_local_hub(
    root: str | Path | None = None, *, home: str | Path | None = None, **options: Any
) -> Iterator[LocalHub]:
    """A running :class:`LocalHub` that the Hub clients of this process use by default, for the ``with`` block.

    :func:`hub_environment` on a reserved port, and a hub serving it; on exit the hub is stopped and the environment
    restored. Outside pytest, this is what the ``local_hub`` fixture gives a test.

    Args:
        root: Storage folder of the hub; ``None``: a temporary one, removed on exit.
        home: ``HF_HOME`` to use; ``None``: a temporary one, removed on exit.
        **options: Other arguments of :class:`LocalHub` (``token``, ``user``, ``anonymous_read``, ...).

    Example:
        ```python
        from huggingface_hub import HfApi

        from hf_relrep.testing import use_local_hub

        with use_local_hub() as hub:
            HfApi().create_repo("test-user/demo")
            assert HfApi().repo_exists("test-user/demo")
        ```
    """
    with hub_environment(home=home) as environment, LocalHub(root, port=environment.port, **options) as hub:
        yield hub


def _point_clients(endpoint: str, home: Path, changes: list[_Change]) -> tuple[str, str]:
    """Rewrite the import-time copies of the Hub environment in loaded clients; record each change in ``changes``.

    ``huggingface_hub.constants`` (endpoint, caches, Xet, telemetry and offline switches), copies of them elsewhere
    (``from ..constants import HF_HUB_CACHE``, ``datasets.config.HF_ENDPOINT``, URL templates, paths under the old
    ``HF_HOME``), module-level ``HfApi`` objects, and ``transformers``' cached ``HfApi``. Nothing of these packages
    touches the disk or the network at import.

    Returns:
        The endpoint and ``HF_HOME`` the clients used before.
    """
    import huggingface_hub.constants as constants  # imported under the old environment, so that it can be restored

    old_endpoint, old_home = constants.ENDPOINT, constants.HF_HOME
    named: dict[str, Any] = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": frozenset(constants.HF_URL_HOSTS | {HOST}),
        "_staging_mode": False,
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_UPDATE_CHECK": True,
        "HF_HOME": str(home),
        "HUGGINGFACE_HUB_CACHE": str(home / "hub"),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HUGGINGFACE_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
    }
    # String values to rewrite wherever they were copied: the old value of each named constant and the old endpoint.
    replacements = {getattr(constants, k): v for k, v in named.items() if isinstance(getattr(constants, k, None), str)}
    replacements[old_endpoint] = endpoint
    _rewrite_globals(replacements, (old_endpoint, endpoint), (old_home, str(home)), named, changes)
    transformers_hub = sys.modules.get("transformers.utils.hub")
    if transformers_hub is not None and hasattr(transformers_hub, "_hf_api"):
        changes.append((transformers_hub, "_hf_api", transformers_hub._hf_api))
        transformers_hub._hf_api = None  # transformers' cached HfApi: rebuilt on next use, on the new endpoint
    _clear_file_system_cache()
    logger.debug("hub_environment patched %s", ", ".join(f"{getattr(t, '__name__', t)}.{a}" for t, a, _ in changes))
    return old_endpoint, old_home


def _point_clients_back(endpoint: str, home: Path, old_endpoint: str, old_home: str) -> None:
    """After the recorded changes are undone: point back what was created meanwhile on the local endpoint or home
    (globals of modules imported while the environment was active, ``HfApi`` objects, transformers' cached one)."""
    _rewrite_globals({endpoint: old_endpoint}, (endpoint, old_endpoint), (str(home), old_home), None, None)
    _clear_file_system_cache()


def _rewrite_globals(
    replacements: dict[str, str],
    endpoints: tuple[str, str],
    homes: tuple[str, str],
    named: dict[str, Any] | None,
    changes: list[_Change] | None,
) -> None:
    """In every loaded client module, replace the globals that hold an old endpoint, an old path or a named constant.

    Args:
        replacements: Exact string values -> their new value.
        endpoints: (old, new) endpoint: URL templates on the old one move to the new one, and ``HfApi`` objects too.
        homes: (old, new) ``HF_HOME``: paths (``str`` or ``Path``) under the old one move under the new one.
        named: New values of ``huggingface_hub.constants`` attributes, by name.
        changes: Where to record each change (``None``: not recorded).
    """
    from huggingface_hub import HfApi

    constants = sys.modules["huggingface_hub.constants"]
    (old_endpoint, endpoint), (old_home, home) = endpoints, homes

    def rewrite(value: Any) -> Any:
        text = str(value) if isinstance(value, (str, Path)) else None
        if text is None:
            return None
        if text in replacements:
            new = replacements[text]
        elif text == old_home:
            new = home
        elif text.startswith(old_endpoint + "/") and "{" in text:
            new = endpoint + text[len(old_endpoint) :]
        elif text.startswith(old_home + os.sep):
            new = home + text[len(old_home) :]
        else:
            return None
        return Path(new) if isinstance(value, Path) else new

    for module_name, module in list(sys.modules.items()):
        if module is None or module_name.split(".")[0] not in CLIENT_PACKAGES:
            continue
        for attribute, value in list(vars(module).items()):
            if named is not None and module is constants and attribute in named:
                new = named[attribute]
            elif isinstance(value, HfApi):
                if value.endpoint == old_endpoint:
                    if changes is not None:
                        changes.append((value, "endpoint", value.endpoint))
                    value.endpoint = endpoint
                continue
            else:
                new = rewrite(value)
            if new is not None and new != value:
                if changes is not None:
                    changes.append((module, attribute, value))
                setattr(module, attribute, new)


def _clear_file_system_cache() -> None:
    hf_file_system = sys.modules.get("huggingface_hub.hf_file_system")
    if hf_file_system is not None:
        hf_file_system.HfFileSystem.clear_instance_cache()  # instances remember their endpoint
