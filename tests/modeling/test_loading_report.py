"""Loading a backbone prints no load report for the pooler we drop on purpose, and still reports real problems."""

import torch
from safetensors.torch import load_file, save_file
from tiny_models import save_tiny_backbone, tiny_bert_config, tiny_vocab
from transformers import BertModel

from hf_relrep import RelativeModelForSequenceClassification


def _backbone_with_pooler(path):
    save_tiny_backbone(path)
    BertModel(tiny_bert_config(vocab_size=len(tiny_vocab())), add_pooling_layer=True).save_pretrained(path)
    return path


def _build(path):
    return RelativeModelForSequenceClassification.from_backbone_pretrained(
        str(path), anchor_texts=["a good film", "a bad film"], num_labels=2
    )


def test_the_dropped_pooler_is_not_reported(tmp_path, capfd):
    _build(_backbone_with_pooler(tmp_path / "backbone"))
    assert "LOAD REPORT" not in capfd.readouterr().err


def test_a_weight_that_does_not_belong_is_still_reported(tmp_path, capfd):
    path = _backbone_with_pooler(tmp_path / "backbone")
    weights = load_file(path / "model.safetensors")
    weights["encoder.layer.9.stray.weight"] = torch.zeros(2)
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
    _build(path)
    err = capfd.readouterr().err
    assert "LOAD REPORT" in err and "encoder.layer.9.stray.weight" in err
