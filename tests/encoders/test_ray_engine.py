"""``kec embed ... --engine ray``: Ray Data with 2 encoder actors gives the features of the
single-process path, row for row, for images (files and WebDataset shards) and texts."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from kec.cli.main import main
from kec.features import load_features

pytestmark = pytest.mark.slow  # actors load real (random-weight) models

MODEL = "ViT-S-32"  # a built-in open_clip config: the actors' processes know it too


def _png(path, color, fmt="PNG"):
    from PIL import Image

    if hasattr(path, "parent"):
        path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), color).save(path, format=fmt)


@pytest.fixture()
def one_thread():
    """The single-process run with the torch threads of one of the 2 actors (2 cores / 2):
    a matrix product's rounding depends on the thread count, so only then are the features
    comparable bit for bit (with 2 threads they differ by up to 2e-7)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _assert_same(local, sharded, n):
    a, b = load_features(local), load_features(sharded)
    assert len(b) == n and b.metadata["extra"]["engine"] == "ray"
    assert (b.ids, b.labels, b.encoder) == (a.ids, a.labels, a.encoder)
    np.testing.assert_array_equal(b.features, a.features)  # bit for bit


def test_images_from_a_folder_on_two_actors_equal_one_process(tmp_path, ray_local, capsys,
                                                               one_thread):
    root = tmp_path / "photos"
    for i in range(9):
        _png(root / ("cat" if i % 2 else "dog") / f"{i}.png", (25 * i, 200 - 20 * i, 90))
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    common = [str(root), "--model", MODEL, "--pretrained", "none", "--device", "cpu",
              "--batch-size", "2", "--quiet"]
    assert main(["embed", "images", *common, "--out", str(tmp_path / "one.safetensors"),
                 "--workers", "0"]) == 0
    assert main(["embed", "images", *common, "--out", str(tmp_path / "set"), "--engine", "ray",
                 "--workers", "2", "--shard-rows", "4"]) == 0
    out = capsys.readouterr().out
    assert "wrote 9 image features (d=384)" in out and "(3 shard(s), 2 Ray worker(s))" in out
    assert "skipped dog/broken.jpg: UnidentifiedImageError" in out
    _assert_same(tmp_path / "one.safetensors", tmp_path / "set", 9)
    skipped = load_features(tmp_path / "set").metadata["extra"]["skipped"]
    assert [s["id"] for s in skipped] == ["dog/broken.jpg"]


def test_webdataset_shards_on_two_actors_equal_one_process(tmp_path, ray_local, capsys,
                                                           one_thread):
    import io
    import tarfile

    (tmp_path / "wds").mkdir()
    for s in range(3):
        with tarfile.open(tmp_path / "wds" / f"s-{s:03d}.tar", "w") as tf:
            for i in range(3):
                img = io.BytesIO()
                _png(img, (60 * s, 70 * i, 120), "JPEG" if i % 2 else "PNG")
                for name, data in ((f"{s}{i}.{'jpg' if i % 2 else 'png'}", img.getvalue()),
                                   (f"{s}{i}.txt", f"label {i % 2}".encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
    common = [str(tmp_path / "wds" / "s-{000..002}.tar"), "--model", MODEL, "--pretrained",
              "none", "--device", "cpu", "--batch-size", "4", "--quiet"]
    assert main(["embed", "images", *common, "--out", str(tmp_path / "one.safetensors"),
                 "--workers", "1"]) == 0
    assert main(["embed", "images", *common, "--out", str(tmp_path / "set"), "--engine", "ray",
                 "--workers", "2"]) == 0
    _assert_same(tmp_path / "one.safetensors", tmp_path / "set", 9)
    sharded = load_features(tmp_path / "set")
    assert sharded.ids[:2] == ["s-000.tar/00", "s-000.tar/01"]
    assert sharded.labels[:3] == ["label 0", "label 1", "label 0"]
    assert sharded.metadata["extra"]["source"]["origin"] == "webdataset"


def test_a_text_collection_on_two_actors_equals_one_process(tmp_path, ray_local, capsys,
                                                            one_thread):
    texts = tmp_path / "tickets.txt"
    texts.write_text("".join(f"ticket {i}: {'printer jams' if i % 3 else 'login fails'}"
                             f"{' again' * (i % 4)}\t{'HW' if i % 3 else 'SW'}\n"
                             for i in range(40)))
    common = [str(texts), "--batch-size", "8", "--device", "cpu", "--quiet"]
    assert main(["embed", "collection", *common, "--out", str(tmp_path / "one.safetensors"),
                 "--checkpoint-rows", "0"]) == 0
    assert main(["embed", "collection", *common, "--out", str(tmp_path / "set"), "--engine",
                 "ray", "--workers", "2", "--shard-rows", "16"]) == 0
    assert "wrote 40 item features (d=384)" in capsys.readouterr().out
    _assert_same(tmp_path / "one.safetensors", tmp_path / "set", 40)
    index = json.loads((tmp_path / "set" / "index.json").read_text())
    assert [s["rows"] for s in index["shards"]] == [16, 16, 8]
    assert index["kind"] == "items" and index["labelled"] is True


def test_without_ray_the_engine_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    texts = tmp_path / "t.txt"
    texts.write_text("a\nb\n")
    rc = main(["embed", "collection", str(texts), "--out", str(tmp_path / "set"),
               "--engine", "ray"])
    err = capsys.readouterr().err
    assert rc == 2 and "pip install 'kec[ray]'" in err and "Traceback" not in err
    assert not (tmp_path / "set").exists()


def test_an_error_in_a_ray_task_surfaces_as_its_one_line_error(tmp_path, ray_local):
    """A shard that fails in the task reading it (here: gzip, which the driver did not
    list first) ends the run with kec's own error, and no output folder."""
    import tarfile

    from kec.encoders.images import ImageSourceError
    from kec.encoders.ray_engine import embed_images_ray

    _png(tmp_path / "a.png", (1, 2, 3))
    with tarfile.open(tmp_path / "s.tar", "w:gz") as tf:
        tf.add(tmp_path / "a.png", arcname="k.png")
    with pytest.raises(ImageSourceError, match="not an uncompressed tar"):
        embed_images_ray(([tmp_path / "s.tar"], None), tmp_path / "set", model=MODEL,
                         pretrained=None, device="cpu", workers=1, quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "s.tar"]
