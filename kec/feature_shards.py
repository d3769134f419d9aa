"""Sharded feature sets: one folder, an ``index.json`` and shard files, read as one set.

A sharded set is what ``kec embed ... --engine ray`` (or ``--shard-rows N``) writes when
a collection is too large for one file, or is encoded by many workers::

    OUT/
      index.json                  format, kind, encoder (once), n, dim, labelled, extra,
                                  set_id and, per shard: file, rows, bytes, sha256
      shard-000000.safetensors    ``features`` (rows, dim) float32; header: set_id, shard,
      shard-000001.safetensors    n, dim, ids and labels of its rows (the lists go into
      ...                         uint8 tensors when long, as in a feature file)

Shard ``i`` holds rows ``[start_i, start_i + rows_i)`` of the set, in the index's order.
:func:`load_feature_shards` reads the index and every shard's header (ids, labels, byte
ranges, the set id: a shard copied in from another set is refused) and maps each shard's
rows into memory with :class:`numpy.memmap` (copy-on-write: the files are never written).
Nothing is read into one array until :attr:`ShardedFeatureSet.features` is asked for;
:meth:`ShardedFeatureSet.rows` and :meth:`ShardedFeatureSet.iter_shards` read only the
shards they touch. :func:`kec.features.load_features` calls it for a folder, so every
command that takes a feature file takes a sharded set.

:class:`ShardWriter` writes shards as rows arrive (memory: one shard) into a hidden
folder beside ``OUT`` and swaps it in when closed, so ``OUT`` holds either the old set or
the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kec._io import atomic_write_bytes, check_output_path, write_json
from kec.errors import KecError, OutputPathError
from kec.features import (
    FEATURES_KEY,
    KINDS,
    SHARD_INDEX,
    FeatureSet,
    MissingMetadataError,
    NotAFeatureFileError,
    _check_finite,
    _check_strings,
    check_kind,
    read_feature_header,
    safetensors_bytes,
)

logger = logging.getLogger(__name__)

FORMAT = "kec.feature-shards"
SHARD_FORMAT = "kec.feature-shard"
FORMAT_VERSION = 1
#: rows per shard by default: 128 MiB of float32 at d = 512
DEFAULT_SHARD_ROWS = 65536
SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".safetensors"
MAX_INDEX_BYTES = 256 * 1024 * 1024


class ShardedSetError(KecError):
    """A sharded feature set is damaged, inconsistent, or cannot be written where asked."""


def shard_name(i: int) -> str:
    """File name of shard ``i``."""
    return f"{SHARD_PREFIX}{i:06d}{SHARD_SUFFIX}"


def _is_ours(path: Path) -> bool:
    name = path.name
    return path.is_file() and not path.is_symlink() and (
        name == SHARD_INDEX or (name.startswith(SHARD_PREFIX) and name.endswith(SHARD_SUFFIX)))


def check_shard_folder(out: str | os.PathLike[str]) -> Path:
    """Check, before any work, that ``out`` can receive a sharded set.

    ``out`` may be missing, an empty folder, or a sharded set kec wrote (it is replaced
    when the new one is complete); its parent must be writable.

    Raises
    ------
    OutputPathError
        ``out`` is a file, holds other files, or cannot be written.
    """
    out = check_output_path(out, "dir")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if not _is_ours(p))
        if foreign:
            raise OutputPathError(
                f"--out {out} is a folder holding files that are not a kec sharded feature "
                f"set ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); give "
                "a new or empty folder")
    # the set is written in a hidden folder beside ``out`` and swapped in: the parent
    # must be writable too
    check_output_path(out.absolute().parent / f".{out.name}.new", "dir")
    return out


class ShardWriter:
    """Write a sharded feature set row block by row block.

    Parameters
    ----------
    folder : path-like
        The set's folder, checked with :func:`check_shard_folder`.
    kind : {"image", "text", "items"}
        What the rows are.
    encoder : mapping
        The encoder's ``describe()``, recorded once in ``index.json``.
    shard_rows : int
        Rows per shard (the last shard may hold fewer).

    Notes
    -----
    Labels are kept when every row has one; a ``None`` label on any row drops them all
    (as for an image list where only some lines have a label). Use it as a context
    manager: leaving the block on an exception removes the unfinished folder, and
    :meth:`close` makes the set visible at ``folder``.
    """

    def __init__(self, folder: str | os.PathLike[str], *, kind: str,
                 encoder: Mapping[str, Any], shard_rows: int = DEFAULT_SHARD_ROWS):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if shard_rows < 1:
            raise ValueError(f"shard_rows must be >= 1, got {shard_rows}")
        self.folder = check_shard_folder(folder)
        self.kind = kind
        self.encoder = json.loads(json.dumps(dict(encoder)))
        self.shard_rows = int(shard_rows)
        self.set_id = uuid.uuid4().hex
        self.dim: int | None = None
        self.n = 0
        self.labelled = True
        self._shards: list[dict[str, Any]] = []
        self._feats: list[np.ndarray] = []
        self._ids: list[str] = []
        self._labels: list[str | None] = []
        self._pending = 0
        parent = self.folder.absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        self._tmp = parent / f".{self.folder.name}.{self.set_id[:12]}.tmp"
        self._tmp.mkdir()
        self._closed = False

    @property
    def rows(self) -> int:
        """Rows added so far (written or pending)."""
        return self.n + self._pending

    @property
    def shard_count(self) -> int:
        """Shard files written so far."""
        return len(self._shards)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None or not self._closed:
            self.abort()

    def add(self, features: np.ndarray, ids: Sequence[str],
            labels: Sequence[str | None] | None = None) -> None:
        """Append rows; every full shard is written at once."""
        feats = np.asarray(features, dtype=np.float32)
        if feats.ndim != 2:
            raise ValueError(f"features must be 2-D (n, d), got shape {feats.shape}")
        if self.dim is None:
            self.dim = int(feats.shape[1])
        elif feats.shape[1] != self.dim:
            raise ValueError(f"rows of dimension {feats.shape[1]} added to a set of "
                             f"dimension {self.dim}")
        n = feats.shape[0]
        ids = _check_strings(ids, "ids", n)
        if labels is None:
            labels = [None] * n
        elif len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} rows")
        _check_finite(feats, f"rows {self.n + self._pending}..")
        self._feats.append(feats)
        self._ids.extend(ids)
        self._labels.extend(None if lb is None else str(lb) for lb in labels)
        self._pending += n
        while self._pending >= self.shard_rows:
            self._write_shard(self.shard_rows)

    def _write_shard(self, rows: int) -> None:
        from kec._version import __version__

        feats = np.concatenate(self._feats) if len(self._feats) > 1 else self._feats[0]
        block, rest = np.ascontiguousarray(feats[:rows]), feats[rows:]
        self._feats = [rest] if len(rest) else []
        ids, self._ids = self._ids[:rows], self._ids[rows:]
        labels, self._labels = self._labels[:rows], self._labels[rows:]
        self._pending -= rows
        has_labels = all(lb is not None for lb in labels)
        self.labelled = self.labelled and has_labels
        i = len(self._shards)
        meta = {"format": SHARD_FORMAT, "format_version": FORMAT_VERSION,
                "set_id": self.set_id, "shard": i, "n": rows, "dim": self.dim,
                "kind": self.kind, "kec_version": __version__}
        data = safetensors_bytes({FEATURES_KEY: block}, meta, ids,
                                 labels if has_labels else None)  # type: ignore[arg-type]
        atomic_write_bytes(self._tmp / shard_name(i), data)
        self._shards.append({"file": shard_name(i), "rows": rows, "bytes": len(data),
                             "sha256": hashlib.sha256(data).hexdigest()})
        self.n += rows
        logger.debug("wrote shard %d (%d rows)", i, rows)

    def close(self, extra: Mapping[str, Any] | None = None) -> Path:
        """Write the last shard and ``index.json``, and swap the set in at ``folder``.

        Raises
        ------
        ShardedSetError
            No row was added.
        """
        from kec._version import __version__

        if self._pending:
            self._write_shard(self._pending)
        if not self._shards:
            raise ShardedSetError(f"no feature rows to write to {self.folder}")
        index = {"format": FORMAT, "format_version": FORMAT_VERSION, "set_id": self.set_id,
                 "kind": self.kind, "encoder": self.encoder, "n": self.n, "dim": self.dim,
                 "dtype": "float32", "labelled": self.labelled, "kec_version": __version__,
                 "extra": dict(extra or {}), "shards": self._shards}
        write_json(self._tmp / SHARD_INDEX, index)
        _swap_in(self._tmp, self.folder)
        self._closed = True
        logger.info("wrote %d %s features (d=%s) in %d shards to %s", self.n, self.kind,
                    self.dim, len(self._shards), self.folder)
        return self.folder

    def abort(self) -> None:
        """Remove the unfinished folder (the set at ``folder``, if any, is untouched)."""
        self._closed = True
        shutil.rmtree(self._tmp, ignore_errors=True)


def _swap_in(new: Path, out: Path) -> None:
    """Put the complete folder ``new`` at ``out``, replacing an empty folder or an old set."""
    if out.is_dir() and any(out.iterdir()):
        old = out.absolute().parent / f".{out.name}.{uuid.uuid4().hex[:12]}.old"
        os.replace(out, old)
        os.replace(new, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            out.rmdir()
        os.replace(new, out)


def save_feature_shards(
    folder: str | os.PathLike[str],
    features: np.ndarray,
    *,
    ids: Sequence[str],
    kind: str,
    encoder: Mapping[str, Any],
    labels: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    shard_rows: int = DEFAULT_SHARD_ROWS,
) -> Path:
    """Write ``features`` as a sharded set (the arguments of :func:`kec.features.save_features`
    plus ``shard_rows``).

    Parameters
    ----------
    folder : path-like
        Destination folder (swapped in when complete).
    features : numpy.ndarray
        ``(n, d)``; stored as float32.
    ids : sequence of str
        One per row.
    kind : {"image", "text", "items"}
        What the rows are.
    encoder : mapping
        The encoder's ``describe()``.
    labels : sequence of str, optional
        Ground-truth labels, one per row.
    extra : mapping, optional
        JSON-serialisable provenance, stored in ``index.json``.
    shard_rows : int
        Rows per shard file (default 65,536).

    Returns
    -------
    pathlib.Path
        The folder written.
    """
    feats = np.asarray(features)
    if feats.ndim != 2:
        raise ValueError(f"features must be 2-D (n, d), got shape {feats.shape}")
    with ShardWriter(folder, kind=kind, encoder=encoder, shard_rows=shard_rows) as writer:
        for start in range(0, feats.shape[0], shard_rows):
            stop = start + shard_rows
            writer.add(feats[start:stop], ids[start:stop],
                       None if labels is None else labels[start:stop])
        return writer.close(extra)


@dataclass(frozen=True)
class Shard:
    """One shard of a loaded set: rows ``[start, stop)`` live in ``path``."""

    path: Path
    start: int
    stop: int
    dtype: str
    data_offset: int

    def __len__(self) -> int:
        return self.stop - self.start


class ShardedFeatureSet(FeatureSet):
    """A :class:`~kec.features.FeatureSet` whose rows stay in their shard files.

    ``len``, ``dim``, ``ids``, ``labels``, ``metadata``, ``kind`` and ``encoder`` come
    from the index and the shard headers. :attr:`features` concatenates the shards into
    one array the first time it is read (methods that need the whole matrix, such as
    single-process k-means, ask for it); :meth:`rows` and :meth:`iter_shards` read only
    the shards they touch, memory-mapped. Every shard is checked for NaN and infinite
    values the first time its rows are read.
    """

    def __init__(self, shards: list[Shard], *, dim: int, ids: list[str],
                 labels: list[str] | None, metadata: dict[str, Any], source: str):
        self.shards = shards
        self._dim = int(dim)
        self._n = shards[-1].stop if shards else 0
        self._features: np.ndarray | None = None
        self._checked: set[int] = set()
        self.ids = ids
        self.labels = labels
        self.metadata = metadata
        self.source = source

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return (f"ShardedFeatureSet({self.source!r}, n={self._n}, dim={self._dim}, "
                f"shards={len(self.shards)}, kind={self.kind!r})")

    @property
    def dim(self) -> int:
        """Feature dimension ``d`` (from the index; no shard is read)."""
        return self._dim

    @property
    def features(self) -> np.ndarray:  # type: ignore[override]
        """All rows as one ``(n, d)`` float32 array (read once, then kept)."""
        if self._features is None:
            if len(self.shards) == 1:
                self._features = self.shard_array(0)
            else:
                out = np.empty((self._n, self._dim), dtype=np.float32)
                for i, shard in enumerate(self.shards):
                    out[shard.start:shard.stop] = self.shard_array(i)
                self._features = out
        return self._features

    @features.setter
    def features(self, value: np.ndarray) -> None:
        value = np.asarray(value, dtype=np.float32)
        if value.shape != (self._n, self._dim):
            raise ValueError(f"features of shape {value.shape} for a set of "
                             f"{(self._n, self._dim)}")
        self._features = value

    def shard_array(self, i: int) -> np.ndarray:
        """The rows of shard ``i``, memory-mapped copy-on-write (checked for NaN/inf)."""
        shard = self.shards[i]
        shape = (len(shard), self._dim)
        if shard.dtype == "F32":  # a plain ndarray view of the mapping, not a np.memmap
            arr = np.asarray(np.memmap(shard.path, dtype="<f4", mode="c",
                                       offset=shard.data_offset, shape=shape))
        else:  # a shard written by another tool in another float type: read and convert
            from safetensors import safe_open

            with safe_open(str(shard.path), framework="np") as fh:
                arr = np.asarray(fh.get_tensor(FEATURES_KEY)).astype(np.float32)
        if i not in self._checked:
            _check_finite(arr, str(shard.path))
            self._checked.add(i)
        return arr

    def iter_shards(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, rows)`` of each shard in order, one shard in memory at a time."""
        for i, shard in enumerate(self.shards):
            yield shard.start, self.shard_array(i)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as one array, reading only the shards that hold them."""
        start, stop, _ = slice(start, stop).indices(self._n)
        out = np.empty((max(0, stop - start), self._dim), dtype=np.float32)
        if self._features is not None:
            out[:] = self._features[start:stop]
            return out
        for i, shard in enumerate(self.shards):
            lo, hi = max(start, shard.start), min(stop, shard.stop)
            if lo < hi:
                out[lo - start:hi - start] = self.shard_array(i)[lo - shard.start:
                                                                 hi - shard.start]
        return out


def _read_index(folder: Path) -> dict[str, Any]:
    path = folder / SHARD_INDEX
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise NotAFeatureFileError(f"{folder} is a folder without {SHARD_INDEX}: not a "
                                   "sharded feature set (give a feature file, or the "
                                   "folder kec embed wrote)") from None
    except OSError as exc:
        raise NotAFeatureFileError(f"{path}: {exc.strerror or exc}") from None
    if size > MAX_INDEX_BYTES:
        raise NotAFeatureFileError(f"{path} is {size} bytes, over {MAX_INDEX_BYTES}")
    try:
        index = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise NotAFeatureFileError(f"{path} is not JSON ({type(exc).__name__})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise NotAFeatureFileError(f"{path} is not the index of a kec sharded feature set "
                                   f"(format {FORMAT!r})")
    if index.get("format_version") != FORMAT_VERSION:
        raise NotAFeatureFileError(f"{path}: format version {index.get('format_version')!r}"
                                   f" is not {FORMAT_VERSION}; upgrade kec")
    return index


def _index_fields(path: Path, index: dict[str, Any]) -> tuple[int, int, list[dict[str, Any]]]:
    """``(n, dim, shards)`` of an index, each checked for type."""
    n, dim, shards = index.get("n"), index.get("dim"), index.get("shards")
    if not (isinstance(n, int) and isinstance(dim, int) and n >= 0 and dim >= 1):
        raise MissingMetadataError(f"{path}: 'n' and 'dim' must be non-negative integers")
    if not isinstance(index.get("encoder"), dict):
        raise MissingMetadataError(f"{path}: 'encoder' is not an object")
    if not isinstance(shards, list) or not shards:
        raise MissingMetadataError(f"{path}: 'shards' must be a non-empty list")
    for k, entry in enumerate(shards):
        name = entry.get("file") if isinstance(entry, dict) else None
        rows = entry.get("rows") if isinstance(entry, dict) else None
        if (not isinstance(name, str) or Path(name).name != name or name in ("", ".", "..")
                or not isinstance(rows, int) or rows < 0):
            raise MissingMetadataError(f"{path}: shards[{k}] must give a file name in the "
                                       "folder and a row count")
    if sum(e["rows"] for e in shards) != n:
        raise MissingMetadataError(f"{path}: the shards hold {sum(e['rows'] for e in shards)} "
                                   f"rows but 'n' is {n}")
    return n, dim, shards


def _read_shard(path: Path, entry: dict[str, Any], set_id: Any,
                dim: int) -> tuple[dict[str, Any], list[str], list[str] | None, int]:
    if not path.is_file():
        raise NotAFeatureFileError(f"{path}: shard listed in {SHARD_INDEX} is missing")
    info, meta, (ids, labels), data_start = read_feature_header(path)
    rows, cols = info["shape"]
    if meta.get("format") != SHARD_FORMAT or meta.get("set_id") != set_id:
        raise ShardedSetError(f"{path} is not a shard of this set (set id "
                              f"{meta.get('set_id')!r}, expected {set_id!r})")
    if rows != entry["rows"] or cols != dim:
        raise ShardedSetError(f"{path} holds {rows} x {cols} features; {SHARD_INDEX} says "
                              f"{entry['rows']} x {dim}")
    if ids is None:
        raise MissingMetadataError(f"{path} lacks metadata: ids")
    return info, ids, labels, data_start


def load_feature_shards(path: str | os.PathLike[str], *,
                        kind: str | None = None) -> ShardedFeatureSet:
    """Open a sharded feature set: check the index and every shard header, map the rows.

    Parameters
    ----------
    path : path-like
        The set's folder, or its ``index.json``.
    kind : {"image", "text", "items"}, optional
        Expected kind (as :func:`kec.features.load_features`).

    Raises
    ------
    NotAFeatureFileError
        No index, not a kec index, a missing or damaged shard.
    MissingMetadataError
        Inconsistent counts, ids or labels.
    ShardedSetError
        A shard from another set, or of another shape than the index says.
    WrongFeatureKindError
        ``kind`` given and different.
    """
    folder = Path(path)
    if folder.name == SHARD_INDEX and folder.is_file():
        folder = folder.parent
    index = _read_index(folder)
    where = folder / SHARD_INDEX
    check_kind(where, index.get("kind"), kind)
    _, dim, entries = _index_fields(where, index)
    labelled = bool(index.get("labelled"))
    shards: list[Shard] = []
    ids: list[str] = []
    labels: list[str] = []
    start = 0
    for entry in entries:
        shard_path = folder / entry["file"]
        info, shard_ids, shard_labels, data_start = _read_shard(shard_path, entry,
                                                                index.get("set_id"), dim)
        if labelled and shard_labels is None:
            raise MissingMetadataError(f"{shard_path} has no labels but {SHARD_INDEX} says "
                                       "the set is labelled")
        ids.extend(shard_ids)
        if labelled:
            labels.extend(shard_labels)  # type: ignore[arg-type]
        shards.append(Shard(shard_path, start, start + entry["rows"], info["dtype"],
                            data_start + info["data_offsets"][0]))
        start += entry["rows"]
    metadata = {k: v for k, v in index.items() if k not in ("shards",)}
    metadata["shards"] = len(shards)
    return ShardedFeatureSet(shards, dim=dim, ids=ids, labels=labels if labelled else None,
                             metadata=metadata, source=str(folder))
