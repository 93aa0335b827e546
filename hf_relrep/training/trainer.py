"""`TopoTrainer`: a `transformers.Trainer` that adds topological densification to the classification loss.

Loss of one (micro-)batch: ``L = CE + DensificationLoss(outputs, labels, λ_pre(t), λ_post(t))`` (see
`hf_relrep.training.losses`), with λ(t) the weight schedule of `TopoTrainingArguments`. Batches come from
`ClassBalancedBatchSampler`; every part of the loss is logged next to ``loss``.
"""

import os
from collections.abc import Iterator
from typing import Any

import datasets
import torch
from torch.utils.data import DataLoader
from transformers import Trainer
from transformers.trainer_utils import seed_worker

from ..checks import raise_deferred_errors
from ..errors import ConfigurationError, DataError, TopologyError
from ..hub import build_model_card
from .arguments import TopoTrainingArguments
from .losses import DensificationLoss
from .sampler import ClassBalancedBatchSampler


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The relative model under accelerate/DDP and PEFT wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "get_base_model"):
            model = model.get_base_model()
        else:
            return model


class TopoTrainer(Trainer):
    """`Trainer` with the topological densification loss, class-balanced batches and per-component logging.

    Train on a dataset with a ``labels`` (or ``label``) column; each training batch holds
    ``topo_classes_per_batch × topo_samples_per_class`` examples (``per_device_train_batch_size`` is not used for
    training batches). Logs ``loss_ce``, ``loss_topo_pre``, ``loss_topo_post``, ``topo_weight`` and the median death
    time per space next to ``loss``.

    Example:

    ```python
    >>> args = TopoTrainingArguments("out", topo_placement="both", topo_beta_pre=0.5, topo_beta_post=1.0)
    >>> trainer = TopoTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
    >>> trainer.train()
    ```
    """

    args: TopoTrainingArguments

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, TopoTrainingArguments):
            raise ConfigurationError("TopoTrainer needs TopoTrainingArguments (a TrainingArguments subclass).")
        relative = unwrap_model(self.model)
        config = getattr(relative, "config", None)
        if getattr(config, "model_type", None) != "hf-relrep":
            raise ConfigurationError(
                f"TopoTrainer trains relative models (hf_relrep.RelativeModelForSequenceClassification), got "
                f"{type(relative).__name__}."
            )
        if self.args.topo_placement in ("post", "both") and config.representation != "relative":
            raise ConfigurationError(
                "topo_placement 'post' needs a relative model; an absolute model has no relative vector. Use 'pre'."
            )
        self.densification = DensificationLoss(
            self.args.topo_placement,
            beta_pre=self.args.topo_beta_pre,
            beta_post=self.args.topo_beta_post,
            group_size=self.args.topo_group_size or self.args.topo_samples_per_class,
        )
        self.loss_is_scaled_for_ga = False  # a per-batch mean: Trainer divides by the accumulation steps
        if self.train_dataset is not None:
            self._batch_sampler()  # DataError now (one class, a class never sampled, ...), not at train() or never
        self._topo_sums: dict[str, torch.Tensor] = {}
        self._topo_keys: tuple[str, ...] = ()
        self._topo_count, self._topo_weight_sum = 0, 0.0
        self._stats_iterator: Iterator | None = None

    # ------------------------------------------------------------------ data
    def _train_labels(self) -> list[int]:
        dataset = self.train_dataset
        columns = getattr(dataset, "column_names", None) or []
        for name in ("labels", "label"):
            if name in columns:
                return list(dataset[name])
        raise DataError(
            f"TopoTrainer builds class-balanced batches from a 'labels' or 'label' column; the train dataset has "
            f"{columns or 'no named columns'}."
        )

    def _batch_sampler(self) -> ClassBalancedBatchSampler:
        """The class-balanced batches of the train dataset; `DataError` when the dataset cannot give them."""
        return ClassBalancedBatchSampler(
            self._train_labels(),
            classes_per_batch=self.args.topo_classes_per_batch,
            samples_per_class=self.args.topo_samples_per_class,
            seed=self.args.seed,
            num_replicas=self.args.world_size,
            rank=self.args.process_index,
        )

    def _stats_batch_size(self) -> int:
        if self.args.topo_stats_batch_size is not None:
            return self.args.topo_stats_batch_size
        return self.args.per_device_train_batch_size if unwrap_model(self.model).config.stats == "running" else 0

    def get_train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            raise DataError("TopoTrainer: training requires a train_dataset.")
        sampler = self._batch_sampler()
        dataset, collator = self.train_dataset, self.data_collator
        if isinstance(dataset, datasets.Dataset):
            dataset = self._remove_unused_columns(dataset, description="Training")
        else:
            collator = self._get_collator_with_removed_columns(collator, description="Training")
        dataloader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
            worker_init_fn=lambda worker: seed_worker(
                worker, self.args.dataloader_num_workers, self.args.process_index
            ),
        )
        prepared = self.accelerator.prepare(dataloader)
        # The sampler is already rank-aware: keep accelerate from sharding its batches again.
        shard = getattr(prepared, "batch_sampler", None)
        if shard is not None and getattr(shard, "batch_sampler", None) is sampler:
            shard.num_processes, shard.process_index = 1, 0
        if self._stats_batch_size() > 0:
            self._stats_loader = self.accelerator.prepare(
                DataLoader(
                    dataset,
                    batch_size=self._stats_batch_size(),
                    shuffle=True,
                    drop_last=True,
                    collate_fn=collator,
                    generator=torch.Generator().manual_seed(self.args.seed + 1),
                )
            )
        return prepared

    def _next_stats_batch(self) -> dict[str, Any]:
        if self._stats_iterator is None:
            self._stats_iterator = iter(self._stats_loader)
        try:
            return next(self._stats_iterator)
        except StopIteration:
            self._stats_iterator = iter(self._stats_loader)
            return next(self._stats_iterator)

    # ------------------------------------------------------------------ loss
    def training_step(self, model, inputs, num_items_in_batch=None):
        if self._stats_batch_size() > 0 and hasattr(self, "_stats_loader"):
            # The paper's statistics sub-batch: an ordinary random batch that only updates running statistics.
            batch = self._prepare_inputs(self._next_stats_batch())
            batch.pop("labels", None)
            model.train()
            with torch.no_grad():
                model(**batch)
        return super().training_step(model, inputs, num_items_in_batch)

    def current_topo_weights(self) -> tuple[float, float, float]:
        """(schedule factor, λ_pre(t), λ_post(t)) at the current optimizer step."""
        scale = self.args.topo_weight_scale(self.state.global_step, self.state.max_steps)
        placement = self.args.topo_placement
        pre = self.args.topo_weight_pre * scale if placement in ("pre", "both") else 0.0
        post = self.args.topo_weight_post * scale if placement in ("post", "both") else 0.0
        return scale, pre, post

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.get("labels")
        outputs = model(**inputs)
        loss_ce = outputs["loss"] if isinstance(outputs, dict) else outputs[0]
        if not model.training or labels is None:
            return (loss_ce, outputs) if return_outputs else loss_ce

        scale, weight_pre, weight_post = self.current_topo_weights()
        try:
            topo = self.densification(outputs, labels, weight_pre=weight_pre, weight_post=weight_post)
        except TopologyError as error:
            raise TopologyError(
                f"{error} TopoTrainer's batches are class-balanced; this batch was not: is a custom "
                "get_train_dataloader or collator reordering or dropping examples?"
            ) from error
        loss = loss_ce + topo.pop("loss")
        self._topo_weight_sum += scale
        self._accumulate({"loss_ce": loss_ce.detach(), **topo})
        return (loss, outputs) if return_outputs else loss

    # ------------------------------------------------------------------ logging
    def _accumulate(self, parts: dict[str, torch.Tensor]) -> None:
        """Sum the parts on their device, as one stacked tensor: read on the host only at logging steps."""
        values = torch.stack([value.detach().float() for value in parts.values()])
        total = self._topo_sums.get("parts")
        self._topo_sums["parts"] = values if total is None else total + values
        self._topo_keys = tuple(parts)
        self._topo_count += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._topo_count:
            raise_deferred_errors()  # checks deferred on the device during the steps since the last log
            means = self._topo_sums["parts"] / self._topo_count
            if self.args.world_size > 1:
                means = self.accelerator.reduce(means.to(self.args.device), reduction="mean")
            for key, value in zip(self._topo_keys, means.tolist(), strict=True):
                logs[key] = round(value, 6)
            logs["topo_weight"] = round(self._topo_weight_sum / self._topo_count, 6)
            self._topo_sums, self._topo_count, self._topo_weight_sum = {}, 0, 0.0
        super().log(logs, start_time)

    # ------------------------------------------------------------------ cards
    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """Write hf-relrep's card (not transformers' stub) into the output folder."""
        if not self.is_world_process_zero():
            return

        model = unwrap_model(self.model)
        summary = (
            f"Trained with hf-relrep's TopoTrainer: placement `{self.args.topo_placement}`, β_pre "
            f"{self.args.topo_beta_pre}, β_post {self.args.topo_beta_post}, λ_pre {self.args.topo_weight_pre}, λ_post "
            f"{self.args.topo_weight_post}, {self.args.topo_schedule} schedule, batches of "
            f"{self.args.topo_classes_per_batch or 'all'} classes × {self.args.topo_samples_per_class}, "
            f"{self.state.global_step} steps, learning rate {self.args.learning_rate}."
        )
        card_kwargs = {k: kwargs[k] for k in ("language", "license") if kwargs.get(k) is not None}
        if kwargs.get("dataset"):
            card_kwargs["datasets"] = kwargs["dataset"]
        card = build_model_card(
            model,
            repo_id=getattr(self, "hub_model_id", None) or self.args.hub_model_id,
            tags=kwargs.get("tags"),
            training_summary=summary,
            has_tokenizer=self.processing_class is not None,
            **card_kwargs,
        )
        card.save(os.path.join(self.args.output_dir, "README.md"))
