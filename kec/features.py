"""Feature files: float32 matrices in safetensors with JSON provenance in the header.

A kec feature file holds one tensor, ``features`` (``(n, d)`` float32, one row per image
or text), and string metadata whose values are JSON: ``format`` (``"kec.features"``),
``format_version``, ``kind`` (``"image"`` or ``"text"``), ``encoder`` (the encoder's
``describe()``: model, pretrained tag, preprocessing or template set, ...), ``ids``
(image paths or the texts), ``labels`` (or ``null``), ``kec_version`` and ``extra``.

Very long id or label lists (over :data:`MAX_HEADER_LIST_BYTES` of JSON) go into uint8
tensors ``ids_json`` / ``labels_json`` instead, because safetensors caps its header
size; :func:`load_features` reads both layouts.

:func:`load_features` trusts nothing it has not checked: it reads the safetensors header
itself and checks the header length, every tensor's dtype, shape and byte range against
the file size, and the id and label lists (strings, one per row) **before** it reads the
feature matrix, so a corrupt or hostile file fails in milliseconds with a clear message
instead of allocating what its header claims.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kec._io import atomic_write_bytes
from kec.errors import KecError

logger = logging.getLogger(__name__)

FORMAT = "kec.features"
FORMAT_VERSION = 1
KINDS = ("image", "text", "items")
#: kinds that can be clustered: image features, or a text collection's item features
ITEM_KINDS = ("image", "items")
FEATURES_KEY = "features"
REQUIRED_METADATA = ("kind", "encoder")
MAX_HEADER_LIST_BYTES = 32 * 1024 * 1024
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit
MAX_LIST_TENSOR_BYTES = 2 * 1024 * 1024 * 1024
FEATURE_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
#: the index file of a sharded feature set (a folder; see :mod:`kec.feature_shards`)
SHARD_INDEX = "index.json"


class FeatureFileError(KecError):
    """A feature file cannot be used."""


class NotAFeatureFileError(FeatureFileError):
    """The file is not a safetensors file, or not one written by kec."""


class WrongFeatureKindError(FeatureFileError):
    """Image features were given where text features were expected, or the reverse."""


class MissingMetadataError(FeatureFileError):
    """A feature file lacks metadata kec needs (kind, encoder, ids)."""


class NonFiniteFeaturesError(FeatureFileError):
    """Features contain NaN or infinite values."""


class IncompatibleFeaturesError(FeatureFileError):
    """Image and text features do not come from the same encoder, or differ in dimension."""


@dataclass
class FeatureSet:
    """Features with their ids, optional labels and provenance.

    Attributes
    ----------
    features : numpy.ndarray
        ``(n, d)`` float32.
    ids : list of str
        One per row: image path/id, or the text itself.
    labels : list of str or None
        Ground-truth labels, one per row, when known.
    metadata : dict
        Decoded header: ``kind``, ``encoder`` (dict), ``kec_version``, ``extra``, ...
    source : str or None
        The file it was loaded from.
    """

    features: np.ndarray
    ids: list[str]
    labels: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    @property
    def kind(self) -> str:
        """``metadata["kind"]``: ``"image"``, ``"text"`` or ``"items"``."""
        return str(self.metadata.get("kind"))

    @property
    def noun(self) -> str:
        """How messages call the rows: ``"items"`` (a text collection) or ``"images"``."""
        return kind_noun(self.kind)

    @property
    def encoder(self) -> dict[str, Any]:
        """A copy of ``metadata["encoder"]``, the encoder's description (``{}`` if none)."""
        return dict(self.metadata.get("encoder") or {})

    @property
    def dim(self) -> int:
        """Feature dimension ``d``."""
        return int(self.features.shape[1])

    def __len__(self) -> int:
        return int(self.features.shape[0])


def _check_finite(features: np.ndarray, where: str) -> None:
    finite = np.isfinite(features)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        raise NonFiniteFeaturesError(
            f"{where}: {len(bad_rows)} row(s) contain NaN or infinite values "
            f"(first rows: {bad_rows[:5].tolist()})"
        )


def _check_strings(values: Sequence[Any], name: str, n: int) -> list[str]:
    """``values`` as ``n`` strings; numbers are written as text, anything else (``None``,
    lists, objects) is refused."""
    if isinstance(values, str) or len(values) != n:
        raise ValueError(f"{name} must be a sequence of {n} strings (one per row)")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            out.append(str(v))
        else:
            raise ValueError(f"{name}[{i}] is {type(v).__name__}, not a string")
    return out


def safetensors_bytes(tensors: dict[str, np.ndarray], meta: Mapping[str, Any],
                      ids: list[str], labels: list[str] | None) -> bytes:
    """A safetensors file: ``tensors`` plus ``meta`` as JSON strings, with the id and label
    lists in the header, or in uint8 tensors ``ids_json`` / ``labels_json`` when their
    JSON is longer than :data:`MAX_HEADER_LIST_BYTES`."""
    from safetensors.numpy import save

    tensors, meta = dict(tensors), dict(meta)
    for name, values in (("ids", ids), ("labels", labels)):
        text = json.dumps(values, ensure_ascii=False)
        if len(text) > MAX_HEADER_LIST_BYTES:
            logger.info("%s list is %d bytes of JSON: stored as tensor %s_json", name,
                        len(text), name)
            tensors[f"{name}_json"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        else:
            meta[name] = values
    header = {k: json.dumps(v, ensure_ascii=False, sort_keys=True) for k, v in meta.items()}
    return save(tensors, metadata=header)


def save_features(
    path: str | os.PathLike[str],
    features: np.ndarray,
    *,
    ids: Sequence[str],
    kind: str,
    encoder: Mapping[str, Any],
    labels: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a feature file atomically (temporary file in the same folder + ``os.replace``).

    Parameters
    ----------
    path : path-like
        Destination, conventionally ``*.features.safetensors``.
    features : numpy.ndarray
        ``(n, d)``; stored as float32.
    ids : sequence of str
        One per row.
    kind : {"image", "text", "items"}
        What the rows are.
    encoder : mapping
        The encoder's ``describe()`` (model, pretrained, dim, preprocessing/templates).
    labels : sequence of str, optional
        Ground-truth labels, one per row.
    extra : mapping, optional
        Any JSON-serialisable provenance (skipped files, source folder, ...).

    Raises
    ------
    NonFiniteFeaturesError
        ``features`` contain NaN or inf.
    ValueError
        Bad shapes, lengths or kind.
    """
    from kec._version import __version__

    feats = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
    if feats.ndim != 2:
        raise ValueError(f"features must be 2-D (n, d), got shape {feats.shape}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    n = feats.shape[0]
    ids_list = _check_strings(ids, "ids", n)
    labels_list = _check_strings(labels, "labels", n) if labels is not None else None
    _check_finite(feats, f"features for {path}")

    tensors: dict[str, np.ndarray] = {FEATURES_KEY: feats}
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "encoder": dict(encoder),
        "kec_version": __version__,
        "n": n,
        "dim": int(feats.shape[1]),
        "extra": dict(extra or {}),
    }
    atomic_write_bytes(path, safetensors_bytes(tensors, meta, ids_list, labels_list))
    logger.info("wrote %d %s features (d=%d) to %s", n, kind, feats.shape[1], path)
    return Path(path)


def _decode_header(path: Path, raw: Mapping[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError, RecursionError) as exc:
            raise MissingMetadataError(
                f"{path}: metadata {key!r} is not JSON ({type(exc).__name__}); was this file "
                "written by kec?"
            ) from None
    return meta


def read_header(path: str | os.PathLike[str]) -> tuple[dict[str, dict[str, Any]],
                                                       dict[str, str], int]:
    """Read and check a safetensors header without reading any tensor.

    Returns
    -------
    tensors : dict
        ``name -> {"dtype", "shape", "data_offsets"}``, each checked: known dtype, a shape
        of non-negative ints, and a byte range of exactly ``prod(shape) * itemsize`` bytes
        inside the file.
    metadata : dict of str
        The raw ``__metadata__`` strings.
    data_start : int
        File offset where the tensor data begins.

    Raises
    ------
    NotAFeatureFileError
        The file is too short, the header length or JSON is bad, or a tensor's range does
        not fit the file.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise NotAFeatureFileError(f"{path} is not a safetensors feature file "
                                       f"({size} bytes, too short)")
        (n_header,) = struct.unpack("<Q", head)
        if n_header > min(MAX_HEADER_BYTES, size - 8):
            raise NotAFeatureFileError(
                f"{path} is not a safetensors feature file (header length {n_header} does "
                f"not fit a {size}-byte file)")
        raw = fh.read(n_header)
    try:
        header = json.loads(raw)
    except RecursionError:
        raise NotAFeatureFileError(f"{path}: safetensors header nested too deeply") from None
    except ValueError as exc:
        raise NotAFeatureFileError(f"{path} is not a safetensors feature file (header is "
                                   f"not JSON: {exc})") from None
    if not isinstance(header, dict):
        raise NotAFeatureFileError(f"{path}: safetensors header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise NotAFeatureFileError(f"{path}: safetensors metadata must map names to strings")
    data_start = 8 + n_header
    data_size = size - data_start
    itemsizes = {**FEATURE_DTYPES, "U8": 1, "I8": 1, "BOOL": 1, "I16": 2, "U16": 2,
                 "I32": 4, "U32": 4, "I64": 8, "U64": 8}
    end_max = 0
    for name, info in header.items():
        if not isinstance(info, dict):
            raise NotAFeatureFileError(f"{path}: tensor {name!r} has no description")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in itemsizes:
            raise NotAFeatureFileError(f"{path}: tensor {name!r} has unknown dtype {dtype!r}")
        if (not isinstance(shape, list) or len(shape) > 8
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                           for d in shape)):
            raise NotAFeatureFileError(f"{path}: tensor {name!r} has a bad shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise NotAFeatureFileError(f"{path}: tensor {name!r} has bad data_offsets "
                                       f"{offsets!r}")
        nbytes = int(np.prod(shape, dtype=object)) * itemsizes[dtype]
        if offsets[1] - offsets[0] != nbytes:
            raise NotAFeatureFileError(
                f"{path}: tensor {name!r} of shape {shape} and dtype {dtype} needs {nbytes} "
                f"bytes but its header gives it {offsets[1] - offsets[0]}")
        if offsets[1] > data_size:
            raise NotAFeatureFileError(
                f"{path}: tensor {name!r} ends at byte {offsets[1]} of a {data_size}-byte "
                "data section (the file is truncated or its header is wrong)")
        end_max = max(end_max, offsets[1])
    if end_max != data_size:
        raise NotAFeatureFileError(f"{path}: {data_size - end_max} bytes after the last "
                                   "tensor (not a safetensors file kec wrote)")
    return header, meta, data_start


def _read_list(path: Path, tensors: dict[str, dict[str, Any]], data_start: int,
               meta: dict[str, Any], name: str) -> Any:
    """The ``ids``/``labels`` list: from the ``{name}_json`` uint8 tensor or the metadata."""
    info = tensors.get(f"{name}_json")
    if info is None:
        return meta.pop(name, None)
    start, end = info["data_offsets"]
    if info["dtype"] != "U8" or len(info["shape"]) != 1:
        raise MissingMetadataError(f"{path}: tensor {name}_json must be 1-D uint8")
    if end - start > MAX_LIST_TENSOR_BYTES:
        raise MissingMetadataError(f"{path}: {name}_json is {end - start} bytes, over the "
                                   f"{MAX_LIST_TENSOR_BYTES}-byte limit")
    with open(path, "rb") as fh:
        fh.seek(data_start + start)
        raw = fh.read(end - start)
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise MissingMetadataError(f"{path}: tensor {name}_json is not a JSON list "
                                   f"({type(exc).__name__})") from None


def _check_list(path: Path, values: Any, name: str, n: int) -> list[str]:
    if not isinstance(values, list) or len(values) != n:
        got = len(values) if isinstance(values, list) else type(values).__name__
        raise MissingMetadataError(f"{path}: metadata {name!r} has {got} entries for {n} "
                                   "feature rows")
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise MissingMetadataError(
                f"{path}: metadata {name}[{i}] is {json.dumps(v)[:60] if _plain(v) else '…'}"
                f" ({type(v).__name__}), not a string; every {name[:-1]} must be text")
    return values


def _plain(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float)) or (
        isinstance(v, list) and len(v) < 8 and all(isinstance(x, (str, int)) for x in v))


def read_feature_header(
    path: Path,
) -> tuple[dict[str, Any], dict[str, Any], tuple[list[str] | None, list[str] | None], int]:
    """The checked header of a feature file (or shard), without reading the features.

    Returns
    -------
    info : dict
        The ``features`` tensor's ``dtype``, ``shape`` (2-D) and ``data_offsets``.
    meta : dict
        The decoded metadata, without ``ids`` and ``labels``.
    lists : (ids, labels)
        Each a list of one string per row, or ``None`` when absent.
    data_start : int
        File offset of the tensor data.

    Raises
    ------
    NotAFeatureFileError, MissingMetadataError
        As :func:`load_features`; the metadata ``n`` and ``dim``, when present, must
        match the tensor.
    """
    header, raw_meta, data_start = read_header(path)
    if FEATURES_KEY not in header:
        raise NotAFeatureFileError(
            f"{path} is a safetensors file but not a kec feature file "
            f"(no {FEATURES_KEY!r} tensor; tensors: {sorted(header)[:5]})"
        )
    info = header[FEATURES_KEY]
    if info["dtype"] not in FEATURE_DTYPES:
        raise NotAFeatureFileError(f"{path}: features have dtype {info['dtype']}, expected "
                                   "a float type")
    shape = info["shape"]
    if len(shape) != 2:
        raise NotAFeatureFileError(f"{path}: features have shape {tuple(shape)}, expected 2-D")
    if not raw_meta:
        raise MissingMetadataError(f"{path} has no metadata; write it with kec.features")
    meta = _decode_header(path, raw_meta)
    lists = []
    for name in ("ids", "labels"):
        values = _read_list(path, header, data_start, meta, name)
        lists.append(None if values is None else _check_list(path, values, name, shape[0]))
    for key, value in (("n", shape[0]), ("dim", shape[1])):
        if key in meta and meta[key] != value:
            raise MissingMetadataError(f"{path}: metadata says {key}={meta[key]!r} but the "
                                       f"features tensor has {key}={value}")
    return info, meta, (lists[0], lists[1]), data_start


def kind_noun(kind: str | None) -> str:
    """How messages call the rows of features of ``kind``: ``"items"`` for a text
    collection's (``kec embed collection``), ``"texts"`` for text features, else
    ``"images"``."""
    return {"items": "items", "text": "texts"}.get(str(kind), "images")


def check_kind(path: str | os.PathLike[str], found: Any, wanted: str | None) -> None:
    """Raise unless ``found`` is a known kind and, with ``wanted``, the one expected
    (``"image"`` accepts a text collection's ``"items"`` too: both can be clustered)."""
    if found not in KINDS:
        raise NotAFeatureFileError(f"{path}: unknown feature kind {found!r}")
    if wanted is not None and found != wanted and not (wanted == "image"
                                                      and found in ITEM_KINDS):
        raise WrongFeatureKindError(f"{path} holds {found} features, expected {wanted}")


def feature_set_sha256(path: str | os.PathLike[str]) -> str:
    """Content hash of a feature file, or of a sharded set (a folder): the SHA-256 of its
    ``index.json``, which records every shard's own SHA-256."""
    from kec._io import sha256_file

    path = Path(path)
    return sha256_file(path / SHARD_INDEX if path.is_dir() else path)


def load_features(path: str | os.PathLike[str], *, kind: str | None = None) -> FeatureSet:
    """Read and validate a feature file written by :func:`save_features`.

    The header (tensor shapes, dtypes and byte ranges against the file size, metadata,
    the id and label lists) is checked before the feature matrix is read.

    A folder (or its ``index.json``) is read as a sharded feature set
    (:func:`kec.feature_shards.load_feature_shards`): the same interface, rows
    memory-mapped shard by shard.

    Parameters
    ----------
    path : path-like
        The ``.safetensors`` file, or the folder of a sharded set.
    kind : {"image", "text", "items"}, optional
        Expected kind; a file of the other kind raises :class:`WrongFeatureKindError`.

    Raises
    ------
    NotAFeatureFileError
        Missing file, not safetensors, a header that does not fit the file, or no
        ``features`` tensor.
    MissingMetadataError
        No ``kind``/``encoder``/``ids`` metadata, or ids/labels that are not one string
        per row.
    WrongFeatureKindError
        ``kind`` given and different.
    NonFiniteFeaturesError
        NaN or inf in the features.
    """
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir() or path.name == SHARD_INDEX:
        from kec.feature_shards import load_feature_shards

        return load_feature_shards(path, kind=kind)
    if not path.is_file():
        raise NotAFeatureFileError(f"{path}: no such feature file")
    _, meta, lists, _ = read_feature_header(path)
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    ids, labels = lists
    if ids is None:
        missing.append("ids")
    if missing:
        raise MissingMetadataError(f"{path} lacks metadata: {', '.join(missing)}")
    check_kind(path, meta["kind"], kind)
    if not isinstance(meta["encoder"], dict):
        raise MissingMetadataError(f"{path}: metadata 'encoder' is not an object")

    try:
        with safe_open(str(path), framework="np") as fh:
            feats = np.asarray(fh.get_tensor(FEATURES_KEY))
    except Exception as exc:  # safetensors raises its own error type for any bad file
        raise NotAFeatureFileError(
            f"{path} is not a safetensors feature file ({type(exc).__name__}: {exc})"
        ) from exc
    feats = feats.astype(np.float32, copy=False)
    _check_finite(feats, str(path))
    return FeatureSet(
        features=feats,
        ids=list(ids),
        labels=list(labels) if labels is not None else None,
        metadata=meta,
        source=str(path),
    )


def _encoder_summary(enc: Mapping[str, Any]) -> str:
    return f"{enc.get('kind')} {enc.get('model')} (pretrained={enc.get('pretrained')})"


def encoder_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """What makes two encoder descriptions produce incomparable features.

    Kind, model and weights must agree (a local checkpoint is compared by content hash
    when both sides have one, so moving the file does not matter); precision,
    preprocessing and templates may differ.
    """
    diffs = []
    for key in ("kind", "model"):
        if a.get(key) != b.get(key):
            diffs.append(f"{key} {a.get(key)!r} != {b.get(key)!r}")
    sha_a, sha_b = a.get("checkpoint_sha256"), b.get("checkpoint_sha256")
    if sha_a and sha_b:
        if sha_a != sha_b:
            diffs.append("checkpoint contents differ")
    elif a.get("pretrained") != b.get("pretrained"):
        diffs.append(f"pretrained {a.get('pretrained')!r} != {b.get('pretrained')!r}")
    return diffs


def check_compatible(image_set: FeatureSet, text_set: FeatureSet) -> None:
    """Raise unless ``text_set`` lives in the same embedding space as ``image_set``.

    Raises
    ------
    WrongFeatureKindError
        The sets are not image and text features respectively.
    IncompatibleFeaturesError
        Different encoder model or weights, or different dimension.
    """
    img_name = image_set.source or "image features"
    txt_name = text_set.source or "text features"
    if image_set.kind not in ITEM_KINDS:
        raise WrongFeatureKindError(f"{img_name} holds {image_set.kind} features, not image "
                                    "or text-collection items")
    img_name = image_set.source or f"{image_set.kind} features"
    if text_set.kind != "text":
        raise WrongFeatureKindError(f"{txt_name} holds {text_set.kind} features, not text")
    diffs = encoder_differences(image_set.encoder, text_set.encoder)
    if image_set.dim != text_set.dim:
        diffs.append(f"dimension {image_set.dim} != {text_set.dim}")
    if diffs:
        raise IncompatibleFeaturesError(
            f"{txt_name} was encoded with {_encoder_summary(text_set.encoder)} but "
            f"{img_name} with {_encoder_summary(image_set.encoder)} ({'; '.join(diffs)}); "
            f"re-encode the texts with: kec embed texts TEXTS --like {img_name} --out ..."
        )
