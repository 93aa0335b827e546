"""`RelativePreTrainedModel`: the loading safety checks and weight initialization shared by every relative model."""

import contextlib
import os
import re

from torch import nn
from transformers import PreTrainedModel

from ..anchors.identity import check_anchor_identity
from ..configuration import RelativeEncoderConfig
from ..errors import OutputExistsError
from ..relative.projection import RelativeProjection
from ..utils.files import atomic_folder, clean_leftovers
from .loading import is_local_path, safe_from_pretrained, verify_download


#: What an earlier `save_pretrained` wrote that this one may not write again: weight shards, their index, raw anchors.
_SAVE_OUTPUTS = re.compile(
    r"model(-\d{5}-of-\d{5})?\.safetensors|model\.safetensors\.index\.json|anchors\.safetensors"
)


def _written_by_save(name: str) -> bool:
    return _SAVE_OUTPUTS.fullmatch(name) is not None


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
        processor=None,
        **kwargs,
    ):
        """As `PreTrainedModel.from_pretrained`, with two safety checks.

        - Safetensors only unless `use_safetensors=False` is passed: a pickle checkpoint (``pytorch_model.bin``) can run
          arbitrary code when loaded; opt in explicitly, and only for sources you trust.
        - From the Hub, the downloaded weights and config are checked against the Hub's checksums
          (`hf_relrep.hub.verify_cached_files`; huggingface_hub itself only checks sizes). A corrupted file raises
          `CorruptDownloadError` and is removed from the cache. `verify_checksums=False` skips the check, and so does
          offline mode (``HF_HUB_OFFLINE=1`` or ``local_files_only=True``), where there is no Hub to ask.

        Files saved beside the weights are read back by `load_extra_files` (image and audio anchors, the processor);
        `processor` supplies the tokenizer, image processor or feature extractor when the folder has none.
        """
        source = pretrained_model_name_or_path
        if is_local_path(source) and not os.path.exists(source):
            with contextlib.suppress(OSError):  # a save that died between its two renames (systems without
                clean_leftovers(source)  # an atomic exchange): put the previous folder back
        load = super().from_pretrained  # PreTrainedModel's, bound to this class
        model = safe_from_pretrained(
            lambda path, **options: load(path, *args, **options),
            source,
            use_safetensors=use_safetensors,
            verify_checksums=False,  # after the extra files are downloaded too
            **kwargs,
        )
        model.load_extra_files(source, processor=processor, **kwargs)
        verify_download(source, verify_checksums=verify_checksums, **kwargs)
        check_anchor_identity(model)
        return model

    def save_pretrained(self, save_directory, *args, **kwargs):
        """As `PreTrainedModel.save_pretrained` plus `save_extra_files`, written atomically.

        The model is written into a temporary sibling folder and swapped in once complete (`hf_relrep.utils.files`): a crash
        at any instant leaves the previous model or the new one, never new config on old weights, never nothing. Files
        of an existing folder that saving does not write (a README, training logs, checkpoints) are kept; weight shards
        and the shard index of an earlier save are replaced.

        Raises:
            OutputExistsError: `save_directory` is a file.
        """
        push_to_hub = kwargs.pop("push_to_hub", False)
        hub_kwargs = {}
        if push_to_hub:  # uploaded after the extra files are written, so that they are part of the commit
            for key in ("repo_id", "commit_message", "private", "token", "create_pr", "revision"):
                if key in kwargs:
                    hub_kwargs[key] = kwargs.pop(key)
        if os.path.lexists(save_directory) and not os.path.isdir(save_directory):
            raise OutputExistsError(f"{save_directory} is a file; save_pretrained writes a folder.")
        if self.should_save_on_this_rank(kwargs.get("is_main_process", True)):
            with atomic_folder(save_directory, owned=_written_by_save) as tmp:
                super().save_pretrained(tmp, *args, **kwargs)
                self.save_extra_files(tmp)
        else:
            super().save_pretrained(save_directory, *args, **kwargs)  # writes nothing on other ranks
        if push_to_hub:
            repo_id = hub_kwargs.pop("repo_id", os.path.basename(os.path.normpath(save_directory)))
            self.push_to_hub(repo_id, **hub_kwargs)

    def save_extra_files(self, save_directory) -> None:
        """Hook: write files that belong with the weights (processor, raw anchors). Nothing by default."""

    def load_extra_files(self, source, *, processor=None, **hub_kwargs) -> None:
        """Hook: read back what `save_extra_files` wrote. Nothing by default."""

    def current_anchor_fingerprint(self) -> str | None:
        """Hook: the fingerprint of the anchors this module holds now (`None`: it holds none); `from_pretrained`
        compares it with ``config.anchor_fingerprint`` (`hf_relrep.anchors.identity.check_anchor_identity`)."""
        return None

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
