"""Feature files: float32 matrices in safetensors with JSON provenance in the header.

A kec feature file holds one tensor, ``features`` (``(n, d)`` float32, one row per image
or text), and string metadata whose values are JSON: ``format`` (``"kec.features"``),
``format_version``, ``kind`` (``"image"`` or ``"text"``), ``encoder`` (the encoder's
``describe()``: model, pretrained tag, preprocessing or template set, ...), ``ids``
(image paths or the texts), ``labels`` (or ``null``), ``kec_version`` and ``extra``.

Very long id or label lists (over :data:`MAX_HEADER_LIST_BYTES` of JSON) go into uint8
tensors ``ids_json`` / ``labels_json`` instead, because safetensors caps its header
size; :func:`load_features` reads both layouts.
"""

from __future__ import annotations

import json
import logging
import os
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
KINDS = ("image", "text")
FEATURES_KEY = "features"
REQUIRED_METADATA = ("kind", "encoder")
MAX_HEADER_LIST_BYTES = 32 * 1024 * 1024


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
        return str(self.metadata.get("kind"))

    @property
    def encoder(self) -> dict[str, Any]:
        return dict(self.metadata.get("encoder") or {})

    @property
    def dim(self) -> int:
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
    if isinstance(values, str) or len(values) != n:
        raise ValueError(f"{name} must be a sequence of {n} strings (one per row)")
    return [str(v) for v in values]


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
    kind : {"image", "text"}
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
    from safetensors.numpy import save

    from kec import __version__

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
    for name, values in (("ids", ids_list), ("labels", labels_list)):
        text = json.dumps(values, ensure_ascii=False)
        if len(text) > MAX_HEADER_LIST_BYTES:
            logger.info("%s list is %d bytes of JSON: stored as tensor %s_json", name,
                        len(text), name)
            tensors[f"{name}_json"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        else:
            meta[name] = values
    header = {k: json.dumps(v, ensure_ascii=False, sort_keys=True) for k, v in meta.items()}
    atomic_write_bytes(path, save(tensors, metadata=header))
    logger.info("wrote %d %s features (d=%d) to %s", n, kind, feats.shape[1], path)
    return Path(path)


def _decode_header(path: Path, raw: Mapping[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value)
        except (json.JSONDecodeError, TypeError) as exc:
            raise MissingMetadataError(
                f"{path}: metadata {key!r} is not JSON ({exc}); was this file written by kec?"
            ) from exc
    return meta


def _list_from(meta: dict[str, Any], tensors: dict[str, np.ndarray], name: str) -> Any:
    if f"{name}_json" in tensors:
        return json.loads(tensors[f"{name}_json"].tobytes().decode("utf-8"))
    return meta.pop(name, None)


def load_features(path: str | os.PathLike[str], *, kind: str | None = None) -> FeatureSet:
    """Read and validate a feature file written by :func:`save_features`.

    Parameters
    ----------
    path : path-like
        The ``.safetensors`` file.
    kind : {"image", "text"}, optional
        Expected kind; a file of the other kind raises :class:`WrongFeatureKindError`.

    Raises
    ------
    NotAFeatureFileError
        Missing file, not safetensors, or no ``features`` tensor.
    MissingMetadataError
        No ``kind``/``encoder``/``ids`` metadata, or ids/labels of the wrong length.
    WrongFeatureKindError
        ``kind`` given and different.
    NonFiniteFeaturesError
        NaN or inf in the features.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise NotAFeatureFileError(f"{path}: no such feature file")
    try:
        with safe_open(str(path), framework="np") as fh:
            raw_meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error type for any bad header
        raise NotAFeatureFileError(
            f"{path} is not a safetensors feature file ({type(exc).__name__}: {exc})"
        ) from exc
    if FEATURES_KEY not in tensors:
        raise NotAFeatureFileError(
            f"{path} is a safetensors file but not a kec feature file "
            f"(no {FEATURES_KEY!r} tensor; tensors: {sorted(tensors)[:5]})"
        )
    if not raw_meta:
        raise MissingMetadataError(f"{path} has no metadata; write it with kec.features")
    meta = _decode_header(path, raw_meta)
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    ids = _list_from(meta, tensors, "ids")
    labels = _list_from(meta, tensors, "labels")
    if ids is None:
        missing.append("ids")
    if missing:
        raise MissingMetadataError(f"{path} lacks metadata: {', '.join(missing)}")
    if meta["kind"] not in KINDS:
        raise NotAFeatureFileError(f"{path}: unknown feature kind {meta['kind']!r}")
    if kind is not None and meta["kind"] != kind:
        raise WrongFeatureKindError(f"{path} holds {meta['kind']} features, expected {kind}")
    if not isinstance(meta["encoder"], dict):
        raise MissingMetadataError(f"{path}: metadata 'encoder' is not an object")

    feats = np.asarray(tensors[FEATURES_KEY])
    if feats.ndim != 2:
        raise NotAFeatureFileError(f"{path}: features have shape {feats.shape}, expected 2-D")
    feats = feats.astype(np.float32, copy=False)
    n = feats.shape[0]
    for name, values in (("ids", ids), ("labels", labels)):
        if values is None and name == "labels":
            continue
        if not isinstance(values, list) or len(values) != n:
            got = len(values) if isinstance(values, list) else type(values).__name__
            raise MissingMetadataError(f"{path}: metadata {name!r} has {got} entries "
                                       f"for {n} feature rows")
    _check_finite(feats, str(path))
    return FeatureSet(
        features=feats,
        ids=[str(i) for i in ids],
        labels=[str(lb) for lb in labels] if labels is not None else None,
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
    if image_set.kind != "image":
        raise WrongFeatureKindError(f"{img_name} holds {image_set.kind} features, not image")
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
