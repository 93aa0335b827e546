"""`TopoTrainer`: a `transformers.Trainer` that adds topological densification to the classification loss.

Loss of one (micro-)batch of b classes × n samples, made of class-pure groups G:

    L = CE + w_pre(t) · mean_G Σ_{w ∈ †(z_G)} |w − β_pre| + w_post(t) · mean_G Σ_{w ∈ †(r_G)} |w − β_post|

where †(·) are the 0-dimensional persistence death times (minimum-spanning-tree edge lengths) of a group, z the latents
(placement "pre") and r the relative vectors (placement "post"), and w(t) the weight schedule. The topological terms
are averaged over groups, so that their scale does not depend on how many groups a batch holds; the paper's λ apply
to a sum over b = 5 groups, hence the defaults λ × 5.
"""

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import torch
from torch.utils.data import DataLoader, Sampler
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import seed_worker

from .errors import ConfigurationError, DataError, TopologyError
from .hub import build_model_card
from .topology import densification_loss


PLACEMENTS = ("pre", "post", "both")
SCHEDULES = ("constant", "cyclic")


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Batches of `classes_per_batch` classes × `samples_per_class` samples, each class a contiguous group.

    Every epoch, each class's indices are shuffled and cut into groups of n (a remainder smaller than n is left out
    of that epoch); batches take one group from each of b distinct classes, preferring the classes with the most groups
    left, so that all classes are used evenly. The batch list is the same on every process (it depends only on the
    seed and the epoch); process r keeps batches r, r + R, r + 2R, ..., so no two processes see the same sample and
    every process gets the same number of batches.

    Args:
        labels: the class of every example of the dataset.
        classes_per_batch: b; `None` means every class of the dataset.
        samples_per_class: n ≥ 2.
        seed: base seed; epoch e uses seed + e.
        num_replicas, rank: data-parallel world size and this process's rank.
    """

    def __init__(
        self,
        labels: Sequence[int],
        *,
        classes_per_batch: int | None,
        samples_per_class: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)
        self.classes = sorted(set(self.labels.tolist()))
        counts = {c: int((self.labels == c).sum()) for c in self.classes}
        if samples_per_class < 2:
            raise ConfigurationError(
                f"samples_per_class must be ≥ 2 (a group of 1 has no MST), got {samples_per_class}."
            )
        self.samples_per_class = samples_per_class
        self.classes_per_batch = len(self.classes) if classes_per_batch is None else classes_per_batch
        eligible = [c for c in self.classes if counts[c] >= samples_per_class]
        if self.classes_per_batch < 1 or len(eligible) < self.classes_per_batch:
            raise DataError(
                f"Cannot build batches of {self.classes_per_batch} classes × {samples_per_class} samples: only "
                f"{len(eligible)} classes have {samples_per_class} examples (class counts {counts}). Lower "
                "topo_classes_per_batch or topo_samples_per_class, or add data."
            )
        self.seed, self.num_replicas, self.rank, self.epoch = seed, num_replicas, rank, 0
        if len(self._global_batches(0)) < num_replicas:
            raise DataError(
                f"The dataset yields fewer class-balanced batches than there are processes ({num_replicas}); lower "
                "topo_classes_per_batch or topo_samples_per_class."
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _global_batches(self, epoch: int) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        n, groups = self.samples_per_class, {}
        for c in self.classes:
            members = torch.nonzero(self.labels == c).flatten()
            members = members[torch.randperm(len(members), generator=generator)].tolist()
            groups[c] = [members[i : i + n] for i in range(0, len(members) - n + 1, n)]
        batches = []
        while True:
            available = [c for c in self.classes if groups[c]]
            if len(available) < self.classes_per_batch:
                break
            # Classes with the most groups left first; ties broken at random so no class is always favoured.
            ties = torch.rand(len(available), generator=generator).tolist()
            order = sorted(range(len(available)), key=lambda i: (-len(groups[available[i]]), ties[i]))
            chosen = sorted(available[i] for i in order[: self.classes_per_batch])
            batches.append([index for c in chosen for index in groups[c].pop()])
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._global_batches(self.epoch)
        usable = len(batches) - len(batches) % self.num_replicas
        self.epoch += 1  # a new order next time, also when nobody calls set_epoch
        yield from batches[self.rank : usable : self.num_replicas]

    def __len__(self) -> int:
        return len(self._global_batches(self.epoch)) // self.num_replicas


@dataclass
class TopoTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus topological densification.

    Defaults: β, λ and the cyclic schedule follow the paper (García-Castellanos et al. 2024, §5: λ_pre = 2e-3,
    λ_post = 1.8e-2, β = 3, ramp 0 → λ over 75% of each of 4 cycles), with λ × 5 because the terms here are averaged
    over the b = 5 groups the paper sums over; n = 16 samples per class is Hofer et al.'s (ICML 2020) and the paper's.
    β is a target edge length: read it against the median death time logged per space (``topo_death_median_*``) —
    a β above the typical MST edge spreads the classes instead of densifying them.
    """

    topo_placement: str = field(default="both", metadata={"help": "'pre' (latent), 'post' (relative) or 'both'."})
    topo_beta_pre: float = field(default=3.0, metadata={"help": "Target death time β on the latent (paper: 3)."})
    topo_beta_post: float = field(default=3.0, metadata={"help": "Target death time β on the relative vector."})
    topo_weight_pre: float = field(default=1e-2, metadata={"help": "λ_pre (paper 2e-3 on a sum over 5 groups)."})
    topo_weight_post: float = field(default=9e-2, metadata={"help": "λ_post (paper 1.8e-2 on a sum over 5 groups)."})
    topo_samples_per_class: int = field(
        default=16, metadata={"help": "n: samples of each class in a batch, as one contiguous class-pure block."}
    )
    topo_group_size: int | None = field(
        default=None,
        metadata={
            "help": "Size of the class-pure groups whose death times the loss reads (Hofer's and the paper's 16); "
            "None = topo_samples_per_class. Smaller groups let one batch hold several groups per class."
        },
    )
    topo_classes_per_batch: int | None = field(
        default=None, metadata={"help": "b: classes per batch; None = every class (the paper: all 5)."}
    )
    topo_schedule: str = field(default="cyclic", metadata={"help": "'constant' or 'cyclic' (the paper's ramp)."})
    topo_schedule_cycles: int = field(default=4, metadata={"help": "Cycles of the cyclic schedule (paper: 4)."})
    topo_schedule_ramp_ratio: float = field(
        default=0.75, metadata={"help": "Fraction of each cycle over which the weight ramps 0 → λ (paper: 0.75)."}
    )
    topo_stats_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Size of the ordinary random sub-batch forwarded each step (no loss) to update running "
            "statistics of stats='running' models; None = per_device_train_batch_size for such models, else 0."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.topo_placement not in PLACEMENTS:
            raise ConfigurationError(f"topo_placement must be one of {PLACEMENTS}, got {self.topo_placement!r}.")
        if self.topo_schedule not in SCHEDULES:
            raise ConfigurationError(f"topo_schedule must be one of {SCHEDULES}, got {self.topo_schedule!r}.")
        if self.topo_samples_per_class < 2:
            raise ConfigurationError("topo_samples_per_class must be ≥ 2: a group of one sample has no MST edge.")
        if self.topo_group_size is not None and not 2 <= self.topo_group_size <= self.topo_samples_per_class:
            raise ConfigurationError(
                f"topo_group_size must lie in [2, topo_samples_per_class={self.topo_samples_per_class}], got "
                f"{self.topo_group_size}."
            )
        if min(self.topo_beta_pre, self.topo_beta_post, self.topo_weight_pre, self.topo_weight_post) < 0:
            raise ConfigurationError("topo_beta_* and topo_weight_* must be ≥ 0.")
        if not 0.0 < self.topo_schedule_ramp_ratio <= 1.0 or self.topo_schedule_cycles < 1:
            raise ConfigurationError("topo_schedule_ramp_ratio must lie in (0, 1] and topo_schedule_cycles be ≥ 1.")

    def topo_weight_scale(self, step: int, max_steps: int) -> float:
        """The schedule's factor in [0, 1] at optimizer step `step` of `max_steps`."""
        if self.topo_schedule == "constant" or max_steps <= 0:
            return 1.0
        cycle_length = max_steps / self.topo_schedule_cycles
        position = (step % cycle_length) / cycle_length if cycle_length > 0 else 1.0
        return min(1.0, position / self.topo_schedule_ramp_ratio)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
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
        relative = _unwrap(self.model)
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
        self.loss_is_scaled_for_ga = False  # a per-batch mean: Trainer divides by the accumulation steps
        self._topo_sums: dict[str, torch.Tensor] = {}
        self._topo_count = 0
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

    def _stats_batch_size(self) -> int:
        if self.args.topo_stats_batch_size is not None:
            return self.args.topo_stats_batch_size
        return self.args.per_device_train_batch_size if _unwrap(self.model).config.stats == "running" else 0

    def get_train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            raise DataError("TopoTrainer: training requires a train_dataset.")
        sampler = ClassBalancedBatchSampler(
            self._train_labels(),
            classes_per_batch=self.args.topo_classes_per_batch,
            samples_per_class=self.args.topo_samples_per_class,
            seed=self.args.seed,
            num_replicas=self.args.world_size,
            rank=self.args.process_index,
        )
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
        n = self.args.topo_group_size or self.args.topo_samples_per_class
        parts = {"loss_ce": loss_ce.detach(), "topo_weight": torch.tensor(scale)}
        loss = loss_ce
        for space, weight, beta, key in (
            ("pre", weight_pre, self.args.topo_beta_pre, "latents"),
            ("post", weight_post, self.args.topo_beta_post, "relative"),
        ):
            if self.args.topo_placement not in (space, "both"):
                continue
            points = outputs[key]
            try:
                topo, deaths = densification_loss(
                    points, labels, beta=beta, samples_per_class=n, return_death_times=True
                )
            except TopologyError as error:
                raise TopologyError(
                    f"{error} TopoTrainer's batches are class-balanced; this batch was not: is a custom "
                    "get_train_dataloader or collator reordering or dropping examples?"
                ) from error
            groups = sum(len(d) for d in deaths.values()) / max(n - 1, 1)
            topo = topo / groups
            loss = loss + weight * topo
            parts[f"loss_topo_{space}"] = topo.detach()
            parts[f"topo_death_median_{space}"] = torch.cat(list(deaths.values())).median()
        self._accumulate(parts)
        return (loss, outputs) if return_outputs else loss

    # ------------------------------------------------------------------ logging
    def _accumulate(self, parts: dict[str, torch.Tensor]) -> None:
        for key, value in parts.items():
            value = value.detach().float().cpu()
            self._topo_sums[key] = self._topo_sums.get(key, torch.zeros(())) + value
        self._topo_count += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._topo_count:
            for key, total in self._topo_sums.items():
                value = total / self._topo_count
                if self.args.world_size > 1:
                    value = self.accelerator.reduce(value.to(self.args.device), reduction="mean").cpu()
                logs[key] = round(float(value), 6)
            self._topo_sums, self._topo_count = {}, 0
        super().log(logs, start_time)

    # ------------------------------------------------------------------ cards
    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """Write hf-relrep's card (not transformers' stub) into the output folder."""
        if not self.is_world_process_zero():
            return

        model = _unwrap(self.model)
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


__all__ = ["ClassBalancedBatchSampler", "TopoTrainer", "TopoTrainingArguments"]
