"""A local Hugging Face Hub for tests: real ``huggingface_hub`` and ``transformers`` clients, no network.

:class:`LocalHub` is a standard-library HTTP server (``http.server``) bound to ``127.0.0.1`` that answers the part of
the Hub HTTP protocol used by ``create_repo``, ``upload_folder``/``create_commit``, ``push_to_hub``, ``model_info``,
``hf_hub_download``, ``snapshot_download`` and ``from_pretrained`` (huggingface_hub 2.4, transformers 5.x): repos
(models, datasets, spaces), branches, tags, commits, the preupload and Git LFS upload endpoints, and file downloads
with ``Range`` support. Authentication, fault injection and limits: :mod:`hf_relrep.testing.hub`.

Importing this package (or any module of it) changes nothing: no environment variable, no global of another module.
The Hub clients are pointed at a local hub only inside :func:`hub_environment` / :func:`use_local_hub`, or while the
pytest fixtures of :mod:`hf_relrep.testing.plugin` are active, and everything is restored afterwards.

In a test suite (the plugin is registered through the ``pytest11`` entry point: installing hf-relrep is enough)::

    from pathlib import Path

    from huggingface_hub import HfApi, hf_hub_download


    def test_round_trip(local_hub, tmp_path):
        api = HfApi()  # no endpoint=: HF_ENDPOINT points at the local hub during the session
        api.create_repo("test-user/tiny")
        api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id="test-user/tiny")
        assert Path(hf_hub_download("test-user/tiny", "a.txt", cache_dir=tmp_path)).read_bytes() == b"hello"

Outside pytest, :func:`use_local_hub` does the same for a ``with`` block; or run a bare :class:`LocalHub` and pass
its endpoint to the client, or to another process through its environment (``HF_ENDPOINT`` is read when
``huggingface_hub`` is imported; ``HF_HUB_DISABLE_XET=1`` keeps uploads on plain HTTP)::

    import os
    import subprocess
    import sys

    from huggingface_hub import HfApi

    from hf_relrep.testing import LocalHub

    with LocalHub(token="secret") as hub:
        api = HfApi(endpoint=hub.endpoint, token="secret")
        api.create_repo("test-user/demo", private=True)
        api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id="test-user/demo")
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "secret"}
        code = "import huggingface_hub as h; print(open(h.hf_hub_download('test-user/demo', 'a.txt')).read())"
        print(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout)  # hello

Modules: :mod:`~.protocol` (constants, errors, git rules), :mod:`~.storage` (repos, commits, blobs),
:mod:`~.faults`, :mod:`~.ports` (reserved ports), :mod:`~.served` (what a handler sees of its hub),
:mod:`~.handler` / :mod:`~.reading` / :mod:`~.writing` / :mod:`~.server` (HTTP), :mod:`~.hub` (:class:`LocalHub`),
:mod:`~.environment`, :mod:`~.plugin` (pytest fixtures).
"""

from .environment import HubEnvironment, environment_variables, hub_environment, use_local_hub
from .faults import Faults
from .hub import LocalHub
from .protocol import DEFAULT_LFS_THRESHOLD, RequestRecord


__all__ = [
    "DEFAULT_LFS_THRESHOLD",
    "Faults",
    "HubEnvironment",
    "LocalHub",
    "RequestRecord",
    "environment_variables",
    "hub_environment",
    "use_local_hub",
]
