"""Fixtures shared by the hf-relrep test suite.

Importing ``hf_relrep.testing`` points the Hub clients at a local endpoint and a throwaway ``HF_HOME`` for the whole
session, before any test runs: no test reaches huggingface.co or touches ``~/.cache/huggingface``. The ``local_hub``
fixture serves a fresh, empty Hub on that endpoint for one test.
"""

import pytest
from tiny_models import ANCHORS_EN, ANCHORS_FR, relative_classifier, save_language_backbones

from hf_relrep.testing import local_hub  # noqa: F401


@pytest.fixture(scope="session")
def language_backbones(tmp_path_factory):
    """(english, french): two tiny backbone folders of different sizes, each with its tokenizer."""
    return save_language_backbones(tmp_path_factory.mktemp("language-backbones"))


@pytest.fixture(scope="module")
def language_models(language_backbones):
    """(english, french): relative classifiers on `language_backbones` with the shared parallel anchors."""
    english, french = language_backbones
    return relative_classifier(english, ANCHORS_EN, 10), relative_classifier(french, ANCHORS_FR, 20)
