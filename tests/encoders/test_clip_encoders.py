"""open_clip encoders with random weights (``pretrained=None``): nothing is downloaded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from kec.encoders import create_image_encoder, create_text_encoder, load_clip
from kec.errors import KecError

MODEL = "ViT-S-32"  # the smallest ViT in open_clip's registry


@pytest.fixture(scope="module")
def image_encoder():
    return create_image_encoder(MODEL, "none", device="cpu", batch_size=4)


def test_image_encoder_files_and_memory_agree(image_encoder, class_folder):
    paths = sorted(p for p in class_folder.glob("*/[!.]*.png"))  # 6 good + broken.png
    feats, kept, failed = image_encoder.encode_files(paths)
    assert feats.shape == (6, 384) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    assert [paths[i].name for i, _ in failed] == ["broken.png"]
    assert len(kept) == 6 and kept == sorted(kept)
    mem = image_encoder.encode([Image.open(paths[i]) for i in kept[:2]])
    np.testing.assert_allclose(mem, feats[:2], atol=1e-5)


def test_image_encoder_describes_model_weights_and_preprocessing(image_encoder):
    desc = image_encoder.describe()
    assert json.loads(json.dumps(desc)) == desc
    assert desc["kind"] == "open_clip" and desc["model"] == MODEL
    assert desc["pretrained"] is None and desc["dim"] == 384
    assert desc["precision"] == "fp32"
    assert "Normalize" in desc["preprocess"] and desc["image_size"] == [224, 224]


def test_clip_text_ensemble_shares_the_model_and_averages_templates(image_encoder):
    tac = image_encoder.text_encoder("tac")
    assert tac.clip is image_encoder.clip
    got = tac.encode(["dog"])
    assert got.shape == (1, 384)
    raw = tac.with_templates(None).encode([t.replace("{}", "dog") for t in
                                           tac.templates.templates])
    want = raw.mean(axis=0)
    np.testing.assert_allclose(got[0], want / np.linalg.norm(want), atol=1e-5)
    desc = tac.describe()
    assert desc["templates"]["name"] == "tac" and len(desc["templates"]["templates"]) == 7
    assert tac.encode([]).shape == (0, 384)


def test_random_weights_are_reproducible_and_leave_global_rng_alone(image_encoder):
    state = torch.get_rng_state()
    again = create_text_encoder(f"clip:{MODEL}:none", device="cpu")
    assert torch.equal(torch.get_rng_state(), state)
    ref = image_encoder.clip.model.state_dict()
    for name, value in again.clip.model.state_dict().items():
        assert torch.equal(value, ref[name]), name
    assert again.describe()["templates"] is None


def test_local_checkpoint_file_is_loaded_and_hashed(image_encoder, tmp_path):
    ckpt = tmp_path / "tiny.pt"
    torch.save(image_encoder.clip.model.state_dict(), ckpt)
    clip = load_clip(MODEL, str(ckpt), device="cpu")
    assert clip.pretrained == str(ckpt)
    assert len(clip.checkpoint_sha256) == 64
    assert clip.describe()["checkpoint_sha256"] == clip.checkpoint_sha256
    w = "visual.conv1.weight"
    assert torch.equal(clip.model.state_dict()[w], image_encoder.clip.model.state_dict()[w])


@pytest.mark.parametrize(
    "name, pretrained, match",
    [
        ("No-Such-Model", None, "No-Such-Model"),
        (MODEL, "no-such-tag", "no-such-tag"),
        ("hf-hub:org/model", "openai", "Hugging Face hub"),
    ],
)
def test_load_errors_are_clear_and_offline(name, pretrained, match):
    with pytest.raises(KecError, match=match):
        load_clip(name, pretrained, device="cpu")
