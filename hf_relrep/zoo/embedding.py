"""`embed_texts`: pooled embeddings of texts from a frozen encoder, through the shared inference loop."""

from collections.abc import Sequence

import torch

from ..errors import ConfigurationError
from ..evaluation.batches import length_sorted_batches, run_batches
from ..relative.pooling import POOLING_MODES, pool


def embed_texts(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    *,
    pooling: str = "mean",
    prefix: str = "",
    batch_size: int = 64,
    max_length: int = 128,
    normalize: bool = False,
    show_progress: bool = False,
) -> torch.Tensor:
    """Embed texts with a frozen encoder: batched, length-sorted, under ``torch.inference_mode()``.

    The texts are tokenized once (truncated to ``max_length`` tokens, prefix included), sorted by length so that each
    batch is padded only to its own longest text, run through ``model`` in eval mode and pooled with
    :func:`hf_relrep.relative.pooling.pool`; the rows come back in the input order. The model's train/eval mode is restored.
    The loop is :func:`hf_relrep.evaluation.run_batches` over :func:`hf_relrep.evaluation.length_sorted_batches`.

    Args:
        model: A transformers encoder whose output has ``last_hidden_state`` (or a tuple whose first item is it).
        tokenizer: Its tokenizer (a fast tokenizer is much quicker).
        texts: The texts; an empty sequence gives a ``[0, hidden]`` tensor.
        pooling: One of :data:`hf_relrep.relative.pooling.POOLING_MODES`; the encoder's spec in
            :data:`hf_relrep.zoo.OFFLINE_ENCODERS` gives the one it was trained with.
        prefix: Prepended to every text (e5 expects ``"passage: "``; the spec gives it too).
        batch_size: Texts per forward pass.
        max_length: Truncation length in tokens, special tokens included.
        normalize: L2-normalize each embedding (what sentence-transformers' ``Normalize`` module does).
        show_progress: Show a tqdm bar counting texts.

    Returns:
        ``[len(texts), hidden]`` float32 tensor on the CPU, row ``i`` the embedding of ``texts[i]``.

    Example::

        >>> path = offline_encoder("minilm")
        >>> model, tokenizer = AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)
        >>> embed_texts(model, tokenizer, ["a great film", "a dull film"], normalize=True).shape
        torch.Size([2, 384])
    """
    if isinstance(texts, str):
        raise ConfigurationError("embed_texts takes a sequence of texts, not one string; wrap it in a list.")
    if pooling not in POOLING_MODES:
        raise ConfigurationError(f"Unknown pooling {pooling!r}; choose one of {', '.join(POOLING_MODES)}.")
    if batch_size < 1 or max_length < 1:
        raise ConfigurationError(f"batch_size and max_length must be positive; got {batch_size} and {max_length}.")
    if len(texts) == 0:
        return torch.empty(0, model.config.hidden_size)

    def pooled(output, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
        vectors = pool(hidden, inputs["attention_mask"].to(hidden.device), pooling).float()
        return torch.nn.functional.normalize(vectors, dim=-1) if normalize else vectors

    batches = length_sorted_batches(tokenizer, texts, batch_size=batch_size, max_length=max_length, prefix=prefix)
    return run_batches(model, batches, pooled, num_rows=len(texts), progress=show_progress, unit="text")


__all__ = ["embed_texts"]
