"""`push_to_hub` for relative models: weights, config with anchors, our card and the tokenizer in one commit."""

import os
import tempfile
from typing import Any

from huggingface_hub import HfApi

from .model_card import build_model_card, load_existing_card


class RelativeHubMixin:
    """`push_to_hub` that writes hf-relrep's model card (and the tokenizer, when given) with the weights."""

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        commit_description: str | None = None,
        private: bool | None = None,
        token: bool | str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        max_shard_size: int | str | None = "50GB",
        tags: list[str] | None = None,
        tokenizer=None,
        card_kwargs: dict[str, Any] | None = None,
    ) -> str:
        """Upload the model (safetensors, config with anchors), its card, and optionally its tokenizer, in one commit.

        Args:
            repo_id: ``namespace/name``; created when missing.
            tokenizer: pushed with the model so that the repository is complete (stitched models need the
                encoder's tokenizer).
            card_kwargs: passed to [`build_model_card`] (``language``, ``license``, ``datasets``, ``eval_results``,
                ``training_summary``).
            Other arguments: as `transformers.PreTrainedModel.push_to_hub`.

        Returns:
            The commit info of the upload.
        """
        api = HfApi(token=token if isinstance(token, str) else None)
        repo_id = api.create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        existing = load_existing_card(repo_id, token=token, revision=revision)
        card = build_model_card(
            self,
            repo_id=repo_id,
            tags=tags,
            has_tokenizer=tokenizer is not None,
            existing=existing,
            **(card_kwargs or {}),
        )
        with tempfile.TemporaryDirectory() as tmp_dir:
            self.save_pretrained(tmp_dir, max_shard_size=max_shard_size)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp_dir)
            card.save(os.path.join(tmp_dir, "README.md"))
            return self._upload_modified_files(
                tmp_dir,
                repo_id,
                files_timestamps={},
                commit_message=commit_message or ("Upload stitched model" if self.config.provenance else None),
                token=token,
                create_pr=create_pr,
                revision=revision,
                commit_description=commit_description,
            )
