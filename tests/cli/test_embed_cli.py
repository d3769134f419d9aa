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


# -- kec embed collection (issue 17 items 3 and 5) ----------------------------------------

@pytest.fixture()
def minilm_8(minilm, monkeypatch):
    """The session's MiniLM, batch size 8, returned by the factory the CLI calls; records
    how many texts it encodes."""
    import copy

    enc = copy.copy(minilm)
    enc.batch_size = 8
    enc.encoded = []
    real = enc.encode

    def encode(texts, **kw):
        enc.encoded.append(len(texts))
        return real(texts, **kw)

    enc.encode = encode
    monkeypatch.setattr("kec.encoders.factory.create_text_encoder", lambda *a, **k: enc)
    return enc


def test_collection_lines_are_newline_lines_and_ids_do_not_shift(tmp_path, minilm_8):
    texts = tmp_path / "tickets.txt"
    texts.write_bytes("printer jams\tHW\r\nlogin\u2028fails\x1cagain\tSW\n\nwifi\fdrops\tHW\n"
                      .encode())
    out = tmp_path / "t.safetensors"
    assert main(["embed", "collection", str(texts), "--out", str(out), "--quiet"]) == 0
    fs = load_features(out, kind="items")
    assert fs.ids == ["1:printer jams", "2:login fails again", "4:wifi drops"]
    assert fs.labels == ["HW", "SW", "HW"]


def test_collection_with_a_second_tab_exits_2_naming_the_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("kec.encoders.factory.create_text_encoder",
                        lambda *a, **k: pytest.fail("the encoder was loaded"))
    texts = tmp_path / "c.txt"
    texts.write_text("ok\tA\nprinter\tjams\tHW\n")
    out = tmp_path / "c.safetensors"
    assert main(["embed", "collection", str(texts), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{texts}:2: 3 TAB-separated fields" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("where, message", [
    ("folder", "is a folder"),
    ("under-file", "is a file, not a folder"),
    ("proc", "cannot write"),
])
def test_collection_checks_out_before_loading_the_encoder(tmp_path, capsys, monkeypatch,
                                                          where, message):
    if where == "proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    monkeypatch.setattr("kec.encoders.factory.create_text_encoder",
                        lambda *a, **k: pytest.fail("the encoder was loaded"))
    texts = tmp_path / "c.txt"
    texts.write_text("a\nb\n")
    (tmp_path / "file").write_text("x")
    out = {"folder": tmp_path, "under-file": tmp_path / "file" / "o.safetensors",
           "proc": Path("/proc/kec-cannot-write.safetensors")}[where]
    assert main(["embed", "collection", str(texts), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["--ray-address", "auto"], "--ray-address needs --engine ray"),
    (["--workers", "2"], "--workers is for --engine ray"),
    (["--shard-rows", "0"], "--shard-rows must be >= 1"),
    (["--checkpoint-rows", "-1"], "--checkpoint-rows must be >= 0"),
    (["--engine", "ray", "--workers", "0"], "--workers must be >= 1"),
])
def test_collection_option_mixes_are_refused_before_any_work(tmp_path, capsys, monkeypatch,
                                                             argv, message):
    monkeypatch.setattr("kec.encoders.factory.create_text_encoder",
                        lambda *a, **k: pytest.fail("the encoder was loaded"))
    texts = tmp_path / "c.txt"
    texts.write_text("a\nb\n")
    rc = main(["embed", "collection", str(texts), "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def _chunks(folder: Path) -> int:
    return len(list(folder.glob("chunk-*.safetensors"))) if folder.is_dir() else 0


@pytest.mark.slow  # a second interpreter that loads MiniLM
@pytest.mark.timeout(300)
def test_a_killed_collection_encode_resumes_to_the_uninterrupted_result(
        tmp_path, capsys, minilm_8):
    """kill -9 a real ``kec embed collection`` mid-encode; the same command resumes, encodes
    only the rows that were not saved, and writes what an uninterrupted run writes."""
    import signal
    import subprocess
    import sys
    import time

    texts = tmp_path / "tickets.txt"
    texts.write_text("".join(f"ticket {i}: {'printer jams' if i % 3 else 'login fails'} "
                             f"{'again ' * (i % 4)}\t{'HW' if i % 3 else 'SW'}\n"
                             for i in range(240)))
    out = tmp_path / "t.safetensors"
    partial = tmp_path / "t.safetensors.partial"
    argv = ["embed", "collection", str(texts), "--out", str(out), "--batch-size", "8",
            "--checkpoint-rows", "8", "--device", "cpu", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "kec", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while _chunks(partial) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = _chunks(partial)
    assert saved >= 2 and not out.exists(), proc.stderr.read().decode()[-2000:]

    assert main(argv) == 0  # the same command, in-process (MiniLM loaded once)
    err = capsys.readouterr().err
    assert f"resuming: {saved * 8} item feature(s)" in err
    assert sum(minilm_8.encoded) == 240 - saved * 8 and not partial.exists()

    fresh = tmp_path / "fresh.safetensors"
    assert main([str(fresh) if a == str(out) else a for a in argv]) == 0
    a, b = load_features(out), load_features(fresh)
    assert a.ids == b.ids and a.labels == b.labels and len(a) == 240
    np.testing.assert_array_equal(a.features, b.features)  # bit for bit
