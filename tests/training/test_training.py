"""TopoTrainer: class-balanced batches, the densification loss in training, accumulation, LoRA, DDP, logging."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from tiny_models import save_tiny_backbone
from transformers import AutoTokenizer, DataCollatorWithPadding

from hf_relrep import RelativeModelForSequenceClassification
from hf_relrep.errors import ConfigurationError, DataError, TopologyError
from hf_relrep.topology.densification import densification_loss
from hf_relrep.training import ClassBalancedBatchSampler, TopoTrainer, TopoTrainingArguments


POSITIVE = ["good", "great", "fun", "love", "best", "nice", "fine"]
NEGATIVE = ["bad", "terrible", "boring", "hate", "worst", "awful", "not"]
ANCHORS = ["a good film", "a bad film", "great fun", "boring plot", "i love it", "i hate it", "the best", "the worst"]


def toy_texts(count: int, seed: int = 0) -> tuple[list[str], list[int]]:
    generator = torch.Generator().manual_seed(seed)
    texts, labels = [], []
    for i in range(count):
        label = i % 2
        words = POSITIVE if label else NEGATIVE
        picks = torch.randint(len(words), (2,), generator=generator).tolist()
        filler = ["the movie", "a film", "the story", "the plot"][i % 4]
        texts.append(f"{filler} was {words[picks[0]]} and {words[picks[1]]}")
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory):
    return save_tiny_backbone(
        tmp_path_factory.mktemp("tiny-bert"), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )


@pytest.fixture(scope="module")
def tokenizer(backbone_dir):
    return AutoTokenizer.from_pretrained(backbone_dir)


def make_dataset(tokenizer, count=64, seed=0) -> Dataset:
    texts, labels = toy_texts(count, seed)
    dataset = Dataset.from_dict({"text": texts, "label": labels})
    return dataset.map(lambda batch: tokenizer(batch["text"]), batched=True, remove_columns=["text"])


def make_model(backbone_dir, seed=0, **kwargs) -> RelativeModelForSequenceClassification:
    torch.manual_seed(seed)
    kwargs.setdefault("anchor_texts", ANCHORS)
    return RelativeModelForSequenceClassification.from_backbone_pretrained(
        str(backbone_dir), num_labels=2, pooling="mean", adapter="mlp", **kwargs
    )


def make_args(tmp_path, **kwargs) -> TopoTrainingArguments:
    defaults = dict(
        output_dir=str(tmp_path),
        learning_rate=3e-3,
        max_steps=20,
        topo_samples_per_class=4,
        topo_schedule="constant",
        logging_steps=5,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    defaults.update(kwargs)
    return TopoTrainingArguments(**defaults)


# ---------------------------------------------------------------- sampler
def test_sampler_batches_are_class_pure_groups_without_repeats():
    labels = [0] * 20 + [1] * 13 + [2] * 9
    sampler = ClassBalancedBatchSampler(labels, classes_per_batch=2, samples_per_class=4, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    seen = [i for batch in batches for i in batch]
    assert len(seen) == len(set(seen))  # no example twice in an epoch
    for batch in batches:
        groups = [batch[:4], batch[4:]]
        classes = [{labels[i] for i in group} for group in groups]
        assert all(len(c) == 1 for c in classes) and classes[0] != classes[1]
    assert [sorted(b) for b in batches] == [sorted(b) for b in ClassBalancedBatchSampler(labels, classes_per_batch=2, samples_per_class=4, seed=3)]  # fmt: skip
    assert batches != list(sampler)  # the next epoch has a new order


def test_sampler_gives_each_rank_its_own_batches():
    labels = [0] * 30 + [1] * 30 + [2] * 30
    ranks = [
        list(ClassBalancedBatchSampler(labels, classes_per_batch=3, samples_per_class=4, num_replicas=2, rank=r))
        for r in (0, 1)
    ]
    assert len(ranks[0]) == len(ranks[1]) > 0
    flat = [set(i for b in batches for i in b) for batches in ranks]
    assert not flat[0] & flat[1]


def test_sampler_refuses_impossible_batches():
    with pytest.raises(DataError, match="only 1 classes have 4"):
        ClassBalancedBatchSampler([0] * 10 + [1] * 3, classes_per_batch=2, samples_per_class=4)
    with pytest.raises(ConfigurationError, match="≥ 2"):
        ClassBalancedBatchSampler([0, 1], classes_per_batch=2, samples_per_class=1)


def test_cyclic_schedule_ramps_within_each_cycle(tmp_path):
    args = make_args(tmp_path, topo_schedule="cyclic", topo_schedule_cycles=2, topo_schedule_ramp_ratio=0.5)
    values = [args.topo_weight_scale(step, 100) for step in (0, 25, 49, 50, 60, 75, 99)]
    assert values == pytest.approx([0.0, 1.0, 1.0, 0.0, 0.4, 1.0, 1.0])
    assert make_args(tmp_path).topo_weight_scale(0, 100) == 1.0  # constant


def test_loss_groups_can_be_smaller_than_the_class_blocks(backbone_dir, tokenizer, tmp_path):
    dataset = make_dataset(tokenizer, 32)
    collator = DataCollatorWithPadding(tokenizer)
    order = sorted(range(16), key=lambda i: dataset[i]["label"])  # 8 of each class, one block per class
    batch = collator([dataset[i] for i in order])
    model = make_model(backbone_dir).train()
    args = make_args(tmp_path, topo_samples_per_class=8, topo_group_size=4, topo_placement="pre", topo_weight_pre=1.0)
    trainer = TopoTrainer(model=model, args=args, train_dataset=dataset)
    loss = trainer.compute_loss(model, dict(batch))
    latents = model(**{k: v for k, v in batch.items() if k != "labels"}).latents
    # Four groups of 4 (two per class), each contributing Σ|w − β| over its 3 MST edges; the term is their mean.
    expected = densification_loss(latents, batch["labels"], beta=args.topo_beta_pre, samples_per_class=4) / 4
    ce = model(**dict(batch)).loss
    torch.testing.assert_close(loss, ce + expected, rtol=1e-4, atol=1e-5)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="topo_placement"):
        make_args(tmp_path, topo_placement="everywhere")
    with pytest.raises(ConfigurationError, match="topo_schedule"):
        make_args(tmp_path, topo_schedule="linear")
    with pytest.raises(ConfigurationError, match="topo_group_size"):
        make_args(tmp_path, topo_samples_per_class=8, topo_group_size=9)


# ---------------------------------------------------------------- training
def fixed_topo_loss(model, tokenizer, dataset, space: str, beta: float) -> float:
    collator = DataCollatorWithPadding(tokenizer)
    batch = collator([dataset[i] for i in range(32)])
    model.eval()
    with torch.no_grad():
        outputs = model(**{k: v for k, v in batch.items() if k != "labels"})
    return float(densification_loss(outputs[space], batch["labels"], beta=beta, samples_per_class=16))


def accuracy(model, tokenizer, dataset) -> float:
    collator = DataCollatorWithPadding(tokenizer)
    batch = collator([dataset[i] for i in range(len(dataset))])
    model.eval()
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    return float((logits.argmax(-1) == batch["labels"]).float().mean())


def test_training_lowers_the_topo_loss_keeps_accuracy_and_logs_each_part(backbone_dir, tokenizer, tmp_path):
    train, test = make_dataset(tokenizer, 64, seed=0), make_dataset(tokenizer, 64, seed=1)
    plain = make_model(backbone_dir)
    TopoTrainer(
        model=plain, args=make_args(tmp_path / "plain", topo_weight_pre=0.0, topo_weight_post=0.0), train_dataset=train,
        processing_class=tokenizer,
    ).train()  # fmt: skip
    model = make_model(backbone_dir)
    weights = {"topo_weight_pre": 1.0, "topo_weight_post": 0.02, "topo_beta_pre": 0.0, "topo_beta_post": 0.0}
    trainer = TopoTrainer(
        model=model, args=make_args(tmp_path / "topo", **weights), train_dataset=train, processing_class=tokenizer
    )
    trainer.train()
    # Same seed, same batches: the densified latents have much shorter MST edges than CE alone leaves.
    densified = fixed_topo_loss(model, tokenizer, train, "latents", 0.0)
    assert densified < 0.5 * fixed_topo_loss(plain, tokenizer, train, "latents", 0.0)
    assert accuracy(model, tokenizer, test) >= min(0.9, accuracy(plain, tokenizer, test) - 0.1)

    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged
    for key in ("loss_ce", "loss_topo_pre", "loss_topo_post", "topo_death_median_pre", "topo_death_median_post"):
        assert all(key in entry for entry in logged), key
    last = logged[-1]  # total = CE + λ_pre·pre + λ_post·post at the constant weights used here
    total = last["loss_ce"] + 1.0 * last["loss_topo_pre"] + 0.02 * last["loss_topo_post"]
    assert last["loss"] == pytest.approx(total, rel=0.05)

    trainer.create_model_card()
    card = (tmp_path / "topo" / "README.md").read_text()
    assert "hf-relrep card: begin" in card and "TopoTrainer" in card


def test_trainer_push_to_hub_writes_our_card(local_hub, backbone_dir, tokenizer, tmp_path):
    from huggingface_hub import hf_hub_download
    from transformers import AutoModelForSequenceClassification

    model = make_model(backbone_dir)
    args = make_args(tmp_path, max_steps=2, hub_model_id="test-user/topo-model")
    trainer = TopoTrainer(
        model=model, args=args, train_dataset=make_dataset(tokenizer, 32), processing_class=tokenizer
    )
    trainer.train()
    trainer.push_to_hub()
    card = Path(hf_hub_download("test-user/topo-model", "README.md")).read_text()
    assert "hf-relrep card: begin" in card and "TopoTrainer" in card and "automatically generated" not in card
    assert 'from_pretrained("test-user/topo-model")' in card
    pulled = AutoModelForSequenceClassification.from_pretrained("test-user/topo-model").eval()
    batch = DataCollatorWithPadding(tokenizer)([make_dataset(tokenizer, 4)[i] for i in range(4)])
    batch.pop("labels")
    torch.testing.assert_close(pulled(**batch).logits, model.eval()(**batch).logits)


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_accumulation_matches_one_larger_batch(backbone_dir, tokenizer, tmp_path):
    dataset = make_dataset(tokenizer, 16)
    collator = DataCollatorWithPadding(tokenizer)
    # Two class-balanced micro-batches of 2 classes × 4, and the batch made of both.
    order = sorted(range(16), key=lambda i: (i // 8, dataset[i]["label"]))
    micro = [collator([dataset[i] for i in order[:8]]), collator([dataset[i] for i in order[8:]])]
    whole = collator([dataset[i] for i in order[:4] + order[8:12] + order[4:8] + order[12:]])

    def run(batches, accumulation):
        model = make_model(backbone_dir, seed=5)
        args = make_args(tmp_path, gradient_accumulation_steps=accumulation, topo_weight_pre=0.3, topo_weight_post=0.3)
        trainer = TopoTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
        trainer.create_optimizer_and_scheduler(num_training_steps=1)
        trainer.current_gradient_accumulation_steps = accumulation
        for batch in batches:
            trainer.training_step(trainer.model, dict(batch))
        return _grads(trainer.model)

    accumulated, single = run(micro, 2), run([whole], 1)
    assert accumulated.keys() == single.keys() and len(single) > 10
    # Gradients are O(1); the shift-invariant adapter bias gets only rounding noise (~1e-6) on both paths.
    for name in single:
        torch.testing.assert_close(accumulated[name], single[name], atol=1e-5, rtol=1e-4, msg=name)


# peft 0.21 still calls a transformers API deprecated in 5.x; that warning is theirs, not ours.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_lora_wrapped_relative_model_trains_and_saves(backbone_dir, tokenizer, tmp_path):
    from peft import LoraConfig, get_peft_model

    model = make_model(backbone_dir)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], modules_to_save=["head", "adapter"])
    )
    lora_before = {n: p.clone() for n, p in peft_model.named_parameters() if "lora_B" in n}
    trainer = TopoTrainer(
        model=peft_model, args=make_args(tmp_path, max_steps=4), train_dataset=make_dataset(tokenizer, 32),
        processing_class=tokenizer,
    )  # fmt: skip
    trainer.train()
    changed = [n for n, p in peft_model.named_parameters() if "lora_B" in n and not torch.equal(p, lora_before[n])]
    assert changed
    peft_model.save_pretrained(tmp_path / "lora")
    assert (tmp_path / "lora" / "adapter_model.safetensors").exists()


def test_bad_input_gives_clear_errors(backbone_dir, tokenizer, tmp_path):
    model = make_model(backbone_dir)
    no_labels = make_dataset(tokenizer, 16).remove_columns("label")
    with pytest.raises(DataError, match="'labels' or 'label'"):  # at construction, not when training starts
        TopoTrainer(model=model, args=make_args(tmp_path), train_dataset=no_labels, processing_class=tokenizer)

    with pytest.raises(DataError, match="topo_samples_per_class"):
        TopoTrainer(
            model=model, args=make_args(tmp_path, topo_samples_per_class=40), train_dataset=make_dataset(tokenizer, 16),
            processing_class=tokenizer,
        )  # fmt: skip

    trainer = TopoTrainer(model=model, args=make_args(tmp_path), train_dataset=make_dataset(tokenizer, 16))
    collator = DataCollatorWithPadding(tokenizer)
    one_each = collator([make_dataset(tokenizer, 2)[i] for i in range(2)])  # one sample per class
    model.train()
    with pytest.raises(TopologyError, match="class-balanced"):
        trainer.compute_loss(model, dict(one_each))

    absolute = make_model(backbone_dir, representation="absolute", anchor_texts=None)
    with pytest.raises(ConfigurationError, match="'pre'"):
        TopoTrainer(model=absolute, args=make_args(tmp_path), train_dataset=make_dataset(tokenizer, 16))


DDP_SCRIPT = Path(__file__).parent / "ddp_topo_train.py"


@pytest.mark.integration
def test_two_process_ddp_run_sees_class_pure_groups_and_ends_in_sync(backbone_dir, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
               "--master_addr=127.0.0.1",
               str(DDP_SCRIPT), str(backbone_dir), str(tmp_path)]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for report in reports:
        assert report["world_size"] == 2 and report["steps"] == 3
        for groups in report["batches"]:
            assert all(len(set(labels)) == 1 for labels in groups)
    seen = [{i for batch in report["indices"] for i in batch} for report in reports]
    assert not seen[0] & seen[1]
    assert reports[0]["weights_sha256"] == reports[1]["weights_sha256"]
