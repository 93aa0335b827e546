"""The Hub examples run as users run them: as scripts, with their default Hub ids, against the local hub fixture.

The session's ``local_hub_environment`` fixture (``hf_relrep.testing.plugin``) set ``HF_ENDPOINT``,
``HF_HUB_DISABLE_XET=1`` and a throwaway ``HF_HOME`` in ``os.environ``; the scripts inherit them, so their plain
``from_pretrained``/``push_to_hub`` calls reach the local hub.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from tiny_models import save_tiny_backbone
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_relrep import RelativeModelForSequenceClassification, stitch
from hf_relrep.hub import CARD_BEGIN


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ANCHORS = {
    "en": ["a good film", "a bad film", "the plot was boring", "great acting", "terrible ending", "i love it"],
    "fr": ["un bon film", "un mauvais film", "histoire pas bon", "très bon", "mauvais et pas fun", "la histoire"],
}
LABELS = {0: "negative", 1: "positive"}


@pytest.fixture
def hub_models(local_hub, tmp_path) -> dict[str, RelativeModelForSequenceClassification]:
    """The examples' default repos, ``me/relrep-fr`` and ``me/relrep-en``: two tiny relative models with tokenizers."""
    models = {}
    for language, seed, overrides in (("en", 1, {}), ("fr", 2, {"hidden_size": 48, "num_hidden_layers": 1})):
        backbone = save_tiny_backbone(tmp_path / f"backbone-{language}", seed=seed, **overrides)
        torch.manual_seed(seed + 10)
        model = RelativeModelForSequenceClassification.from_backbone_pretrained(
            str(backbone),
            anchor_texts=ANCHORS[language],
            anchor_set_id="en-fr-test@1",
            id2label=LABELS,
            pooling="mean",
        ).eval()
        model.push_to_hub(f"me/relrep-{language}", tokenizer=AutoTokenizer.from_pretrained(backbone))
        models[language] = model
    return models


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_stitch_from_hub_example(hub_models, tmp_path):
    out = tmp_path / "stitched"
    stdout = _run("stitch_from_hub.py", "--limit", "100", "--out", str(out)).stdout
    assert "encoder: me/relrep-fr @ " in stdout and "head:    me/relrep-en @ " in stdout
    assert "100 examples" in stdout and "stitched (fr encoder + head of me/relrep-en)" in stdout

    saved = AutoModelForSequenceClassification.from_pretrained(out)
    expected = stitch(hub_models["fr"], hub_models["en"])
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer(["un film très bon", "mauvais"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(saved(**batch).logits, expected(**batch).logits, rtol=0, atol=0)


def test_push_stitched_model_example(hub_models):
    stdout = _run("push_stitched_model.py", "--limit", "100", "--private").stdout
    assert "same logits: True" in stdout
    repo = "me/relrep-fr-encoder-en-head"
    assert HfApi().model_info(repo).private
    card = ModelCard.load(repo)
    assert CARD_BEGIN in card.text and "me/relrep-fr" in card.text and "me/relrep-en" in card.text
    metrics = card.data.to_dict()["model-index"][0]["results"][0]["metrics"]
    assert {metric["type"] for metric in metrics} == {"accuracy", "f1_weighted", "mae"}
    assert card.data.language == ["fr"]
