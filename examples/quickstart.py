"""The smallest real demo: wrap a backbone in a relative classifier, classify, save, and load it back.

Uses a tiny randomly initialized BERT written to a local folder, so it runs anywhere without downloads. Replace
`backbone` with any Hub id or local checkpoint (e.g. "sentence-transformers/all-MiniLM-L6-v2").
"""

import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertModel, BertTokenizerFast

from hf_relrep import RelativeModelForSequenceClassification


WORDS = "[PAD] [UNK] [CLS] [SEP] [MASK] a the film movie plot was is good bad great boring fun not very".split()
ANCHORS = ["a good film", "a bad film", "the plot was boring", "great fun", "not very good", "a very bad movie"]


def write_tiny_backbone(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    BertTokenizerFast(vocab=str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    return folder


def main() -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        backbone = write_tiny_backbone(Path(tmp) / "backbone")
        model = RelativeModelForSequenceClassification.from_backbone_pretrained(
            str(backbone), anchor_texts=ANCHORS, anchor_set_id="demo-anchors@1", num_labels=2, pooling="mean"
        ).eval()
        tokenizer = AutoTokenizer.from_pretrained(backbone)
        batch = tokenizer(["the movie was great fun", "a boring plot"], padding=True, return_tensors="pt")
        outputs = model(**batch)
        print(f"relative representation: {tuple(outputs.relative.shape)} (batch × anchors)")
        print(f"logits:\n{outputs.logits}")

        model.save_pretrained(Path(tmp) / "relative-model")
        loaded = AutoModelForSequenceClassification.from_pretrained(Path(tmp) / "relative-model")
        same = torch.allclose(loaded(**batch).logits, outputs.logits, atol=1e-6)
        print(f"reloaded as {type(loaded).__name__} through AutoModelForSequenceClassification; same logits: {same}")


if __name__ == "__main__":
    main()
