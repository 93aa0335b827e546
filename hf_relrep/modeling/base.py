"""`RelativePreTrainedModel`: the loading safety checks and weight initialization shared by every relative model."""

import os

import huggingface_hub
from torch import nn
from transformers import PreTrainedModel

from ..configuration import RelativeEncoderConfig
from ..errors import UnsafeCheckpointError
from ..hub import verify_cached_files
from ..projection import RelativeProjection
from .loading import offers_only_pickle


class RelativePreTrainedModel(PreTrainedModel):
    """Shared loading and initialization logic; backbone modules keep their own initialization."""

    config_class = RelativeEncoderConfig
    config: RelativeEncoderConfig
    base_model_prefix = "encoder"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    # forward() takes no **kwargs: Trainer scales the loss for gradient accumulation itself.
    accepts_loss_kwargs = False

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path,
        *args,
        use_safetensors: bool | None = None,
        verify_checksums: bool = True,
        **kwargs,
    ):
        """As `PreTrainedModel.from_pretrained`, with two safety checks.

        - Safetensors only unless `use_safetensors=False` is passed: a pickle checkpoint (``pytorch_model.bin``) can run
          arbitrary code when loaded; opt in explicitly, and only for sources you trust.
        - From the Hub, the downloaded weights and config are checked against the Hub's checksums
          (`hf_relrep.hub.verify_cached_files`; huggingface_hub itself only checks sizes). A corrupted file raises
          `CorruptDownloadError` and is removed from the cache. `verify_checksums=False` skips the check, and so does
          offline mode (``HF_HUB_OFFLINE=1`` or ``local_files_only=True``), where there is no Hub to ask.
        """
        try:
            model = super().from_pretrained(
                pretrained_model_name_or_path, *args, use_safetensors=True if use_safetensors is None else use_safetensors,
                **kwargs,
            )  # fmt: skip
        except OSError as error:
            if use_safetensors is None and offers_only_pickle(pretrained_model_name_or_path, kwargs):
                raise UnsafeCheckpointError(
                    f"{pretrained_model_name_or_path} has no safetensors weights, only a pickle checkpoint. hf-relrep "
                    "does not load pickles by default; pass use_safetensors=False to opt in (only for sources you "
                    "trust), or convert the checkpoint to safetensors."
                ) from error
            raise
        offline = huggingface_hub.constants.HF_HUB_OFFLINE or kwargs.get("local_files_only")
        if verify_checksums and not offline and not os.path.isdir(pretrained_model_name_or_path):
            verify_cached_files(
                str(pretrained_model_name_or_path), revision=kwargs.get("revision"), token=kwargs.get("token"),
                cache_dir=kwargs.get("cache_dir"),
            )  # fmt: skip
        return model

    def _init_weights(self, module: nn.Module) -> None:
        if getattr(module, "_hf_relrep_default_init", False):
            # The adapter keeps PyTorch's Kaiming-uniform init: with transformers' std 0.02 its GELU would start in
            # its near-linear range, and two adapters would differ by little more than a linear map.
            module.reset_parameters()
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, RelativeProjection):
            module.reset_running_stats()
