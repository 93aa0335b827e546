"""The batch-statistics study on the embedded EN/FR sentiment data, with the reproduce pipeline's models.

For each statistics source, an English and a French robust classifier (MLP adapter on cached frozen-backbone
features, reproduce's quick preset) are trained with `hf_relrep.experiments.reproduce.train.train_one`; the two native and the two
stitched models (`hf_relrep.experiments.reproduce.alignment.stitch_pair`) then classify the test sentences in batches drawn at
random ([`hf_relrep.experiments.study.batch_measure.batch_sensitivity`]).
"""

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from .batch_measure import STATS, batch_sensitivity, merge


def text_cells(
    *,
    seeds: int,
    draws: int,
    quick: bool,
    encoders: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Batch sensitivity of the reproduce models per statistics source, seed and batch size (rows for `summarize`).

    `quick` uses the first 256 test sentences.
    """
    from ..reproduce import LANGUAGES, METHODS, preset_config
    from ..reproduce.alignment import stitch_pair
    from ..reproduce.data import load_task_data
    from ..reproduce.features import prepare_language
    from ..reproduce.train import common_latent_size, train_one

    overrides = {"encoders": dict(encoders)} if encoders else {}
    base = preset_config("quick", methods=("robust",), seeds=1, **overrides)
    data, label_names = load_task_data(base)
    setups = {lang: prepare_language(base, lang, data[lang]) for lang in LANGUAGES}
    latent_size = common_latent_size(base, setups)
    count = 256 if quick else len(data["en"].test_labels)
    labels = torch.as_tensor(data["en"].test_labels[:count])
    if any(data[lang].test_labels[:count] != data["en"].test_labels[:count] for lang in LANGUAGES):
        raise AssertionError("The parallel test set's labels differ between languages.")
    names = " / ".join(Path(base.encoders[lang]).name for lang in LANGUAGES)
    setup_name = f"EN/FR sentiment ({names}, MLP adapter, {count} test sentences)"
    cells = []
    with tempfile.TemporaryDirectory(prefix="hf-relrep-study-") as work_dir:
        for stats in STATS:
            config = dataclasses.replace(base, stats=stats)
            for seed in range(seeds):
                models = {
                    lang: train_one(config, METHODS["robust"], setups[lang], data[lang], label_names, lang,
                                    1000 * offset + seed, Path(work_dir), latent_size)[0]
                    for offset, lang in enumerate(LANGUAGES)
                }  # fmt: skip
                predictors = {}
                for head in LANGUAGES:
                    for encoder in LANGUAGES:
                        model = stitch_pair(METHODS["robust"], models, setups, data, encoder, head).eval()
                        features = setups[encoder].test_features[:count]
                        kind = "native" if head == encoder else "stitched"
                        predictors[f"{kind}_{head}{encoder}"] = _predictor(model, features)
                measured = {n: batch_sensitivity(p, labels, draws=draws, seed=seed) for n, p in predictors.items()}
                for size, row in merge(measured).items():
                    cells.append({"setup": setup_name, "stats": stats, "seed": seed, "batch_size": size, **row})
                if progress is not None:
                    progress(f"batch-stats: text stats={stats} seed {seed}")
    return cells


def _predictor(model, features: torch.Tensor):
    @torch.no_grad()
    def predict(indices: torch.Tensor) -> torch.Tensor:
        return model(backbone_features=features[indices].to(model.device)).logits.argmax(-1)

    return predict


__all__ = ["text_cells"]
