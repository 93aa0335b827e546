"""Every file the library loads follows the same rules: safetensors only unless opted in, Hub downloads checked
against the Hub's checksums, and a local path that does not exist is named as such (not a failed Hub lookup)."""

import pytest
import torch
from huggingface_hub import HfApi
from tiny_models import ANCHORS_EN, save_tiny_backbone
from transformers import AutoConfig, AutoTokenizer

from hf_relrep import RelativeModelForSequenceClassification, stitch
from hf_relrep.errors import AnchorError, CorruptDownloadError, SourceNotFoundError, UnsafeCheckpointError
from hf_relrep.modeling.loading import load_backbone
from hf_relrep.stitching.sources import state_fingerprint


def _pickle_only_backbone(folder):
    save_tiny_backbone(folder, seed=4)
    weights = load_backbone(folder).state_dict()
    (folder / "model.safetensors").unlink()
    torch.save(weights, folder / "pytorch_model.bin")
    return folder


def _wrap(source, **kwargs):
    return RelativeModelForSequenceClassification.from_backbone_pretrained(
        source, anchor_texts=ANCHORS_EN, num_labels=2, pooling="mean", **kwargs
    )


def test_a_pickle_only_backbone_is_refused_unless_opted_in(local_hub, tmp_path):
    folder = _pickle_only_backbone(tmp_path / "pickled")
    HfApi().create_repo("test-user/pickled-backbone")
    HfApi().upload_folder(folder_path=folder, repo_id="test-user/pickled-backbone")
    for source in (str(folder), "test-user/pickled-backbone"):
        with pytest.raises(UnsafeCheckpointError, match="use_safetensors=False"):
            _wrap(source)
        with pytest.raises(UnsafeCheckpointError, match="--allow-pickle"):
            load_backbone(source)
        opted_in = _wrap(source, backbone_kwargs={"use_safetensors": False})
        reference = torch.load(folder / "pytorch_model.bin", weights_only=True)
        loaded = opted_in.encoder.backbone.state_dict()
        assert all(torch.equal(loaded[name], tensor) for name, tensor in reference.items() if name in loaded)


def test_a_corrupted_hub_backbone_is_detected_and_evicted(local_hub, tmp_path):
    folder = save_tiny_backbone(tmp_path / "backbone", seed=5)
    HfApi().create_repo("test-user/backbone")
    HfApi().upload_folder(folder_path=folder, repo_id="test-user/backbone")
    cache = tmp_path / "hub-cache"
    local_hub.faults.fail_next_download("model.safetensors", kind="corrupt")  # right size, wrong bytes
    with pytest.raises(CorruptDownloadError, match="model.safetensors.*Load the model again"):
        _wrap("test-user/backbone", backbone_kwargs={"cache_dir": str(cache)})
    with pytest.raises(CorruptDownloadError):
        local_hub.faults.fail_next_download("model.safetensors", kind="corrupt")
        load_backbone("test-user/backbone", cache_dir=str(cache), force_download=True)
    again = load_backbone("test-user/backbone", cache_dir=str(cache))  # the bad file left the cache
    assert state_fingerprint(again) == state_fingerprint(load_backbone(folder))


def test_a_missing_local_path_is_not_looked_up_on_the_hub(tmp_path, language_models):
    missing = tmp_path / "no-such-model"
    for call in (
        lambda: stitch(encoder_from=missing, head_from=language_models[0]),
        lambda: stitch(encoder_from=str(missing), head_from=language_models[0]),
        lambda: RelativeModelForSequenceClassification.from_pretrained(f"{missing}/"),
        lambda: _wrap(f"./{missing.name}"),
        lambda: load_backbone(str(tmp_path / "a" / "b")),
    ):
        with pytest.raises(SourceNotFoundError, match="does not exist"):
            call()


def test_a_file_given_as_a_model_folder_is_named(tmp_path):
    folder = save_tiny_backbone(tmp_path / "backbone")
    with pytest.raises(SourceNotFoundError, match="is a file"):
        load_backbone(str(folder / "config.json"))


def test_edited_anchor_token_ids_are_refused_with_how_to_retokenize(tmp_path, language_models, language_backbones):
    from safetensors.torch import load_file, save_file

    model = language_models[0]
    model.save_pretrained(tmp_path / "model")
    weights = load_file(tmp_path / "model" / "model.safetensors")
    weights["encoder.anchor_input_ids"][0, 1] += 1  # one token of one anchor
    save_file(weights, tmp_path / "model" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(AnchorError, match=r"set_anchors\(model.config.anchor_texts, tokenizer\)"):
        RelativeModelForSequenceClassification.from_pretrained(tmp_path / "model")
    # Re-tokenizing, as the message says, gives a model that saves and loads again.
    reloaded = RelativeModelForSequenceClassification(AutoConfig.from_pretrained(tmp_path / "model"))
    reloaded.encoder.set_anchors(reloaded.config.anchor_texts, AutoTokenizer.from_pretrained(language_backbones[0]))
    reloaded.save_pretrained(tmp_path / "fixed")
    RelativeModelForSequenceClassification.from_pretrained(tmp_path / "fixed")


def test_a_model_saved_with_a_texts_only_fingerprint_still_loads(tmp_path, language_models):
    import json

    from hf_relrep.anchors import anchor_fingerprint

    language_models[0].save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    config["anchor_fingerprint"] = anchor_fingerprint(config["anchor_texts"])  # what hf-relrep 0.1 wrote
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    loaded = RelativeModelForSequenceClassification.from_pretrained(tmp_path / "old")
    assert loaded.config.anchor_fingerprint == language_models[0].config.anchor_fingerprint
