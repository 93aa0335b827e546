"""Relative and stitched models through a real Hub protocol (the local server), with our model cards."""

from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import EvalResult, HfApi, ModelCard, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from tiny_models import ANCHORS_EN, ANCHORS_FR, relative_classifier, save_tiny_backbone
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_relrep import stitch
from hf_relrep.errors import StitchingError
from hf_relrep.hub import CARD_BEGIN, build_model_card, merge_model_cards
from hf_relrep.stitching.sources import state_fingerprint


def _batch(backbone, texts=("un film très bon", "mauvais")):
    return AutoTokenizer.from_pretrained(backbone)(list(texts), padding=True, return_tensors="pt")


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_push_then_pull_gives_identical_logits_and_our_card(local_hub, language_backbones, language_models):
    english, _ = language_models
    tokenizer = AutoTokenizer.from_pretrained(language_backbones[0])
    results = [EvalResult(task_type="text-classification", dataset_type="parallel-sentiment", dataset_name="EN/FR "
               "sentiment", dataset_split="test", metric_type="accuracy", metric_value=81.5)]  # fmt: skip
    english.push_to_hub("test-user/relrep-en", tokenizer=tokenizer, card_kwargs={"language": "en", "eval_results": results})  # fmt: skip

    files = {f.rfilename for f in HfApi().model_info("test-user/relrep-en").siblings}
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json"} <= files
    assert not {f for f in files if f.endswith((".bin", ".pt", ".pkl"))}
    loaded = AutoModelForSequenceClassification.from_pretrained("test-user/relrep-en")
    batch = _batch(language_backbones[0], ["the movie was great"])
    torch.testing.assert_close(loaded(**batch).logits, english(**batch).logits)
    assert loaded.config.anchor_texts == ANCHORS_EN

    card = ModelCard.load("test-user/relrep-en")
    metadata = _front_matter(str(card))
    assert metadata["library_name"] == "transformers" and "hf-relrep" in metadata["tags"]
    assert metadata["pipeline_tag"] == "text-classification" and metadata["language"] == ["en"]
    assert metadata["model-index"][0]["results"][0]["metrics"][0]["value"] == 81.5
    assert CARD_BEGIN in card.text and 'from_pretrained("test-user/relrep-en")' in card.text
    assert "automatically generated" not in card.text  # not transformers' stub


def test_stitch_straight_from_hub_ids_and_push_the_result(local_hub, language_backbones, language_models):
    english, french = language_models
    english.push_to_hub("test-user/relrep-en")
    french.push_to_hub("test-user/relrep-fr")
    stitched = stitch(encoder_from="test-user/relrep-fr", head_from="test-user/relrep-en")
    batch = _batch(language_backbones[1])
    torch.testing.assert_close(stitched(**batch).logits, english.head(french(**batch).relative))
    provenance = stitched.config.provenance
    assert provenance["encoder"]["source"] == "test-user/relrep-fr"
    assert provenance["encoder"]["commit"] == HfApi().model_info("test-user/relrep-fr").sha

    stitched.push_to_hub(
        "test-user/fr-encoder-en-head", tokenizer=AutoTokenizer.from_pretrained(language_backbones[1])
    )
    readme = hf_hub_download("test-user/fr-encoder-en-head", "README.md")
    text = Path(readme).read_text()
    metadata = _front_matter(text)
    assert "stitched" in metadata["tags"]
    assert "test-user/relrep-fr" in text and "test-user/relrep-en" in text
    assert provenance["head"]["content_sha256"] in text
    pulled = AutoModelForSequenceClassification.from_pretrained("test-user/fr-encoder-en-head")
    torch.testing.assert_close(pulled(**batch).logits, stitched(**batch).logits)


def test_pull_an_older_revision(local_hub, language_backbones, language_models):
    english, _ = language_models
    first = english.push_to_hub("test-user/relrep-en").oid
    HfApi().create_tag("test-user/relrep-en", tag="v1")
    retrained = relative_classifier(language_backbones[0], ANCHORS_EN, 99)
    retrained.push_to_hub("test-user/relrep-en")
    batch = _batch(language_backbones[0], ["the movie was great"])
    for revision in (first, "v1"):
        old = AutoModelForSequenceClassification.from_pretrained("test-user/relrep-en", revision=revision)
        torch.testing.assert_close(old(**batch).logits, english(**batch).logits)
    latest = AutoModelForSequenceClassification.from_pretrained("test-user/relrep-en")
    torch.testing.assert_close(latest(**batch).logits, retrained(**batch).logits)
    stitched = stitch(encoder_from="test-user/relrep-en", head_from=english, encoder_revision="v1")
    assert stitched.config.provenance["encoder"]["revision"] == "v1"
    assert state_fingerprint(stitched.encoder) == state_fingerprint(english.encoder)


def test_private_repo_needs_the_token(local_hub, language_models):
    local_hub.token = "secret-token"
    language_models[0].push_to_hub("test-user/private-en", private=True, token="secret-token")
    pulled = AutoModelForSequenceClassification.from_pretrained("test-user/private-en", token="secret-token")
    assert pulled.config.anchor_texts == ANCHORS_EN
    with pytest.raises(OSError, match="test-user/private-en"):
        AutoModelForSequenceClassification.from_pretrained("test-user/private-en", token=False)
    with pytest.raises(HfHubHTTPError, match="401"):
        language_models[0].push_to_hub("test-user/private-en", token="wrong-token")


def test_missing_repo_and_file_give_clear_errors(local_hub, language_models):
    with pytest.raises(OSError, match="test-user/does-not-exist"):
        AutoModelForSequenceClassification.from_pretrained("test-user/does-not-exist")
    with pytest.raises((OSError, RepositoryNotFoundError), match="does-not-exist"):
        stitch(encoder_from="test-user/does-not-exist", head_from=language_models[0])
    HfApi().create_repo("test-user/empty")
    with pytest.raises((OSError, ValueError), match="config.json"):
        AutoModelForSequenceClassification.from_pretrained("test-user/empty")


def test_a_push_cut_off_midway_leaves_the_last_complete_revision(local_hub, language_backbones, language_models):
    english, _ = language_models
    english.push_to_hub("test-user/relrep-en")
    before = HfApi().model_info("test-user/relrep-en").sha
    retrained = relative_classifier(language_backbones[0], ANCHORS_EN, 7)
    local_hub.faults.fail_next_commit(after_files=1, stop_server=True)
    with pytest.raises(Exception):  # noqa: B017 - whatever the client raises for a dropped connection
        retrained.push_to_hub("test-user/relrep-en")
    local_hub.start()
    assert HfApi().model_info("test-user/relrep-en").sha == before
    pulled = AutoModelForSequenceClassification.from_pretrained("test-user/relrep-en", revision=before)
    batch = _batch(language_backbones[0], ["the movie was great"])
    torch.testing.assert_close(pulled(**batch).logits, english(**batch).logits)


def test_truncated_download_is_detected(local_hub, language_models, tmp_path):
    language_models[0].push_to_hub("test-user/relrep-en")
    local_hub.faults.fail_next_download("model.safetensors", kind="truncate")
    with pytest.raises(OSError, match="[Cc]onsistency"):
        AutoModelForSequenceClassification.from_pretrained("test-user/relrep-en", cache_dir=tmp_path)


def test_corrupted_download_is_detected_and_evicted(local_hub, language_backbones, language_models, tmp_path):
    from hf_relrep.errors import CorruptDownloadError

    language_models[0].push_to_hub("test-user/relrep-en")
    local_hub.faults.fail_next_download("model.safetensors", kind="corrupt")  # right size, wrong bytes
    with pytest.raises(CorruptDownloadError, match="model.safetensors.*Load the model again"):
        AutoModelForSequenceClassification.from_pretrained("test-user/relrep-en", cache_dir=tmp_path)
    again = AutoModelForSequenceClassification.from_pretrained("test-user/relrep-en", cache_dir=tmp_path)
    batch = _batch(language_backbones[0], ["the movie was great"])
    torch.testing.assert_close(again(**batch).logits, language_models[0](**batch).logits)


def test_an_existing_card_is_patched_not_clobbered(local_hub, language_models):
    api = HfApi()
    api.create_repo("test-user/relrep-en")
    owner_text = "---\nlicense: mit\ntags:\n- my-own-tag\n---\n# My model\n\nNotes the owner wrote by hand.\n"
    api.upload_file(path_or_fileobj=owner_text.encode(), path_in_repo="README.md", repo_id="test-user/relrep-en")
    language_models[0].push_to_hub("test-user/relrep-en")
    language_models[0].push_to_hub("test-user/relrep-en")  # twice: our section is replaced, not appended again
    card = ModelCard.load("test-user/relrep-en")
    assert "Notes the owner wrote by hand." in card.text and card.text.count(CARD_BEGIN) == 1
    assert card.data.license == "mit" and {"my-own-tag", "hf-relrep"} <= set(card.data.tags)


def test_transformers_stub_is_replaced():
    stub = ModelCard(
        "---\nlibrary_name: transformers\ntags: []\n---\n\nThis model card has been automatically generated."
    )
    model = relative_classifier(save_tiny_backbone_once(), ANCHORS_EN, 1)
    merged = merge_model_cards(stub, build_model_card(model, repo_id="me/x"))
    assert "automatically generated" not in merged.text and CARD_BEGIN in merged.text


_BACKBONE = {}


def save_tiny_backbone_once():
    import tempfile

    if "path" not in _BACKBONE:
        _BACKBONE["path"] = save_tiny_backbone(tempfile.mkdtemp())
    return _BACKBONE["path"]


def test_a_pickle_only_checkpoint_is_refused_unless_opted_in(local_hub, language_models, tmp_path):
    from hf_relrep.errors import UnsafeCheckpointError

    language_models[0].config.save_pretrained(tmp_path)
    torch.save(language_models[0].state_dict(), tmp_path / "pytorch_model.bin")
    HfApi().create_repo("test-user/pickled")
    HfApi().upload_folder(folder_path=tmp_path, repo_id="test-user/pickled")
    for source in (tmp_path, "test-user/pickled"):
        with pytest.raises(UnsafeCheckpointError, match="use_safetensors=False"):
            AutoModelForSequenceClassification.from_pretrained(source)
    opted_in = AutoModelForSequenceClassification.from_pretrained("test-user/pickled", use_safetensors=False)
    assert state_fingerprint(opted_in) == state_fingerprint(language_models[0])


def test_stitching_refusal_from_the_hub_says_why(local_hub, language_backbones, language_models):
    other = relative_classifier(language_backbones[1], ANCHORS_FR[:5], 3)
    other.push_to_hub("test-user/five-anchors")
    with pytest.raises(StitchingError, match="anchors"):
        stitch(encoder_from="test-user/five-anchors", head_from=language_models[0])
