"""ImageDataset helpers and embedding a dataset (fake encoder: no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from kec.datasets import DatasetError, ImageDataset, concat_datasets, embed_dataset
from kec.datasets.embed import save_dataset_features
from kec.features import load_features


def _memory(n=6, name="toy", split="test"):
    from PIL import Image

    images = [Image.new("RGB", (4, 4), (i * 10, 0, 0)) for i in range(n)]
    return ImageDataset(name=name, split=split, class_names=["a", "b"],
                        targets=[i % 2 for i in range(n)],
                        ids=[f"{name}/{split}/{i}" for i in range(n)],
                        loader=lambda i: images[i], root="/nowhere")


class FakeEncoder:
    dim = 3
    batch_size = 4

    def encode(self, images, progress=False):
        return np.asarray([[im.getpixel((0, 0))[0], 1.0, 0.0] for im in images], np.float32)

    def encode_files(self, paths, progress=False):
        ok = [i for i, p in enumerate(paths) if p.suffix == ".png"]
        bad = [(i, "UnidentifiedImageError: bad") for i, p in enumerate(paths) if i not in ok]
        return np.ones((len(ok), 3), np.float32), ok, bad

    def describe(self):
        return {"kind": "fake", "model": "fake", "pretrained": None, "dim": 3}


def test_validation():
    with pytest.raises(DatasetError, match="targets outside"):
        ImageDataset("x", "s", ["a"], [0, 1], ["i", "j"], loader=lambda i: None)
    with pytest.raises(DatasetError, match="ids for"):
        ImageDataset("x", "s", ["a"], [0], ["i", "j"], loader=lambda i: None)
    with pytest.raises(DatasetError, match="paths or an image loader"):
        ImageDataset("x", "s", ["a"], [0], ["i"])


def test_subset_limit_concat_and_lookup():
    ds = _memory()
    assert ds.index_of("toy/test/4") == 4
    sub = ds.subset([5, 1])
    assert sub.ids == ["toy/test/5", "toy/test/1"] and sub.load_image(0).getpixel((0, 0))[0] == 50
    lim = ds.limit_per_class(2, seed=3)
    assert np.bincount(lim.targets).tolist() == [2, 2]
    assert lim.ids == sorted(lim.ids, key=ds.index_of)  # original order kept
    assert lim.ids == ds.limit_per_class(2, seed=3).ids  # deterministic
    both = concat_datasets([ds, _memory(split="train")], "test+train")
    assert len(both) == 12 and both.ids[6] == "toy/train/0"
    assert both.load_image(7).getpixel((0, 0))[0] == 10
    with pytest.raises(DatasetError):
        ds.limit_per_class(0)


def test_embed_in_memory_and_files(tmp_path):
    feats, kept, skipped = embed_dataset(_memory(), FakeEncoder())
    assert feats.shape == (6, 3) and kept == list(range(6)) and not skipped
    assert feats[:, 0].tolist() == [0, 10, 20, 30, 40, 50]
    from PIL import Image

    paths = [tmp_path / "a.png", tmp_path / "b.jpg"]
    Image.new("RGB", (4, 4)).save(paths[0])
    paths[1].write_bytes(b"x")
    ds = ImageDataset("files", "all", ["a", "b"], [0, 1], ["a.png", "b.jpg"], paths=paths,
                      root=str(tmp_path))
    out = save_dataset_features(tmp_path / "f.safetensors", ds, FakeEncoder())
    fs = load_features(out, kind="image")
    assert fs.ids == ["a.png"] and fs.labels == ["a"]
    extra = fs.metadata["extra"]
    assert extra["dataset"]["name"] == "files" and extra["class_names"] == ["a", "b"]
    assert extra["skipped"][0]["id"] == "b.jpg"
