"""`hf-relrep reproduce`: the paper's cross-lingual zero-shot stitching table (arXiv 2409.10967, Tables 1–2).

For every method and seed, an English and a French relative classifier are trained separately (different seeds, so
that nothing but the anchors ties them together), every (head language γ, encoder language φ) pair is stitched with
`hf_relrep.stitch`, and each stitched model is scored on the test set of the encoder's language with that
language's labels. Metrics (×100, as in the paper): accuracy, weighted F1, macro F1 and MAE, mean ± std over seeds.

Presets:

- ``quick`` (default, offline): all-MiniLM-L6-v2 (English, 6 layers) and multilingual-e5-small (French, 12 layers)
  from PyPI wheels — cross-lingual *and* cross-architecture — on the embedded parallel Rotten Tomatoes set
  (English → French with Apertium). The backbones are frozen and their pooled outputs cached on disk; the encoder
  side still has trainable parameters (a GELU MLP adapter), so the latent spaces of the two models differ by a
  non-linear map and densification can shape them.
- ``paper``: roberta-base and ClassCat/roberta-base-french fine-tuned end to end on Amazon Reviews multilingual
  (5 classes) with 768 parallel anchors and the paper's hyperparameters. Needs the Hub (or local copies) and a GPU.
"""

# Layout: config (methods, settings, presets) · data (texts and parallel anchors) · features (backbones, the embedding
# cache, what the models read) · train (one classifier) · units ((method, seed) units, on worker processes) · report
# (summary, table, files) · run (the run and its CLI).
from .config import LANGUAGES, METHODS, PRESETS, Method, ReproduceConfig, preset_config
from .report import format_table, report
from .run import config_from_args, run_from_args, run_reproduce


__all__ = [
    "LANGUAGES",
    "METHODS",
    "PRESETS",
    "Method",
    "ReproduceConfig",
    "config_from_args",
    "format_table",
    "preset_config",
    "report",
    "run_from_args",
    "run_reproduce",
]
