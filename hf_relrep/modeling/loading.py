"""Safe loading of backbones and checkpoints: safetensors unless told otherwise, no pooler we would drop."""

import inspect
import os
from typing import Any

from huggingface_hub import HfApi
from transformers import AutoModel, PreTrainedConfig
from transformers.models.auto.auto_factory import _get_model_class


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def offers_only_pickle(source: str | os.PathLike, kwargs: dict[str, Any]) -> bool:
    """Whether `source` (a folder or a Hub repo) has pickle weights and no safetensors weights."""
    if os.path.isdir(source):
        files = [name for _, _, names in os.walk(source) for name in names]
    else:
        try:
            files = HfApi().list_repo_files(str(source), revision=kwargs.get("revision"), token=kwargs.get("token"))
        except Exception:  # the original loading error is the one worth showing
            return False
    return not any(f.endswith(".safetensors") for f in files) and any(f.endswith(PICKLE_SUFFIXES) for f in files)


def without_pooler(backbone_config: PreTrainedConfig) -> dict[str, Any]:
    """`add_pooling_layer=False` for backbones that take it (BERT, RoBERTa, ...): we pool ourselves."""
    model_class = _get_model_class(backbone_config, AutoModel._model_mapping)
    return {"add_pooling_layer": False} if "add_pooling_layer" in inspect.signature(model_class).parameters else {}
