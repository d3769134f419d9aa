"""Feature files: round trip, provenance, clear errors, encoder compatibility."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

import kec
from kec import features as F
from kec.errors import KecError
from kec.features import (
    FeatureSet,
    IncompatibleFeaturesError,
    MissingMetadataError,
    NonFiniteFeaturesError,
    NotAFeatureFileError,
    WrongFeatureKindError,
    check_compatible,
    load_features,
    save_features,
)

ENC = {"kind": "open_clip", "model": "ViT-B-32-quickgelu", "pretrained": "openai", "dim": 4,
       "precision": "fp32", "preprocess": "Compose(...)"}


def _unit(n, d=4, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture()
def image_file(tmp_path):
    path = tmp_path / "img.features.safetensors"
    save_features(path, _unit(3), ids=["cat/0.png", "cat/1.png", "dog/0.png"], kind="image",
                  encoder=ENC, labels=["cat", "cat", "dog"],
                  extra={"skipped": [{"id": "dog/x.png", "error": "bad"}]})
    return path


def _text_set(encoder, d=4, n=2):
    return FeatureSet(features=_unit(n, d).astype(np.float32), ids=["a", "b"][:n],
                      metadata={"kind": "text", "encoder": encoder}, source="nouns.st")


def test_round_trip_keeps_features_ids_labels_and_provenance(image_file):
    fs = load_features(image_file)
    assert fs.features.dtype == np.float32 and fs.features.shape == (3, 4)
    np.testing.assert_allclose(fs.features, _unit(3), atol=1e-7)
    assert fs.ids == ["cat/0.png", "cat/1.png", "dog/0.png"]
    assert fs.labels == ["cat", "cat", "dog"]
    assert fs.kind == "image" and fs.encoder == ENC and fs.dim == 4 and len(fs) == 3
    assert fs.metadata["kec_version"] == kec.__version__
    assert fs.metadata["extra"]["skipped"][0]["id"] == "dog/x.png"
    assert fs.source == str(image_file)


def test_header_values_are_json_strings_readable_by_any_safetensors_reader(image_file):
    with safe_open(str(image_file), framework="np") as fh:
        meta = fh.metadata()
        assert list(fh.keys()) == ["features"]
    assert all(isinstance(v, str) for v in meta.values())
    assert json.loads(meta["format"]) == "kec.features"
    assert json.loads(meta["encoder"])["pretrained"] == "openai"
    assert json.loads(meta["labels"]) == ["cat", "cat", "dog"]


def test_write_is_atomic_and_overwrites(tmp_path, image_file):
    save_features(image_file, _unit(1), ids=["only"], kind="text", encoder=ENC)
    assert load_features(image_file).ids == ["only"]
    assert load_features(image_file).labels is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [image_file.name]  # no temp left


def test_very_long_id_lists_go_into_tensors(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "MAX_HEADER_LIST_BYTES", 10)
    path = tmp_path / "big.safetensors"
    save_features(path, _unit(3), ids=["a" * 20, "b", "c"], kind="image", encoder=ENC,
                  labels=["x", "y", "z"])
    with safe_open(str(path), framework="np") as fh:
        assert "ids" not in fh.metadata()
        assert set(fh.keys()) == {"features", "ids_json", "labels_json"}
    fs = load_features(path)
    assert fs.ids == ["a" * 20, "b", "c"] and fs.labels == ["x", "y", "z"]


def test_nan_is_refused_on_save_and_on_load(tmp_path):
    bad = _unit(3)
    bad[1, 2] = np.nan
    with pytest.raises(NonFiniteFeaturesError, match="1 row"):
        save_features(tmp_path / "x.safetensors", bad, ids=list("abc"), kind="image",
                      encoder=ENC)
    path = tmp_path / "inf.safetensors"
    bad[1, 2] = np.inf
    meta = {"kind": '"image"', "encoder": json.dumps(ENC), "ids": '["a","b","c"]'}
    save_file({"features": bad.astype(np.float32)}, str(path), metadata=meta)
    with pytest.raises(NonFiniteFeaturesError, match=r"first rows: \[1\]"):
        load_features(path)


def test_save_rejects_bad_shapes_and_kinds(tmp_path):
    with pytest.raises(ValueError, match="2-D"):
        save_features(tmp_path / "a", np.zeros(3), ids=list("abc"), kind="image", encoder=ENC)
    with pytest.raises(ValueError, match="3 strings"):
        save_features(tmp_path / "a", _unit(3), ids=["a"], kind="image", encoder=ENC)
    with pytest.raises(ValueError, match="kind"):
        save_features(tmp_path / "a", _unit(3), ids=list("abc"), kind="audio", encoder=ENC)


def test_wrong_file_types_are_clear_errors(tmp_path):
    text = tmp_path / "nouns.txt"
    text.write_text("cat\ndog\n")
    with pytest.raises(NotAFeatureFileError, match="not a safetensors feature file"):
        load_features(text)
    with pytest.raises(NotAFeatureFileError, match="no such feature file"):
        load_features(tmp_path / "missing.safetensors")
    ckpt = tmp_path / "model.safetensors"
    save_file({"weight": np.zeros((2, 2), np.float32)}, str(ckpt))
    with pytest.raises(NotAFeatureFileError, match="not a kec feature file"):
        load_features(ckpt)


def test_missing_or_inconsistent_metadata(tmp_path):
    path = tmp_path / "f.safetensors"
    feats = {"features": _unit(2).astype(np.float32)}
    save_file(feats, str(path))
    with pytest.raises(MissingMetadataError, match="no metadata"):
        load_features(path)
    save_file(feats, str(path), metadata={"kind": '"image"', "ids": '["a","b"]'})
    with pytest.raises(MissingMetadataError, match="encoder"):
        load_features(path)
    save_file(feats, str(path), metadata={"kind": '"image"', "encoder": "{}",
                                          "ids": '["a"]'})
    with pytest.raises(MissingMetadataError, match="'ids' has 1 entries for 2"):
        load_features(path)
    save_file(feats, str(path), metadata={"kind": "image", "encoder": "{}", "ids": "[]"})
    with pytest.raises(MissingMetadataError, match="not JSON"):
        load_features(path)


def test_kind_is_checked_when_asked(image_file):
    with pytest.raises(WrongFeatureKindError, match="holds image features, expected text"):
        load_features(image_file, kind="text")
    assert load_features(image_file, kind="image").kind == "image"


def test_compatible_sets_pass(image_file):
    check_compatible(load_features(image_file), _text_set(dict(ENC, templates={"name": "tac"})))


@pytest.mark.parametrize(
    "change, match",
    [
        ({"model": "ViT-L-14"}, "model 'ViT-B-32-quickgelu' != 'ViT-L-14'"),
        ({"pretrained": None}, "pretrained 'openai' != None"),
        ({"kind": "sentence-transformers"}, "kind"),
    ],
)
def test_a_different_encoder_is_a_clear_error(image_file, change, match):
    with pytest.raises(IncompatibleFeaturesError, match=match) as err:
        check_compatible(load_features(image_file), _text_set(dict(ENC, **change)))
    assert "--like" in str(err.value) and isinstance(err.value, KecError)


def test_a_different_dimension_is_an_error(image_file):
    with pytest.raises(IncompatibleFeaturesError, match="dimension 4 != 8"):
        check_compatible(load_features(image_file), _text_set(ENC, d=8))


def test_checkpoints_compare_by_content_not_path(image_file):
    img = load_features(image_file)
    img.metadata["encoder"] = dict(ENC, pretrained="/a/ckpt.pt", checkpoint_sha256="ab")
    check_compatible(img, _text_set(dict(ENC, pretrained="/b/ckpt.pt", checkpoint_sha256="ab")))
    with pytest.raises(IncompatibleFeaturesError, match="checkpoint contents differ"):
        check_compatible(img, _text_set(dict(ENC, pretrained="/a/ckpt.pt",
                                             checkpoint_sha256="cd")))


def test_swapped_kinds_are_an_error(image_file):
    img = load_features(image_file)
    with pytest.raises(WrongFeatureKindError):
        check_compatible(_text_set(ENC), img)


# -- issue 9 item 10: the header is checked before any tensor is read ---------------------
def _header_file(path, header: dict, data_size: int, sparse: bool = False) -> None:
    """A safetensors file with exactly this header and ``data_size`` bytes of data (a
    sparse hole when ``sparse``: no disk is used)."""
    raw = json.dumps(header).encode("utf-8")
    with open(path, "wb") as fh:
        fh.write(len(raw).to_bytes(8, "little") + raw)
        if sparse:
            fh.truncate(8 + len(raw) + data_size)
        else:
            fh.write(b"\0" * data_size)


def _meta(ids, labels=None, **extra):
    meta = {"kind": '"image"', "encoder": json.dumps(ENC), "ids": json.dumps(ids)}
    if labels is not None:
        meta["labels"] = json.dumps(labels)
    meta.update(extra)
    return meta


def test_a_huge_sparse_file_with_wrong_ids_fails_before_reading(tmp_path, monkeypatch):
    """6 GiB of features (a sparse file: no disk used) whose header is consistent but whose
    ids do not match: refused in milliseconds, without reading or mapping the matrix."""
    n, d = 3 * 2**20, 512  # 6 GiB of float32
    path = tmp_path / "sparse.safetensors"
    _header_file(path, {"__metadata__": _meta(["a", "b"]),
                        "features": {"dtype": "F32", "shape": [n, d],
                                     "data_offsets": [0, n * d * 4]}}, n * d * 4, sparse=True)
    import safetensors

    def no_read(*a, **k):
        raise AssertionError("the tensor data was opened before the header was checked")

    monkeypatch.setattr(safetensors, "safe_open", no_read)
    t0 = time.perf_counter()
    with pytest.raises(MissingMetadataError, match=f"'ids' has 2 entries for {n}"):
        load_features(path)
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("header, data, match", [
    ({"features": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}, 32,
     "ends at byte 64 of a 32-byte data section"),
    ({"features": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 32]}}, 32,
     "needs 64 bytes"),
    ({"features": {"dtype": "X9", "shape": [2, 2], "data_offsets": [0, 16]}}, 16,
     "unknown dtype"),
    ({"features": {"dtype": "F32", "shape": [2, -2], "data_offsets": [0, 16]}}, 16,
     "bad shape"),
    ({"features": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 4]}}, 16,
     "bad data_offsets"),
    ({"features": {"dtype": "I32", "shape": [2, 2], "data_offsets": [0, 16]}}, 16,
     "expected a float type"),
    ({"features": {"dtype": "F32", "shape": [2, 2, 1], "data_offsets": [0, 16]}}, 16,
     "expected 2-D"),
    ({"features": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, 24,
     "8 bytes after the last tensor"),
])
def test_inconsistent_headers_are_refused(tmp_path, header, data, match):
    path = tmp_path / "bad.safetensors"
    _header_file(path, {"__metadata__": _meta(["a", "b"]), **header}, data)
    with pytest.raises(NotAFeatureFileError, match=match):
        load_features(path)


def test_a_header_length_beyond_the_file_is_refused(tmp_path):
    path = tmp_path / "liar.safetensors"
    path.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    with pytest.raises(NotAFeatureFileError, match="header length 1000000000000 does not fit"):
        load_features(path)
    deep = tmp_path / "deep.safetensors"
    raw = b"[" * 100_000 + b"]" * 100_000
    deep.write_bytes(len(raw).to_bytes(8, "little") + raw)
    with pytest.raises(NotAFeatureFileError, match="nested too deeply"):
        load_features(deep)


def test_metadata_n_and_dim_must_match_the_tensor(tmp_path):
    path = tmp_path / "f.safetensors"
    save_file({"features": _unit(2).astype(np.float32)}, str(path),
              metadata=_meta(["a", "b"], n="5"))
    with pytest.raises(MissingMetadataError, match="n=5 but the features tensor has n=2"):
        load_features(path)


# -- issue 9 item 15: ids and labels must be strings ---------------------------------------
@pytest.mark.parametrize("ids, labels, match", [
    (["a", "b"], [None, "cat"], r"labels\[0\] is null"),
    ([["a", "b"], "c"], None, r"ids\[0\] is \[\"a\", \"b\"\]"),
    (["a", {"x": 1}], None, r"ids\[1\] is … \(dict\)"),
    (["a", 3], None, r"ids\[1\] is 3 \(int\)"),
])
def test_non_string_ids_or_labels_are_refused(tmp_path, ids, labels, match):
    path = tmp_path / "f.safetensors"
    save_file({"features": _unit(2).astype(np.float32)}, str(path),
              metadata=_meta(ids, labels))
    with pytest.raises(MissingMetadataError, match=match):
        load_features(path)


def test_non_string_ids_in_the_tensor_layout_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "MAX_HEADER_LIST_BYTES", 1)
    path = tmp_path / "f.safetensors"
    ids_json = np.frombuffer(json.dumps([["a"], "b"]).encode(), dtype=np.uint8)
    meta = _meta(["x"])
    meta.pop("ids")
    save_file({"features": _unit(2).astype(np.float32), "ids_json": ids_json}, str(path),
              metadata=meta)
    with pytest.raises(MissingMetadataError, match=r"ids\[0\]"):
        load_features(path)


def test_save_refuses_null_labels_but_writes_numbers_as_text(tmp_path):
    with pytest.raises(ValueError, match=r"labels\[1\] is NoneType"):
        save_features(tmp_path / "a", _unit(2), ids=["a", "b"], kind="image", encoder=ENC,
                      labels=["cat", None])
    with pytest.raises(ValueError, match=r"ids\[0\] is list"):
        save_features(tmp_path / "a", _unit(2), ids=[["a"], "b"], kind="image", encoder=ENC)
    save_features(tmp_path / "b", _unit(2), ids=["a", "b"], kind="image", encoder=ENC,
                  labels=[3, np.int64(5)])
    assert load_features(tmp_path / "b").labels == ["3", "5"]
