"""``model_cards/`` holds exactly what the code renders: the test fails as soon as a card would change."""

import importlib.util
import warnings
from pathlib import Path

import pytest

from hf_relrep import AbsoluteStitchingWarning


ROOT = Path(__file__).resolve().parents[2]


def _render_script():
    spec = importlib.util.spec_from_file_location("render_model_cards", ROOT / "scripts" / "render_model_cards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_checked_in_cards_are_what_the_code_renders():
    script = _render_script()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AbsoluteStitchingWarning)
        cards = script.render_cards()
    assert set(cards) == {"relative-model/README.md", "stitched-model/README.md", "translated-model/README.md"}
    stale = script.stale_files(cards, ROOT / "model_cards")
    assert not stale, f"stale model cards {stale}: run python scripts/render_model_cards.py and commit model_cards/"
    on_disk = {str(path.relative_to(ROOT / "model_cards")) for path in (ROOT / "model_cards").rglob("*.md")}
    assert on_disk == set(cards) | {"README.md"}  # no card left behind by a renamed or removed model


def test_the_cards_name_nothing_of_the_machine_that_rendered_them():
    for path in (ROOT / "model_cards").rglob("*.md"):
        text = path.read_text()
        assert str(ROOT) not in text and "site-packages" not in text and "/tmp" not in text, path
