"""The backbone matrix: every family a user brings, tiny and random, built here (nothing is downloaded).

One parametrized tester (in the spirit of transformers' ModelTesterMixin) runs the same checks on each backbone:
build with anchors, a batch equals its examples one by one, save → Auto class → identical logits, a pipeline call,
and a zero-shot stitch with a backbone of another family of the same modality.
"""

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from tiny_models import TEXT_FAMILIES, TEXT_SIZES
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    CLIPVisionConfig,
    ConvNextConfig,
    Dinov2Config,
    ResNetConfig,
    SwinConfig,
    ViTConfig,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    WhisperConfig,
    WhisperFeatureExtractor,
    pipeline,
)
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from hf_relrep import (
    RelativeModel,
    RelativeModelForAudioClassification,
    RelativeModelForImageClassification,
    RelativeModelForSequenceClassification,
    RelRepError,
    stitch,
)
from hf_relrep.errors import AnchorError, BackboneError, ModalityError, ProcessorError
from hf_relrep.modeling import ANCHORS_FILE


LABELS = {0: "negative", 1: "neutral", 2: "positive"}
ANCHOR_TEXTS = ["a good film", "a bad film", "the plot was boring", "great fun", "i hate it", "a nice story"]
TEXTS = ["the movie was great", "a boring plot", "i love it", "not very good film"]
IMAGE_SIZE = 32
SAMPLING_RATE = 16000


# ---------------------------------------------------------------- tiny backbones and processors, saved like checkpoints
VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, image_size=IMAGE_SIZE)


def vision_backbone(config_fn: Callable[[], Any]) -> Callable:
    def save(path: Path) -> None:
        torch.manual_seed(0)
        AutoModel.from_config(config_fn()).save_pretrained(path)
        ViTImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(path)

    return save


def save_wav2vec2(path: Path) -> None:
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        **TEXT_SIZES, conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2, vocab_size=8,
    )  # fmt: skip
    AutoModel.from_config(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(sampling_rate=SAMPLING_RATE).save_pretrained(path)


def save_whisper(path: Path) -> None:
    torch.manual_seed(0)
    config = WhisperConfig(
        d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=37, decoder_ffn_dim=37, num_mel_bins=16, max_source_positions=50, max_target_positions=16,
        vocab_size=40, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )  # fmt: skip
    AutoModel.from_config(config).save_pretrained(path)
    # 1-second windows: 100 frames, what max_source_positions=50 expects after the stride-2 convolution.
    WhisperFeatureExtractor(feature_size=16, chunk_length=1, sampling_rate=SAMPLING_RATE).save_pretrained(path)


def rng_images(count: int, seed: int) -> list[np.ndarray]:
    generator = np.random.default_rng(seed)
    shapes = [(IMAGE_SIZE + 8 * (i % 3), IMAGE_SIZE + 4 * (i % 2), 3) for i in range(count)]  # varied raw sizes
    return [generator.integers(0, 256, size=shape, dtype=np.uint8) for shape in shapes]


def rng_audio(count: int, seed: int, length: int = 1600) -> list[np.ndarray]:
    """Tones of different pitches and loudness, with a little noise: anchors that differ in more than noise."""
    generator = np.random.default_rng(seed)
    time = np.arange(length) / SAMPLING_RATE
    clips = []
    for _ in range(count):
        pitch, loudness = generator.uniform(100, 4000), generator.uniform(0.05, 0.8)
        clip = loudness * np.sin(2 * np.pi * pitch * time) + 0.02 * generator.standard_normal(length)
        clips.append(clip.astype(np.float32))
    return clips


@dataclasses.dataclass(frozen=True)
class Backbone:
    """One row of the matrix."""

    name: str
    modality: str
    save: Callable[[Path], None]
    partner: str  # another family of the same modality, for the stitch
    padding_side: str = "right"
    pad_token: bool = True

    def __str__(self) -> str:
        return self.name


SWIN = dict(image_size=IMAGE_SIZE, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[2, 2], window_size=4)
TEXT_PARTNERS = {"bert": "gpt2", "roberta": "t5", "distilbert": "bart", "gpt2": "bert", "llama": "roberta",
                 "t5": "llama", "bart": "distilbert"}  # fmt: skip
BACKBONES = [
    *(
        Backbone(family.name, "text", family.save, TEXT_PARTNERS[family.name], family.padding_side, family.pad_token)
        for family in TEXT_FAMILIES
    ),
    Backbone("vit", "image", vision_backbone(lambda: ViTConfig(**VISION, patch_size=8)), partner="convnext"),
    Backbone(
        "convnext",
        "image",
        vision_backbone(
            lambda: ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, image_size=IMAGE_SIZE)
        ),
        partner="vit",
    ),
    Backbone(
        "resnet",
        "image",
        vision_backbone(
            lambda: ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")
        ),
        partner="swin",
    ),
    Backbone("swin", "image", vision_backbone(lambda: SwinConfig(**SWIN)), partner="dinov2"),
    Backbone("dinov2", "image", vision_backbone(lambda: Dinov2Config(**VISION, patch_size=8)), partner="clip"),
    Backbone("clip", "image", vision_backbone(lambda: CLIPVisionConfig(**VISION, patch_size=8)), partner="resnet"),
    Backbone("wav2vec2", "audio", save_wav2vec2, partner="whisper"),
    Backbone("whisper", "audio", save_whisper, partner="wav2vec2"),
]
BY_NAME = {backbone.name: backbone for backbone in BACKBONES}
TASK_CLASS = {
    "text": RelativeModelForSequenceClassification,
    "image": RelativeModelForImageClassification,
    "audio": RelativeModelForAudioClassification,
}
AUTO_CLASS = {
    "text": AutoModelForSequenceClassification,
    "image": AutoModelForImageClassification,
    "audio": AutoModelForAudioClassification,
}
PIPELINE_TASK = {"text": "text-classification", "image": "image-classification", "audio": "audio-classification"}
ANCHORS = {"text": ANCHOR_TEXTS, "image": rng_images(6, seed=1), "audio": rng_audio(6, seed=1)}
RAW_INPUTS = {"text": TEXTS, "image": rng_images(4, seed=2), "audio": rng_audio(4, seed=2)}


def build(backbone: Backbone, folder: Path, seed: int = 0) -> Any:
    torch.manual_seed(seed)
    anchors = {"text": "anchor_texts", "image": "anchor_images", "audio": "anchor_audio"}[backbone.modality]
    model = TASK_CLASS[backbone.modality].from_backbone_pretrained(
        str(folder), **{anchors: ANCHORS[backbone.modality]}, id2label=LABELS
    )
    with torch.no_grad():  # visible head weights: logits that differ well above float32 rounding
        model.head.layers.weight.normal_(0, 1.0)
    return model.eval()


def batch(model: Any, raw: list[Any], *, padding_side: str = "right") -> dict[str, torch.Tensor]:
    """What the model's own processor makes of `raw` examples, as a user would call it."""
    processor = model.processor
    if model.encoder.modality.name == "text":
        processor.padding_side = padding_side
        if processor.pad_token is None:  # GPT-2: the documented recipe for batching
            processor.pad_token = processor.eos_token
        encoded = processor(raw, padding=True, return_tensors="pt")
        return {key: encoded[key] for key in ("input_ids", "attention_mask")}
    if model.encoder.modality.name == "image":
        return dict(processor(images=raw, return_tensors="pt"))
    return dict(processor(raw, sampling_rate=SAMPLING_RATE, return_tensors="pt"))


@pytest.fixture(scope="session")
def folders(tmp_path_factory, text_family_folders) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("backbones")
    made = dict(text_family_folders)
    for backbone in BACKBONES:
        if backbone.name not in made:
            made[backbone.name] = root / backbone.name
            backbone.save(made[backbone.name])
    return made


@pytest.fixture
def models(folders, session_model) -> dict[str, Any]:
    """This test's copies of the matrix's models, by backbone name: each built once per session, copied on first use."""
    seeds = {backbone.name: index for index, backbone in enumerate(BACKBONES)}

    class Copies(dict):
        def __missing__(self, name: str) -> Any:
            self[name] = session_model(("backbones", name), lambda: build(BY_NAME[name], folders[name], seeds[name]))
            return self[name]

    return Copies()


@pytest.mark.parametrize("backbone", BACKBONES, ids=str)
class TestBackboneMatrix:
    def test_builds_with_anchors_and_classifies(self, backbone, models):
        model = models[backbone.name]
        assert model.encoder.modality.name == backbone.modality
        assert model.config.num_anchors == len(ANCHORS[backbone.modality])
        output = model(**batch(model, RAW_INPUTS[backbone.modality], padding_side=backbone.padding_side))
        assert output.logits.shape == (len(RAW_INPUTS[backbone.modality]), len(LABELS))
        assert output.relative.shape == (len(RAW_INPUTS[backbone.modality]), len(ANCHORS[backbone.modality]))
        assert torch.isfinite(output.logits).all()

    def test_a_batch_equals_its_examples_one_by_one(self, backbone, models):
        model, raw = models[backbone.name], RAW_INPUTS[backbone.modality]
        sides = ["left", "right"] if backbone.name in ("gpt2", "llama") else [backbone.padding_side]
        with torch.no_grad():
            one_by_one = torch.cat([model(**batch(model, [example])).logits for example in raw])
            for side in sides:
                batched = model(**batch(model, raw, padding_side=side)).logits
                torch.testing.assert_close(batched, one_by_one, rtol=1e-4, atol=1e-4, msg=f"{side} padding")

    def test_save_then_auto_class_gives_identical_logits(self, backbone, models, tmp_path):
        model = models[backbone.name]
        inputs = batch(model, RAW_INPUTS[backbone.modality], padding_side=backbone.padding_side)
        with torch.no_grad():
            expected = model(**inputs).logits
        model.save_pretrained(tmp_path)
        loaded = AUTO_CLASS[backbone.modality].from_pretrained(tmp_path)
        assert type(loaded) is TASK_CLASS[backbone.modality]
        with torch.no_grad():
            torch.testing.assert_close(loaded(**inputs).logits, expected)
        assert type(AutoModel.from_pretrained(tmp_path)) is RelativeModel
        if backbone.modality == "text":
            assert not (tmp_path / ANCHORS_FILE).exists()
        else:  # raw anchors, compactly: uint8 pixels, float32 samples
            with safe_open(str(tmp_path / ANCHORS_FILE), framework="pt") as handle:
                values = handle.get_tensor("values")
            assert values.dtype == {"image": torch.uint8, "audio": torch.float32}[backbone.modality]
            assert values.numel() == sum(anchor.size for anchor in ANCHORS[backbone.modality])

    def test_pipeline_on_the_saved_folder(self, backbone, models, tmp_path):
        model = models[backbone.name]
        model.save_pretrained(tmp_path)
        classify = pipeline(PIPELINE_TASK[backbone.modality], model=str(tmp_path))
        example = RAW_INPUTS[backbone.modality][0]
        if backbone.modality == "image":
            from PIL import Image

            example = Image.fromarray(example)
        predictions = classify(example, top_k=len(LABELS))
        with torch.no_grad():
            expected = model(**batch(model, RAW_INPUTS[backbone.modality][:1])).logits.softmax(-1)[0]
        assert {p["label"] for p in predictions} == set(LABELS.values())
        scores = {p["label"]: p["score"] for p in predictions}
        got = torch.tensor([scores[LABELS[i]] for i in range(len(LABELS))])
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)

    def test_stitches_with_another_family(self, backbone, models):
        encoder_model, head_model = models[backbone.name], models[backbone.partner]
        assert type(encoder_model.encoder.backbone) is not type(head_model.encoder.backbone)
        stitched = stitch(encoder_from=encoder_model, head_from=head_model)
        inputs = batch(encoder_model, RAW_INPUTS[backbone.modality], padding_side=backbone.padding_side)
        with torch.no_grad():
            relative = encoder_model(**inputs).relative
            torch.testing.assert_close(stitched(**inputs).logits, head_model.head(relative))
        assert type(stitched) is TASK_CLASS[backbone.modality]


# ---------------------------------------------------------------- families, one check each
def test_encoder_decoders_wrap_their_encoder_only(models, folders, tmp_path):
    for name in ("t5", "bart", "whisper"):
        model = models[name]
        assert not any(key.startswith("decoder") for key in model.encoder.backbone.state_dict()), name
        assert "Encoder" in type(model.encoder.backbone).__name__ or "Stack" in type(model.encoder.backbone).__name__
    models["t5"].save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as handle:
        assert not any("decoder" in key for key in handle.keys())  # noqa: SIM118 (safe_open is no dict)


def test_decoder_only_pools_the_last_real_token_by_default(models):
    assert models["gpt2"].config.pooling == "last" and models["llama"].config.pooling == "last"
    assert models["bert"].config.pooling == "cls" and models["wav2vec2"].config.pooling == "mean"
    assert models["vit"].config.pooling == "cls" and models["clip"].config.pooling == "cls"
    assert models["convnext"].config.pooling == "pooler" and models["resnet"].config.pooling == "pooler"
    assert models["swin"].config.pooling == "mean"


def test_gpt2_anchors_are_padded_with_eos(models):
    model = models["gpt2"]
    ids, mask = model.encoder.anchor_input_ids, model.encoder.anchor_attention_mask
    assert model.processor.pad_token is None or model.processor.pad_token == model.processor.eos_token
    assert (ids[mask == 0] == 2).all()  # eos


def test_vision_mean_pooling_averages_patches_not_the_cls_token(folders):
    model = RelativeModelForImageClassification.from_backbone_pretrained(
        str(folders["vit"]), anchor_images=ANCHORS["image"], num_labels=3, pooling="mean"
    ).eval()
    assert model.encoder.prefix_tokens == 1
    pixel_values = batch(model, RAW_INPUTS["image"])["pixel_values"]
    with torch.no_grad():
        hidden = model.encoder.backbone(pixel_values=pixel_values).last_hidden_state
        torch.testing.assert_close(model(pixel_values=pixel_values).latents, hidden[:, 1:].mean(1))


@pytest.mark.parametrize("pooling", ["mean", "max", "pooler"])
def test_feature_maps_pool_globally_or_through_the_backbone_pooler(folders, pooling):
    model = RelativeModelForImageClassification.from_backbone_pretrained(
        str(folders["convnext"]), anchor_images=ANCHORS["image"], num_labels=3, pooling=pooling
    ).eval()
    pixel_values = batch(model, RAW_INPUTS["image"])["pixel_values"]
    with torch.no_grad():
        outputs = model.encoder.backbone(pixel_values=pixel_values)
        expected = {
            "mean": outputs.last_hidden_state.mean(dim=(2, 3)),  # [batch, channels, height, width]
            "max": outputs.last_hidden_state.amax(dim=(2, 3)),
            "pooler": outputs.pooler_output,
        }[pooling]
        torch.testing.assert_close(model(pixel_values=pixel_values).latents, expected)


# ---------------------------------------------------------------- anchors and errors
def test_two_vision_architectures_with_the_same_anchor_images_stitch_without_a_declared_id(models):
    vit, convnext = models["vit"], models["convnext"]
    assert vit.config.anchor_set_id is None and vit.config.anchor_fingerprint == convnext.config.anchor_fingerprint
    stitch(encoder_from=vit, head_from=convnext)


def test_edited_anchor_images_are_refused_on_load(models, tmp_path):
    from safetensors.torch import load_file, save_file

    models["vit"].save_pretrained(tmp_path)
    tensors = load_file(tmp_path / ANCHORS_FILE)
    with safe_open(str(tmp_path / ANCHORS_FILE), framework="pt") as handle:
        metadata = handle.metadata()
    tensors["values"][0] += 1
    save_file(tensors, tmp_path / ANCHORS_FILE, metadata=metadata)
    with pytest.raises(AnchorError, match="set_anchors"):
        AutoModelForImageClassification.from_pretrained(tmp_path)


def test_a_saved_vision_model_without_its_processor_says_what_to_pass(models, tmp_path):
    models["vit"].save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").unlink()
    with pytest.raises(ProcessorError, match="processor=AutoImageProcessor"):
        AutoModelForImageClassification.from_pretrained(tmp_path)
    processor = ViTImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path, processor=processor)
    assert loaded.processor is processor


def test_anchor_that_tokenizes_to_nothing_is_refused_by_name(folders):
    for name in ("roberta", "gpt2"):  # specials around nothing, or nothing at all
        with pytest.raises(AnchorError, match=r"1 \('!!!'\) tokenize to no token"):
            RelativeModelForSequenceClassification.from_backbone_pretrained(
                str(folders[name]), anchor_texts=["a good film", "!!!", "a bad film"], num_labels=2
            )


def test_modality_mismatches_say_what_to_use(folders, models):
    with pytest.raises(ModalityError, match="RelativeModelForImageClassification"):
        RelativeModelForSequenceClassification.from_backbone_pretrained(
            str(folders["vit"]), anchor_texts=ANCHOR_TEXTS, num_labels=2
        )
    with pytest.raises(ModalityError, match="anchor_texts"):
        RelativeModelForImageClassification.from_backbone_pretrained(
            str(folders["bert"]), anchor_images=ANCHORS["image"], num_labels=2
        )
    with pytest.raises(ModalityError, match="not a text"):
        models["bert"].encoder.set_anchors(ANCHORS["image"])
    with pytest.raises(ModalityError, match="pass input_ids"):
        models["bert"].encoder(pixel_values=torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE))
    with pytest.raises(ModalityError, match="reads input_features"):
        models["whisper"].encoder(input_values=torch.zeros(1, 1600))
    with pytest.raises(ProcessorError, match="image processor"):
        models["vit"].encoder.set_anchors(ANCHORS["image"], models["bert"].processor)


def test_a_backbone_automodel_cannot_load_is_a_typed_error(folders, tmp_path):
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(BackboneError, match="AutoConfig cannot read the backbone"):
        RelativeModelForImageClassification.from_backbone_pretrained(
            str(unknown), anchor_images=ANCHORS["image"], num_labels=2
        )
    weightless = tmp_path / "weightless"
    AutoConfig.from_pretrained(folders["vit"]).save_pretrained(weightless)
    with pytest.raises(RelRepError, match="(?i)weights|safetensors"):  # BackboneError, or the loader's own
        RelativeModelForImageClassification.from_backbone_pretrained(
            str(weightless), anchor_images=ANCHORS["image"], num_labels=2
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(RelRepError, match="config.json"):
        RelativeModelForImageClassification.from_backbone_pretrained(
            str(tmp_path / "empty"), anchor_images=ANCHORS["image"], num_labels=2
        )


def test_audio_anchors_at_another_sampling_rate_are_refused(folders):
    with pytest.raises(AnchorError, match="resample"):
        RelativeModelForAudioClassification.from_backbone_pretrained(
            str(folders["wav2vec2"]), anchor_audio=ANCHORS["audio"], sampling_rate=8000, num_labels=2
        )


def test_image_anchors_are_processed_once_while_training(folders):
    class CountingProcessor:
        def __init__(self, processor):
            self.processor, self.calls = processor, 0

        def __call__(self, *args, **kwargs):
            self.calls += 1
            return self.processor(*args, **kwargs)

    model = build(BY_NAME["vit"], folders["vit"]).train()
    inputs = batch(model, RAW_INPUTS["image"])
    model.encoder.processor = counting = CountingProcessor(model.processor)
    model.encoder._anchor_input_cache = None
    for _ in range(3):  # the backbone trains: the anchors are re-embedded every step, from the same pixels
        model(**inputs, labels=torch.tensor([0, 1, 2, 0])).loss.backward()
    assert counting.calls == 1


def test_reproduce_vision_command_prints_the_stitching_table(tmp_path, capsys):
    from hf_relrep.cli import main

    out = tmp_path / "scores.json"
    argv = ["reproduce-vision", "--seeds", "0", "--methods", "absolute", "robust", "--epochs", "1", "1"]
    assert main([*argv, "--anchors", "20", "--json", str(out), "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "| vit | convnext |" in table and "| convnext | vit |" in table
    import json

    scores = json.loads(out.read_text())["scores"]
    assert set(scores) == {"absolute", "robust"} and len(scores["robust"]["vit→convnext"]) == 1


def test_cli_stitches_two_saved_vision_models(models, tmp_path):
    from hf_relrep.cli import main

    models["vit"].save_pretrained(tmp_path / "vit")
    models["convnext"].save_pretrained(tmp_path / "convnext")
    out = tmp_path / "stitched"
    assert (
        main(["stitch", "--encoder", str(tmp_path / "vit"), "--head", str(tmp_path / "convnext"), "--out", str(out)])
        == 0
    )
    stitched = AutoModelForImageClassification.from_pretrained(out)
    inputs = batch(models["vit"], RAW_INPUTS["image"])
    with torch.no_grad():
        expected = models["convnext"].head(models["vit"](**inputs).relative)
        torch.testing.assert_close(stitched(**inputs).logits, expected)
    assert pipeline("image-classification", model=str(out))(RAW_INPUTS["image"][0].astype(np.uint8).copy())
