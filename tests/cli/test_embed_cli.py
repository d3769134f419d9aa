"""``kec embed images`` / ``kec embed texts`` end to end, in-process, random weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from kec.cli.main import main
from kec.features import (
    FeatureSet,
    IncompatibleFeaturesError,
    check_compatible,
    load_features,
    save_features,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MODEL = "ViT-S-32"  # smallest open_clip ViT; random weights, nothing downloaded


def _png(path: Path, color: tuple[int, int, int]) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), color).save(path)


@pytest.fixture()
def photos(tmp_path) -> Path:
    root = tmp_path / "photos"
    for cls, base in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
        for i in range(3):
            _png(root / cls / f"{i}.png", tuple(min(255, c + 20 * i) for c in base))
    (root / "dog" / "corrupt.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    return root


def test_embed_images_then_texts_like_them(tmp_path, photos, capsys):
    img_out = tmp_path / "photos.features.safetensors"
    rc = main(["embed", "images", str(photos), "--model", MODEL, "--pretrained", "none",
               "--out", str(img_out), "--batch-size", "4", "--device", "cpu", "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "wrote 6 image features (d=384)" in out and "corrupt.jpg" in out

    nouns = tmp_path / "nouns.txt"
    nouns.write_text("tabby cat\n\nbeagle\ntabby cat\n")
    txt_out = tmp_path / "nouns.features.safetensors"
    rc = main(["embed", "texts", str(nouns), "--like", str(img_out), "--out", str(txt_out),
               "--quiet"])
    assert rc == 0

    images = load_features(img_out, kind="image")
    texts = load_features(txt_out, kind="text")
    assert images.features.shape == (6, 384) and texts.features.shape == (2, 384)
    assert images.labels == ["cat"] * 3 + ["dog"] * 3
    assert images.ids[0] == "cat/0.png" and texts.ids == ["tabby cat", "beagle"]
    assert texts.labels is None
    enc = images.encoder
    assert (enc["kind"], enc["model"], enc["pretrained"]) == ("open_clip", MODEL, None)
    assert "Normalize" in enc["preprocess"]
    assert [s["id"] for s in images.metadata["extra"]["skipped"]] == ["dog/corrupt.jpg"]
    assert images.metadata["extra"]["source"]["origin"] == "folder"
    assert texts.encoder["templates"]["name"] == "tac"
    assert texts.metadata["extra"]["like"] == str(img_out)
    np.testing.assert_allclose(np.linalg.norm(texts.features, axis=1), 1.0, atol=1e-5)
    check_compatible(images, texts)

    # texts from another encoder are refused with a message naming both
    other = FeatureSet(features=texts.features, ids=texts.ids, source="other.safetensors",
                       metadata={"kind": "text",
                                 "encoder": dict(texts.encoder, model="ViT-B-32")})
    with pytest.raises(IncompatibleFeaturesError, match=r"ViT-B-32.*ViT-S-32"):
        check_compatible(images, other)

    # --like plus a conflicting --model: non-zero exit, one clear line, nothing written
    bad_out = tmp_path / "bad.safetensors"
    rc = main(["embed", "texts", str(nouns), "--like", str(img_out), "--model", "ViT-B-32",
               "--out", str(bad_out)])
    assert rc != 0 and not bad_out.exists()
    assert "conflict with the encoder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["embed", "images", "{empty}", "--pretrained", "none", "--out", "{out}"],
         "no images found"),
        (["embed", "texts", "{nouns}", "--like", "{nouns}", "--out", "{out}"],
         "not a safetensors feature file"),
        (["embed", "texts", "{nouns}", "--like", "{textfeat}", "--out", "{out}"],
         "holds text features, expected image"),
        (["embed", "texts", "{nouns}", "--out", "{out}"], "say which encoder"),
        (["embed", "texts", "{nouns}", "--model", MODEL, "--out", "{out}"], "--pretrained"),
        (["embed", "images", "--pretrained", "none", "--out", "{out}"], "image folder"),
        (["embed", "texts", "{nouns}", "--encoder", "clip:" + MODEL + ":none",
          "--templates", "no-such-set", "--out", "{out}"], "unknown template set"),
    ],
)
def test_user_errors_exit_non_zero_with_one_clear_line(tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    nouns = tmp_path / "nouns.txt"
    nouns.write_text("cat\n")
    textfeat = tmp_path / "t.safetensors"
    save_features(textfeat, np.eye(1, 4), ids=["cat"], kind="text",
                  encoder={"kind": "open_clip", "model": MODEL, "pretrained": None})
    paths = {"empty": tmp_path / "empty", "out": tmp_path / "out.safetensors",
             "nouns": nouns, "textfeat": textfeat}
    rc = main([a.format(**paths) for a in argv])
    err = capsys.readouterr().err
    assert rc != 0, err
    assert err.startswith("kec: error:") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "out.safetensors").exists()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    """A 2-layer open_clip ViT at 64 px, registered with open_clip: fast CLI runs."""
    import json

    import open_clip

    folder = tmp_path_factory.mktemp("open_clip_configs")
    (folder / "kec-cli-tiny.json").write_text(json.dumps({
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2,
                     "layers": 2},
    }))
    open_clip.add_model_config(folder)
    return "kec-cli-tiny"


def test_ctrl_c_keeps_completed_batches_and_the_same_command_resumes(
    tmp_path, photos, capsys, monkeypatch, tiny_model
):
    """Issue 9 item 17: the interrupt message is true, and the rerun skips saved rows."""
    from kec.encoders.clip import ClipImageEncoder

    real = ClipImageEncoder.encode_batch
    calls: list[int] = []

    def interrupt_on_third_batch(self, batch):
        calls.append(len(batch))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, batch)

    out = tmp_path / "photos.features.safetensors"
    partial = tmp_path / "photos.features.safetensors.partial"
    argv = ["embed", "images", str(photos), "--model", tiny_model, "--pretrained", "none",
            "--out", str(out), "--batch-size", "2", "--device", "cpu", "--quiet",
            "--workers", "0"]
    monkeypatch.setattr(ClipImageEncoder, "encode_batch", interrupt_on_third_batch)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 130 and not out.exists()
    assert f"4 image feature(s) are saved in {partial}" in err
    assert "run the same command to resume" in err and "Traceback" not in err

    calls.clear()
    monkeypatch.setattr(ClipImageEncoder, "encode_batch",
                        lambda self, batch: (calls.append(len(batch)), real(self, batch))[1])
    assert main(argv) == 0
    assert "resuming: 4 image feature(s)" in capsys.readouterr().err
    assert sum(calls) == 2  # only the images not saved before the interrupt
    assert not partial.exists()

    fresh = tmp_path / "fresh.safetensors"
    assert main([str(fresh) if a == str(out) else a for a in argv] + ["--no-resume"]) == 0
    a, b = load_features(out), load_features(fresh)
    assert a.ids == b.ids and a.labels == b.labels
    np.testing.assert_allclose(a.features, b.features, atol=1e-5)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.timeout(120)  # it used to hang forever
def test_fifo_named_like_an_image_does_not_hang_embed(tmp_path, photos, caplog, tiny_model):
    """Issue 9 item 11."""
    os.mkfifo(photos / "cat" / "bad.jpg")
    out = tmp_path / "f.safetensors"
    rc = main(["embed", "images", str(photos), "--model", tiny_model, "--pretrained",
               "none", "--out", str(out), "--device", "cpu", "--quiet", "--workers", "1"])
    assert rc == 0
    assert "not a regular file (FIFO)" in caplog.text
    assert "cat/bad.jpg" not in load_features(out).ids


@pytest.mark.parametrize(
    "extra, message",
    [(["--batch-size", "0"], "--batch-size must be >= 1"),
     (["--workers", "-1"], "--workers must be >= 0")],
)
def test_bad_runtime_numbers_are_clear_errors(tmp_path, photos, capsys, extra, message):
    rc = main(["embed", "images", str(photos), "--pretrained", "none",
               "--out", str(tmp_path / "o.safetensors"), *extra])
    assert rc != 0 and message in capsys.readouterr().err


def test_out_that_is_a_folder_fails_before_loading_a_model(tmp_path, photos, capsys):
    rc = main(["embed", "images", str(photos), "--model", "No-Such-Model",
               "--pretrained", "none", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc != 0 and "is a folder" in err and "No-Such-Model" not in err
