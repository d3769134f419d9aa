"""Sharded feature sets: read back equal to the unsharded file, lazily, and never mixed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kec.errors import OutputPathError
from kec.feature_shards import (
    FORMAT,
    ShardedFeatureSet,
    ShardedSetError,
    ShardWriter,
    check_shard_folder,
    load_feature_shards,
    save_feature_shards,
    shard_name,
)
from kec.features import (
    MissingMetadataError,
    NonFiniteFeaturesError,
    NotAFeatureFileError,
    WrongFeatureKindError,
    feature_set_sha256,
    load_features,
    save_features,
)

ENCODER = {"kind": "open_clip", "model": "ViT-S-32", "pretrained": None, "dim": 8}


def _data(n: int, d: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    ids = [f"img/{i:05d}.jpg" for i in range(n)]
    labels = [f"class {i % 3}" for i in range(n)]
    return x, ids, labels


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 40), shard_rows=st.integers(1, 50), a=st.integers(0, 45),
       b=st.integers(0, 45))
def test_a_sharded_set_reads_back_as_the_unsharded_file(tmp_path_factory, n, shard_rows,
                                                         a, b):
    x, ids, labels = _data(n)
    tmp = tmp_path_factory.mktemp("set")
    save_features(tmp / "one.safetensors", x, ids=ids, kind="image", encoder=ENCODER,
                  labels=labels, extra={"source": "s"})
    save_feature_shards(tmp / "set", x, ids=ids, kind="image", encoder=ENCODER,
                        labels=labels, extra={"source": "s"}, shard_rows=shard_rows)
    one, sharded = load_features(tmp / "one.safetensors"), load_features(tmp / "set")
    assert isinstance(sharded, ShardedFeatureSet)
    assert len(sharded.shards) == -(-n // shard_rows)
    assert (len(sharded), sharded.dim, sharded.kind) == (n, 8, "image")
    assert sharded.ids == one.ids and sharded.labels == one.labels
    assert sharded.encoder == one.encoder and sharded.metadata["extra"] == {"source": "s"}
    np.testing.assert_array_equal(sharded.rows(a, b), one.features[a:b])
    np.testing.assert_array_equal(sharded.features, one.features)


def test_nothing_is_read_before_rows_are_asked_for(tmp_path, monkeypatch):
    x, ids, labels = _data(10)
    save_feature_shards(tmp_path / "s", x, ids=ids, kind="image", encoder=ENCODER,
                        labels=labels, shard_rows=4)
    fs = load_feature_shards(tmp_path / "s")
    read: list[int] = []
    real = ShardedFeatureSet.shard_array
    monkeypatch.setattr(ShardedFeatureSet, "shard_array",
                        lambda self, i: (read.append(i), real(self, i))[1])
    assert (len(fs), fs.dim, fs.ids[9], fs.labels[0]) == (10, 8, "img/00009.jpg", "class 0")
    assert read == []
    np.testing.assert_array_equal(fs.rows(5, 7), x[5:7])
    assert read == [1]  # rows 5-6 live in shard 1 only
    np.testing.assert_array_equal([r for _, s in fs.iter_shards() for r in s], x)


def test_rows_are_memory_mapped_and_never_written_back(tmp_path):
    x, ids, _ = _data(6)
    save_feature_shards(tmp_path / "s", x, ids=ids, kind="image", encoder=ENCODER)
    fs = load_features(tmp_path / "s")
    feats = fs.features
    assert isinstance(feats.base, np.memmap) or isinstance(feats.base.base, np.memmap)
    feats[0, 0] = 123.0  # copy-on-write: this process only
    np.testing.assert_array_equal(load_features(tmp_path / "s").features, x)
    assert fs.labels is None


def test_labels_are_kept_only_when_every_row_has_one(tmp_path):
    x, ids, labels = _data(5)
    with ShardWriter(tmp_path / "s", kind="image", encoder=ENCODER, shard_rows=2) as w:
        w.add(x[:3], ids[:3], labels[:3])
        w.add(x[3:], ids[3:], [None, "class 1"])
        w.close()
    fs = load_features(tmp_path / "s")
    assert fs.labels is None and fs.ids == ids
    assert json.loads((tmp_path / "s" / "index.json").read_text())["labelled"] is False


def test_the_index_records_encoder_once_and_each_shard(tmp_path):
    x, ids, labels = _data(5)
    save_feature_shards(tmp_path / "s", x, ids=ids, kind="items", encoder=ENCODER,
                        labels=labels, shard_rows=2)
    index = json.loads((tmp_path / "s" / "index.json").read_text())
    assert index["format"] == FORMAT and index["encoder"] == ENCODER
    assert [s["rows"] for s in index["shards"]] == [2, 2, 1]
    assert index["n"] == 5 and index["dim"] == 8 and index["kind"] == "items"
    assert sorted(os.listdir(tmp_path / "s")) == ["index.json", *map(shard_name, range(3))]
    from safetensors import safe_open

    with safe_open(str(tmp_path / "s" / shard_name(0)), framework="np") as fh:
        assert "encoder" not in fh.metadata()
    assert feature_set_sha256(tmp_path / "s") == feature_set_sha256(tmp_path / "s/index.json")
    assert load_features(tmp_path / "s" / "index.json", kind="image").kind == "items"


def _saved(tmp_path: Path, name: str = "s", n: int = 6, seed: int = 0) -> Path:
    x, ids, labels = _data(n, seed=seed)
    return save_feature_shards(tmp_path / name, x, ids=ids, kind="image", encoder=ENCODER,
                               labels=labels, shard_rows=2)


def _edit_index(folder: Path, **changes) -> None:
    index = json.loads((folder / "index.json").read_text())
    index.update(changes)
    (folder / "index.json").write_text(json.dumps(index))


@pytest.mark.parametrize("damage, error, match", [
    (lambda f: (f / "index.json").unlink(), NotAFeatureFileError, "without index.json"),
    (lambda f: (f / "index.json").write_text("{"), NotAFeatureFileError, "not JSON"),
    (lambda f: _edit_index(f, format="other"), NotAFeatureFileError, "not the index"),
    (lambda f: _edit_index(f, format_version=9), NotAFeatureFileError, "format version 9"),
    (lambda f: _edit_index(f, n=7), MissingMetadataError, "hold 6 rows but 'n' is 7"),
    (lambda f: _edit_index(f, shards=[{"file": "../x", "rows": 6}]), MissingMetadataError,
     "file name in the folder"),
    (lambda f: (f / shard_name(1)).unlink(), NotAFeatureFileError, "missing"),
    (lambda f: (f / shard_name(1)).write_bytes(b"\x00" * 12), NotAFeatureFileError,
     "not a safetensors"),
    (lambda f: _edit_index(f, kind="text"), WrongFeatureKindError, "expected image"),
])
def test_a_damaged_set_is_a_clear_error(tmp_path, damage, error, match):
    folder = _saved(tmp_path)
    damage(folder)
    with pytest.raises(error, match=match):
        load_features(folder, kind="image")


def test_a_shard_copied_in_from_another_set_is_refused(tmp_path):
    a, b = _saved(tmp_path, "a"), _saved(tmp_path, "b", seed=1)
    (a / shard_name(1)).write_bytes((b / shard_name(1)).read_bytes())
    with pytest.raises(ShardedSetError, match="not a shard of this set"):
        load_features(a)


def test_nan_in_a_shard_is_refused_when_its_rows_are_read(tmp_path):
    x, ids, _ = _data(4)
    folder = save_feature_shards(tmp_path / "s", x, ids=ids, kind="image", encoder=ENCODER,
                                 shard_rows=2)
    raw = bytearray((folder / shard_name(1)).read_bytes())
    raw[-4:] = np.float32(np.nan).tobytes()
    (folder / shard_name(1)).write_bytes(bytes(raw))
    fs = load_features(folder)
    np.testing.assert_array_equal(fs.rows(0, 2), x[:2])
    with pytest.raises(NonFiniteFeaturesError, match=shard_name(1)):
        fs.features  # noqa: B018


def test_a_new_set_replaces_the_old_one_whole(tmp_path):
    folder = _saved(tmp_path, n=6)
    x, ids, _ = _data(3, seed=5)
    save_feature_shards(folder, x, ids=ids, kind="image", encoder=ENCODER, shard_rows=10)
    assert sorted(os.listdir(folder)) == ["index.json", shard_name(0)]
    assert sorted(os.listdir(tmp_path)) == ["s"]  # nothing left beside it
    np.testing.assert_array_equal(load_features(folder).features, x)


def test_a_failed_write_leaves_the_old_set_and_no_debris(tmp_path):
    folder = _saved(tmp_path, n=6)
    before = load_features(folder).features.copy()
    x, ids, _ = _data(5)
    with pytest.raises(RuntimeError, match="boom"), \
            ShardWriter(folder, kind="image", encoder=ENCODER, shard_rows=2) as w:
        w.add(x, ids)  # two shards are written to the hidden folder
        raise RuntimeError("boom")
    assert sorted(os.listdir(tmp_path)) == ["s"]
    np.testing.assert_array_equal(load_features(folder).features, before)


def test_files_respect_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        folder = _saved(tmp_path)
    finally:
        os.umask(old)
    assert (folder / "index.json").stat().st_mode & 0o777 == 0o640
    assert (folder / shard_name(0)).stat().st_mode & 0o777 == 0o640


def test_a_folder_holding_other_files_is_refused_before_any_work(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    with pytest.raises(OutputPathError, match="holding files that are not"):
        check_shard_folder(tmp_path / "photos")
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputPathError, match="existing file"):
        check_shard_folder(tmp_path / "f")
    with pytest.raises(ShardedSetError, match="no feature rows"), \
            ShardWriter(tmp_path / "empty", kind="image", encoder=ENCODER) as w:
        w.close()
    assert not (tmp_path / "empty").exists()


def test_kec_cluster_reads_a_sharded_set_like_the_file(tmp_path, capsys):
    from kec.cli.main import main

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8))
    x = np.concatenate([c + 0.05 * rng.normal(size=(20, 8)) for c in centres])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"{i}.jpg" for i in range(60)]
    labels = [f"c{i // 20}" for i in range(60)]
    save_features(tmp_path / "one.safetensors", x, ids=ids, kind="image", encoder=ENCODER,
                  labels=labels)
    save_feature_shards(tmp_path / "set", x, ids=ids, kind="image", encoder=ENCODER,
                        labels=labels, shard_rows=7)
    for name in ("one.safetensors", "set"):
        assert main(["cluster", str(tmp_path / name), "--k", "3", "--method", "kmeans",
                     "--seed", "0", "--out", str(tmp_path / f"r-{name}")]) == 0
    assert "ACC 100.0" in capsys.readouterr().out
    one = (tmp_path / "r-one.safetensors" / "assignments.csv").read_text()
    assert (tmp_path / "r-set" / "assignments.csv").read_text() == one
    summary = json.loads((tmp_path / "r-set" / "summary.json").read_text())
    assert summary["inputs"]["features"]["sha256"] == feature_set_sha256(tmp_path / "set")
