"""torchvision-backed datasets, with torchvision's classes replaced by in-memory fakes.

Nothing is downloaded: the fakes record the ``download`` flag they were given, and the
one test that touches a real torchvision class checks that a missing dataset fails
with a clear message instead of downloading.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets as tvd

from kec.datasets import DatasetError, cifar100_fine_to_coarse, load_dataset

CALLS: list[dict] = []


class FakeCIFAR100:
    """Mimics torchvision.datasets.CIFAR100: ``data``, ``targets``, ``classes``, ``ds[i]``."""

    def __init__(self, root, train=True, download=False, **kw):
        CALLS.append({"cls": type(self).__name__, "root": root, "train": train,
                      "download": download})
        fine, _, _ = cifar100_fine_to_coarse()
        self.classes = list(fine)
        n = 6 if train else 4
        self.targets = [0, 1, 99, 55, 30, 2][:n]  # apple, aquarium_fish, worm, otter, ...
        self.data = np.stack([np.full((32, 32, 3), 40 * i, np.uint8) for i in range(n)])

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        from PIL import Image

        return Image.fromarray(self.data[i]), self.targets[i]


class FakeDTD:
    """Mimics torchvision.datasets.DTD: files in ``_image_files``, labels in ``_labels``."""

    def __init__(self, root, split="train", download=False, **kw):
        CALLS.append({"cls": "FakeDTD", "split": split, "download": download})
        base = Path(root) / "dtd" / "images"
        self.classes = ["banded", "blotchy"]
        self._image_files = [base / "banded" / f"{split}_0.jpg",
                             base / "blotchy" / f"{split}_1.jpg"]
        self._labels = [0, 1]
        for p in self._image_files:
            p.parent.mkdir(parents=True, exist_ok=True)
            from PIL import Image

            Image.new("RGB", (8, 8), (200, 10, 10)).save(p)

    def __len__(self):
        return 2


class FakeMNIST:
    def __init__(self, root, train=True, download=False, **kw):
        import torch

        self.classes = ["0 - zero", "1 - one"]
        self.targets = torch.tensor([1, 0, 1])
        self.data = torch.zeros((3, 28, 28), dtype=torch.uint8)

    def __getitem__(self, i):
        from PIL import Image

        return Image.fromarray(self.data[i].numpy(), mode="L"), int(self.targets[i])


@pytest.fixture(autouse=True)
def fakes(monkeypatch):
    CALLS.clear()
    monkeypatch.setattr(tvd, "CIFAR100", FakeCIFAR100)
    monkeypatch.setattr(tvd, "DTD", FakeDTD)
    monkeypatch.setattr(tvd, "MNIST", FakeMNIST)


def test_cifar20_maps_fine_labels_to_superclasses(tmp_path):
    ds = load_dataset("cifar20", tmp_path)
    (call,) = CALLS
    assert call == {"cls": "FakeCIFAR100", "root": str(tmp_path), "train": False,
                    "download": False}
    assert ds.split == "test" and ds.num_classes == 20 and len(ds) == 4
    assert ds.labels == ["fruit and vegetables", "fish", "non-insect invertebrates",
                         "aquatic mammals"]
    assert not ds.has_files and ds.ids[0] == "cifar20/test/0"
    assert ds.load_image(1).mode == "RGB"


def test_cifar100_keeps_fine_labels_and_readable_names(tmp_path):
    ds = load_dataset("cifar-100", tmp_path, "train", download=True)
    assert CALLS[0]["download"] is True and CALLS[0]["train"] is True
    assert ds.class_names[1] == "aquarium fish" and ds.labels[:2] == ["apple", "aquarium fish"]


def test_split_concatenation_and_per_class_limit(tmp_path):
    ds = load_dataset("cifar100", tmp_path, "train+test")
    assert len(ds) == 10 and ds.split == "train+test"
    assert ds.ids[6] == "cifar100/test/0"
    assert np.asarray(ds.load_image(7)).mean() == pytest.approx(40)  # test image 1
    small = load_dataset("cifar100", tmp_path, "train+test", limit_per_class=1)
    assert sorted(small.targets.tolist()) == [0, 1, 2, 30, 55, 99]
    assert small.describe()["limit_per_class"] == {"n": 1, "seed": 0}


def test_dtd_all_is_three_file_splits(tmp_path):
    ds = load_dataset("dtd", tmp_path)
    assert [c["split"] for c in CALLS] == ["train", "val", "test"]
    assert ds.split == "all" and len(ds) == 6 and ds.has_files
    assert ds.ids[:2] == ["dtd/images/banded/train_0.jpg", "dtd/images/blotchy/train_1.jpg"]
    assert ds.load_image(5).size == (8, 8)


def test_registry_class_names_override(tmp_path):
    ds = load_dataset("mnist", tmp_path)
    assert ds.class_names[:2] == ["zero", "one"] and ds.labels == ["one", "zero", "one"]
    assert ds.load_image(0).mode == "RGB"


def test_missing_dataset_is_a_clear_error_and_nothing_is_downloaded(tmp_path, monkeypatch):
    monkeypatch.undo()  # the real torchvision class
    with pytest.raises(DatasetError, match="pass --download") as info:
        load_dataset("cifar10", tmp_path / "nothing")
    assert "cifar-10-batches-py" in str(info.value)
    assert not any((tmp_path / "nothing").rglob("*.tar.gz"))


def test_unknown_split(tmp_path):
    with pytest.raises(DatasetError, match="choose from train, test"):
        load_dataset("cifar10", tmp_path, "validation")
