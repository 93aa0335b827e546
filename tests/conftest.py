"""Fixtures shared by the hf-relrep test suite.

Importing ``hf_relrep.testing`` points the Hub clients at a local endpoint and a throwaway ``HF_HOME`` for the whole
session, before any test runs: no test reaches huggingface.co or touches ``~/.cache/huggingface``. The ``local_hub``
fixture serves a fresh, empty Hub on that endpoint for one test.
"""

from hf_relrep.testing import local_hub  # noqa: F401
