"""The generated dataset: deterministic files, class folders, one factory call."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from kec.datasets import DatasetError, generate_synthetic, load_dataset, synthetic_class_names


def _digest(folder) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.png")):
        h.update(p.relative_to(folder).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def test_generation_is_deterministic_and_reused(tmp_path):
    a = generate_synthetic(tmp_path / "a")
    b = generate_synthetic(tmp_path / "b")
    assert _digest(a) == _digest(b)
    assert len(list(a.rglob("*.png"))) == 24
    before = (a / "red_circle" / "000.png").stat().st_mtime_ns
    assert generate_synthetic(tmp_path / "a") == a  # same parameters: reused
    assert (a / "red_circle" / "000.png").stat().st_mtime_ns == before
    other = generate_synthetic(tmp_path / "a", seed=1)  # other parameters: replaced
    assert _digest(other) != _digest(b)


def test_load_dataset_synthetic(tmp_path):
    ds = load_dataset("synthetic", tmp_path, num_classes=3, per_class=5, size=24)
    assert len(ds) == 15 and ds.class_names == ["red circle", "green square", "blue triangle"]
    assert ds.targets.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert ds.ids[0] == "red_circle/000.png" and ds.has_files
    assert ds.labels[-1] == "blue triangle"
    im = ds.load_image(0)
    assert im.size == (24, 24) and im.mode == "RGB"
    # the shape's colour dominates the non-background pixels of each class
    reds = np.asarray(ds.load_image(0), dtype=int)
    blues = np.asarray(ds.load_image(10), dtype=int)
    assert (reds[..., 0] - reds[..., 2]).max() > 120
    assert (blues[..., 2] - blues[..., 0]).max() > 120
    desc = ds.describe()
    assert desc["name"] == "synthetic" and desc["options"]["num_classes"] == 3
    again = load_dataset(desc["name"], desc["root"], desc["split"], **desc["options"])
    assert again.ids == ds.ids


def test_bad_parameters(tmp_path):
    with pytest.raises(DatasetError):
        synthetic_class_names(99)
    with pytest.raises(DatasetError):
        generate_synthetic(tmp_path, per_class=0)
    with pytest.raises(DatasetError, match="has no split"):
        load_dataset("synthetic", tmp_path, "test")
    with pytest.raises(DatasetError, match="cannot be downloaded"):
        load_dataset("synthetic", tmp_path, download=True)
