"""Hub glue: model cards, integrity checks of downloads, and `push_to_hub` with our card."""

from ..utils.hashing import file_git_blob_sha1, file_sha256, git_blob_sha1
from .integrity import verify_cached_files
from .mixin import RelativeHubMixin
from .model_card import CARD_BEGIN, CARD_END, TEMPLATES_DIR, build_model_card, load_existing_card, merge_model_cards


__all__ = [
    "CARD_BEGIN",
    "CARD_END",
    "TEMPLATES_DIR",
    "RelativeHubMixin",
    "build_model_card",
    "file_git_blob_sha1",
    "file_sha256",
    "git_blob_sha1",
    "load_existing_card",
    "merge_model_cards",
    "verify_cached_files",
]
