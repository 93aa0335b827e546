"""Models saved by an earlier release load through the Auto classes and compute what they computed then.

`tests/fixtures/saved_by_0.1.0/` holds a relative classifier, a stitched pair and a translated stitch written by
hf-relrep 0.1.0 (the flat layout, before the package was arranged by concern), with their logits on three sentences
(`make.py` there says how they were made).
"""

import json
import warnings
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

import hf_relrep  # noqa: F401  (registers the model types)


SAVED = Path(__file__).resolve().parent / "fixtures" / "saved_by_0.1.0"
EXPECTED = json.loads((SAVED / "expected.json").read_text())


@pytest.mark.parametrize(
    ("name", "model_type"),
    [("relative", "hf-relrep"), ("stitched", "hf-relrep"), ("translated", "hf-relrep-translated")],
)
def test_model_saved_by_0_1_0_loads_and_predicts_the_same_logits(name, model_type):
    folder = SAVED / name
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no unknown-setting, deprecation or load-report warning on the way
        assert AutoConfig.from_pretrained(folder).model_type == model_type
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        logits = model(**tokenizer(EXPECTED["sentences"], return_tensors="pt", padding=True)).logits
    torch.testing.assert_close(logits, torch.tensor(EXPECTED[name]), rtol=1e-4, atol=1e-7)
