"""Run by test_training.py under `torch.distributed.run` with 2 CPU processes (gloo): a few TopoTrainer steps.

Each rank writes what it saw (the labels of each group of each batch, the dataset indices) and a hash of its final
weights, for the test to compare.
"""

import hashlib
import json
import sys
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoTokenizer


sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parent.parent)]  # test_training, tiny_models
from test_training import make_args, make_model, toy_texts  # noqa: E402

from hf_relrep.training import TopoTrainer  # noqa: E402


def main() -> None:
    backbone_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    tokenizer = AutoTokenizer.from_pretrained(backbone_dir)
    texts, labels = toy_texts(96)
    dataset = Dataset.from_dict({"text": texts, "label": labels, "index": list(range(96))})
    dataset = dataset.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])
    batches, indices = [], []

    class RecordingTrainer(TopoTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            n = self.args.topo_samples_per_class
            batch_labels = inputs["labels"].tolist()
            batches.append([batch_labels[i : i + n] for i in range(0, len(batch_labels), n)])
            indices.append(inputs.pop("index").tolist())
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    args = make_args(out / "run", max_steps=3, ddp_backend="gloo", remove_unused_columns=False, logging_steps=1)
    model = make_model(backbone_dir, seed=0)
    trainer = RecordingTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    digest = hashlib.sha256()
    for name, tensor in sorted(trainer.model.state_dict().items()):
        digest.update(name.encode() + tensor.detach().float().cpu().numpy().tobytes())
    report = {
        "world_size": trainer.args.world_size,
        "steps": trainer.state.global_step,
        "batches": batches,
        "indices": indices,
        "weights_sha256": digest.hexdigest(),
    }
    (out / f"rank{trainer.args.process_index}.json").write_text(json.dumps(report))
    torch.distributed.barrier()


if __name__ == "__main__":
    main()
