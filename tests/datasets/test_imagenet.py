"""ImageNet-1K and its subsets from a local class-folder tree (tiny generated JPEGs)."""

from __future__ import annotations

import logging

import pytest

from kec.datasets import DatasetError, class_list, load_dataset

TEN = [c["wnid"] for c in class_list("imagenet10.json")["classes"]]


def _tree(root, wnids, per_class=2, split="train"):
    from PIL import Image

    for k, wnid in enumerate(wnids):
        d = root / split / wnid
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", (10, 10), (k * 20 % 255, 50, 90)).save(d / f"{wnid}_{i}.JPEG")
    return root


def test_imagenet10_from_train_folders(tmp_path):
    root = _tree(tmp_path / "imagenet", [*TEN, "n01440764"])  # an extra class is ignored
    ds = load_dataset("imagenet10", root)
    assert ds.split == "train" and len(ds) == 20 and ds.num_classes == 10
    assert ds.class_names[0] == "king penguin"
    assert ds.ids[0] == "train/n02056570/n02056570_0.JPEG"
    assert ds.targets.tolist() == [k for k in range(10) for _ in range(2)]
    assert ds.info["wnids"] == TEN


def test_subset_with_a_missing_class_fails(tmp_path):
    root = _tree(tmp_path / "imagenet", TEN[:9])
    with pytest.raises(DatasetError, match=r"1 of 10 class folders missing.*n07747607"):
        load_dataset("imagenet10", root)


def test_imagenet1k_partial_copy_warns_and_keeps_standard_indices(tmp_path, caplog):
    root = _tree(tmp_path / "in1k", ["n01440764", "n15075141"], split="val")
    with caplog.at_level(logging.WARNING, logger="kec.datasets"):
        ds = load_dataset("imagenet-1k", root)
    assert "998 of 1000 class folders missing" in caplog.text
    assert ds.split == "val" and ds.num_classes == 1000
    assert ds.targets.tolist() == [0, 0, 999, 999]
    assert ds.labels[0] == "tench"


def test_root_may_be_the_split_folder(tmp_path):
    root = _tree(tmp_path / "imagenet", TEN)
    ds = load_dataset("imagenet10", root / "train")
    assert len(ds) == 20 and ds.ids[0] == "n02056570/n02056570_0.JPEG"


def test_no_imagenet_folder(tmp_path):
    with pytest.raises(DatasetError, match="no ImageNet 'train' folder"):
        load_dataset("imagenet-dogs", tmp_path)
    with pytest.raises(DatasetError, match="cannot be downloaded"):
        load_dataset("imagenet", tmp_path, download=True)
