"""Fixtures shared by the hf-relrep test suite.

hf-relrep's pytest plugin (``hf_relrep.testing.plugin``, loaded through its ``pytest11`` entry point) gives the
fixtures ``local_hub_environment`` and ``local_hub``. The first is autouse here: for the whole session the Hub clients
point at a local endpoint and a throwaway ``HF_HOME`` (restored when the session ends), so no test reaches
huggingface.co or touches ``~/.cache/huggingface``. ``local_hub`` serves a fresh, empty Hub on that endpoint for one
test.

Models are built once per session and handed out as copies (sentence-transformers' pattern): a session fixture keeps
the original, a function fixture returns ``copy.deepcopy`` of it, so a test that trains, edits or re-anchors its model
changes nothing another test sees. Backbone folders on disk are shared as they are: tests read them, never write.
"""

import copy
import logging
import sys
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import pytest
from tiny_models import ANCHORS_EN, ANCHORS_FR, relative_classifier, save_language_backbones, save_text_families


@pytest.fixture(scope="session", autouse=True)
def _transformers_writes_to_stderr():
    """transformers' log handler writes where a user's terminal is: the process's standard error (file descriptor 2),
    which `capfd` reads. Left alone, it keeps the stderr it found on first import, which under pytest is the session's
    capture buffer whenever transformers is first imported during collection: then no test would see what it prints."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.get_logger("transformers")  # creates the library's handler if it does not exist yet
    for handler in logging.getLogger("transformers").handlers:
        if type(handler) is logging.StreamHandler:  # not pytest's own capture handlers
            handler.setStream(sys.__stderr__)


@pytest.fixture(scope="session", autouse=True)
def _hub_environment(local_hub_environment):
    """Every test, not only those using ``local_hub``, runs against the local endpoint and a throwaway HF_HOME."""
    return local_hub_environment


@pytest.fixture(scope="session")
def language_backbones(tmp_path_factory) -> tuple[Path, Path]:
    """(english, french): two tiny backbone folders of different sizes, each with its tokenizer."""
    return save_language_backbones(tmp_path_factory.mktemp("language-backbones"))


@pytest.fixture(scope="session")
def text_family_folders(tmp_path_factory) -> dict[str, Path]:
    """One tiny saved backbone per text family (`tiny_models.TEXT_FAMILIES`), by name."""
    return save_text_families(tmp_path_factory.mktemp("text-families"))


@pytest.fixture(scope="session")
def _language_models(language_backbones):
    """The originals behind `language_models`: built once, never handed out."""
    english, french = language_backbones
    return relative_classifier(english, ANCHORS_EN, 10), relative_classifier(french, ANCHORS_FR, 20)


@pytest.fixture
def language_models(_language_models):
    """(english, french): relative classifiers on `language_backbones` with the shared parallel anchors, in eval mode.

    A fresh deep copy for every test.
    """
    return copy.deepcopy(_language_models)


@pytest.fixture(scope="session")
def _session_models() -> dict[Hashable, Any]:
    """The originals `session_model` builds, by key: built once per session, never handed out."""
    return {}


@pytest.fixture
def session_model(_session_models) -> Callable[[Hashable, Callable[[], Any]], Any]:
    """``session_model(key, build)``: a deep copy of the model ``build()`` returns, built once per session per `key`.

    Within one test a key gives the same copy each time, so a test reads back its own edits; the next test gets a new
    copy of the untouched original.
    """
    copies: dict[Hashable, Any] = {}

    def get(key: Hashable, build: Callable[[], Any]) -> Any:
        if key not in copies:
            if key not in _session_models:
                _session_models[key] = build()
            copies[key] = copy.deepcopy(_session_models[key])
        return copies[key]

    return get
