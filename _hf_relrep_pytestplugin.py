"""hf-relrep's pytest plugin: the ``local_hub_environment`` and ``local_hub`` fixtures (`hf_relrep.testing`).

pytest loads this module through the ``pytest11`` entry point in every session of an environment where hf-relrep is
installed, so it imports nothing but pytest: hf-relrep (torch, transformers) and its local Hub server are imported
when a test asks for one of the fixtures. It lives outside the package because importing anything inside it runs
``import hf_relrep``, which registers the model types (and imports torch and transformers). Nothing is autouse: a suite
that wants every test (not only those using ``local_hub``) to run against the local endpoint and a throwaway
``HF_HOME`` asks for it in its ``conftest.py``::

    import pytest


    @pytest.fixture(scope="session", autouse=True)
    def _hub_environment(local_hub_environment):
        return local_hub_environment

With plugin autoloading disabled (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), load it with ``-p hf_relrep.testing.plugin``
or ``pytest_plugins = ["hf_relrep.testing.plugin"]`` in the root ``conftest.py``.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest


if TYPE_CHECKING:
    from hf_relrep.testing import HubEnvironment, LocalHub


@pytest.fixture(scope="session")
def local_hub_environment() -> Iterator["HubEnvironment"]:
    """The Hub clients point at a reserved local port and a throwaway ``HF_HOME`` until the end of the session.

    :func:`~hf_relrep.testing.hub_environment` for the whole session, on a port reserved once (huggingface_hub reads
    ``HF_ENDPOINT`` once): no request reaches huggingface.co, nothing touches ``~/.cache/huggingface``, tokens and
    offline switches are out of the environment; everything is restored when the session ends. Child processes
    started by tests inherit the variables, hence the endpoint and caches.
    """
    from hf_relrep.testing.environment import hub_environment

    with hub_environment() as environment:
        yield environment


@pytest.fixture
def local_hub(local_hub_environment: "HubEnvironment", tmp_path: Path) -> Iterator["LocalHub"]:
    """A fresh, empty :class:`~hf_relrep.testing.LocalHub` serving ``HF_ENDPOINT``, stopped (all threads joined)
    after the test.

    Function-scoped: each test gets its own storage (``tmp_path / "local-hub"``), no token, user ``"test-user"``,
    and no fault armed; set ``local_hub.token`` or arm ``local_hub.faults`` inside the test. Clients need no
    ``endpoint=``. Downloads share the session's temporary ``HF_HUB_CACHE``; commit ids are unique, so tests do not
    see each other's files (pass ``cache_dir=tmp_path`` for a cold cache).
    """
    from hf_relrep.testing.hub import LocalHub

    hub = LocalHub(tmp_path / "local-hub", port=local_hub_environment.port)
    try:
        hub.start()
    except OSError as e:
        hub.close()
        raise RuntimeError(
            f"local_hub cannot listen on {local_hub_environment.endpoint}: is another LocalHub using that port? ({e})"
        ) from e
    try:
        yield hub
    finally:
        hub.close()
