"""The identity of an anchor set (`hf_relrep.anchors.identity`): its fingerprint, the count, the check on load."""

import hashlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from hf_relrep.anchors.identity import (
    MIN_ANCHORS,
    anchor_fingerprint,
    check_anchor_count,
    check_anchor_identity,
    tensor_bytes,
)
from hf_relrep.errors import AnchorError


def test_text_fingerprint_is_the_sha256_of_the_json_texts():
    # Saved models carry this value in config.json: its format must never change.
    expected = hashlib.sha256('["good","bad","fine ü"]'.encode()).hexdigest()
    assert anchor_fingerprint(["good", "bad", "fine ü"]) == "sha256:" + expected
    assert anchor_fingerprint(("good", "bad", "fine ü")) == anchor_fingerprint(["good", "bad", "fine ü"])


def test_fingerprint_names_an_ordered_set_and_what_the_model_stores():
    texts = ["good", "bad", "fine"]
    ids = torch.arange(6).reshape(3, 2)
    assert anchor_fingerprint(texts) != anchor_fingerprint(texts[::-1])
    with_ids = anchor_fingerprint(texts, ids)
    assert with_ids != anchor_fingerprint(texts)
    assert with_ids == anchor_fingerprint(texts, [ids]) == anchor_fingerprint(texts, ids.numpy())
    assert with_ids != anchor_fingerprint(texts, ids.int())  # the dtype is part of it
    mask = torch.ones(3, 2, dtype=torch.long)
    assert anchor_fingerprint(texts, {"mask": mask, "ids": ids}) == anchor_fingerprint(texts, [ids, mask])


def test_array_fingerprint_covers_dtype_shape_and_bytes():
    image = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    header, payload = tensor_bytes(image)
    assert header == "|u1|2,2,3|" and payload == image.tobytes()
    assert tensor_bytes(torch.from_numpy(image)) == (header, payload)
    expected = hashlib.sha256(header.encode() + payload).hexdigest()
    assert anchor_fingerprint([image]) == "sha256:" + expected
    assert anchor_fingerprint([image]) != anchor_fingerprint([image.reshape(3, 2, 2)])
    assert anchor_fingerprint([image]) != anchor_fingerprint([image.astype(np.float32)])


def test_one_string_is_not_an_anchor_set():
    with pytest.raises(AnchorError, match="one string"):
        anchor_fingerprint("good bad")


def test_anchor_count():
    check_anchor_count(MIN_ANCHORS)
    with pytest.raises(AnchorError, match=r"at least 2 anchors, got 1; pass more anchor_texts"):
        check_anchor_count(1, fix="pass more anchor_texts")


class _Holder(nn.Module):
    """A module that holds anchors: its config's saved fingerprint and the one of what it holds now."""

    def __init__(self, texts, saved, current):
        super().__init__()
        self.config = SimpleNamespace(anchor_texts=texts, anchor_fingerprint=saved)
        self._current = current

    def current_anchor_fingerprint(self):
        return self._current


def test_identity_check_on_load():
    texts = ["good", "bad"]
    current = anchor_fingerprint(texts, torch.ones(2, 3, dtype=torch.long))
    check_anchor_identity(nn.Sequential(_Holder(texts, current, current), nn.Linear(2, 2)))
    check_anchor_identity(_Holder(texts, current, None))  # built from a config alone: nothing to compare yet
    check_anchor_identity(_Holder(texts, None, current))  # nothing saved to compare with

    old = _Holder(texts, anchor_fingerprint(texts), current)  # hf-relrep 0.1 fingerprinted the texts alone
    check_anchor_identity(nn.Sequential(old))
    assert old.config.anchor_fingerprint == current

    edited = _Holder(["good", "awful"], current, anchor_fingerprint(["good", "awful"], torch.ones(2, 3)))
    with pytest.raises(AnchorError, match="anchor_fingerprint.*set_anchors"):
        check_anchor_identity(nn.Sequential(edited))


def test_old_import_paths_still_work():
    import hf_relrep.configuration
    import hf_relrep.modeling.base
    import hf_relrep.relative.projection

    assert hf_relrep.configuration.anchor_fingerprint is anchor_fingerprint
    assert hf_relrep.relative.projection.check_anchor_count is check_anchor_count
    assert hf_relrep.modeling.base.check_anchor_identity is check_anchor_identity
