"""Fixtures shared by the hf-relrep test suite.

hf-relrep's pytest plugin (``hf_relrep.testing.plugin``, loaded through its ``pytest11`` entry point) gives the
fixtures ``local_hub_environment`` and ``local_hub``. The first is autouse here: for the whole session the Hub clients
point at a local endpoint and a throwaway ``HF_HOME`` (restored when the session ends), so no test reaches
huggingface.co or touches ``~/.cache/huggingface``. ``local_hub`` serves a fresh, empty Hub on that endpoint for one
test.
"""

import pytest
from tiny_models import ANCHORS_EN, ANCHORS_FR, relative_classifier, save_language_backbones


@pytest.fixture(scope="session", autouse=True)
def _hub_environment(local_hub_environment):
    """Every test, not only those using ``local_hub``, runs against the local endpoint and a throwaway HF_HOME."""
    return local_hub_environment


@pytest.fixture(scope="session")
def language_backbones(tmp_path_factory):
    """(english, french): two tiny backbone folders of different sizes, each with its tokenizer."""
    return save_language_backbones(tmp_path_factory.mktemp("language-backbones"))


@pytest.fixture(scope="module")
def language_models(language_backbones):
    """(english, french): relative classifiers on `language_backbones` with the shared parallel anchors."""
    english, french = language_backbones
    return relative_classifier(english, ANCHORS_EN, 10), relative_classifier(french, ANCHORS_FR, 20)
