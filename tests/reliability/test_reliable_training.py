"""TopoTrainer refuses, when it is built, the datasets and layouts its class-balanced batches cannot serve."""

import math

import pytest
from datasets import Dataset
from tiny_models import ANCHORS_EN, relative_classifier

from hf_relrep.errors import ConfigurationError, DataError
from hf_relrep.experiments.reproduce.config import preset_config
from hf_relrep.training import TopoTrainer, TopoTrainingArguments


@pytest.fixture(scope="module")
def model(language_backbones):
    return relative_classifier(language_backbones[0], ANCHORS_EN, 0)


def _dataset(counts: dict[int, int]) -> Dataset:
    labels = [label for label, count in counts.items() for _ in range(count)]
    return Dataset.from_dict({"input_ids": [[2, 10, 3]] * len(labels), "labels": labels})


def _trainer(model, tmp_path, dataset, **args):
    arguments = TopoTrainingArguments(str(tmp_path), report_to=[], topo_samples_per_class=4, topo_group_size=4, **args)
    return TopoTrainer(model=model, args=arguments, train_dataset=dataset)


def test_a_balanced_dataset_is_accepted(model, tmp_path):
    _trainer(model, tmp_path, _dataset({0: 8, 1: 8, 2: 8}), topo_classes_per_batch=2)


def test_a_class_that_could_never_be_sampled_is_refused(model, tmp_path):
    # With 2 classes per batch there are enough large classes, so this used to train silently without class 2.
    with pytest.raises(DataError, match=r"\[2\].*never.*topo_samples_per_class to 3"):
        _trainer(model, tmp_path, _dataset({0: 12, 1: 12, 2: 3}), topo_classes_per_batch=2)


def test_a_single_class_dataset_is_refused(model, tmp_path):
    with pytest.raises(DataError, match="single class"):
        _trainer(model, tmp_path, _dataset({1: 32}))


def test_a_batch_layout_of_one_class_is_refused(model, tmp_path):
    with pytest.raises(DataError, match="topo_classes_per_batch=1"):
        _trainer(model, tmp_path, _dataset({0: 8, 1: 8}), topo_classes_per_batch=1)


@pytest.mark.parametrize("name", ["topo_weight_pre", "topo_weight_post", "topo_beta_pre", "topo_beta_post"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0])
def test_densification_weights_must_be_finite(tmp_path, name, value):
    with pytest.raises(ConfigurationError, match=name):
        TopoTrainingArguments(str(tmp_path), report_to=[], **{name: value})


@pytest.mark.parametrize("epochs", [0, -1, math.nan, math.inf])
def test_reproduce_refuses_runs_without_training(epochs):
    with pytest.raises(ConfigurationError, match="epochs must be a finite number > 0"):
        preset_config("quick", epochs=epochs)
