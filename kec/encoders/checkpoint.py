"""Resumable embedding: completed batches saved beside the output, reused by id and hash.

A checkpoint is a folder (conventionally ``OUT.partial``) holding ``manifest.json`` (the
encoder's ``describe()``: model, weights, precision, preprocessing) and numbered chunk
files ``chunk-NNNNNN.safetensors``: each holds a ``features`` tensor and, in its header,
the ``ids`` and ``sha256`` (content hash of the item: the image file's bytes, or a
collection item's text) of its rows.

When the same command runs again, an item whose id is in the checkpoint **and** whose
content still has the recorded hash takes its feature row from the checkpoint instead
of being decoded and encoded again. A checkpoint written by another encoder is discarded.
``kec embed images`` and ``kec embed collection`` both use it.
Chunks are written atomically, so an interrupted write leaves the previous chunks usable.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kec._io import atomic_write_bytes, canonical_json, write_json
from kec.errors import KecError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CHUNK_PREFIX = "chunk-"
CHUNK_SUFFIX = ".safetensors"
FORMAT = "kec.embedding-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(KecError):
    """The checkpoint folder cannot be used (it holds foreign files, or is not a folder)."""


def checkpoint_dir_for(out: str | os.PathLike[str]) -> Path:
    """The checkpoint folder of an output feature file: ``OUT.partial`` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


class EmbeddingCheckpoint:
    """Completed feature rows of an interrupted embedding run, keyed by id and content hash.

    Parameters
    ----------
    folder : path-like
        Checkpoint folder; created when missing.
    fingerprint : mapping
        What must match for rows to be reused (the encoder's ``describe()``). A folder
        holding another fingerprint is emptied.
    flush_every : int
        Write a chunk once this many new rows are pending.
    flush_seconds : float
        Also write a chunk when the last one is older than this.
    resume : bool
        ``False`` empties the folder first: every item is encoded again.

    Attributes
    ----------
    resumed : int
        Rows found in the folder when it was opened.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        fingerprint: Mapping[str, Any],
        *,
        flush_every: int = 4096,
        flush_seconds: float = 60.0,
        resume: bool = True,
    ):
        self.folder = Path(folder)
        self.fingerprint = json.loads(canonical_json(dict(fingerprint)))
        self.flush_every = max(1, int(flush_every))
        self.flush_seconds = float(flush_seconds)
        self._rows: dict[str, tuple[str, np.ndarray]] = {}
        self._pending_ids: list[str] = []
        self._pending_hashes: list[str] = []
        self._pending_rows: list[np.ndarray] = []
        self._next_chunk = 0
        self._last_flush = time.monotonic()
        if not resume:
            self.clear()
        self._open()
        self.resumed = len(self._rows)

    # -- reading ---------------------------------------------------------------------------

    def _open(self) -> None:
        manifest = self.folder / MANIFEST
        if self.folder.exists():
            try:
                stored = json.loads(manifest.read_text("utf-8"))
            except (OSError, ValueError):
                stored = None
            if not isinstance(stored, dict) or stored.get("encoder") != self.fingerprint:
                logger.warning("%s was written by another encoder or is damaged: starting over",
                               self.folder)
                self.clear()
            else:
                self._load_chunks()
        if not self.folder.exists():
            self.folder.mkdir(parents=True)
            write_json(manifest, {"format": FORMAT, "format_version": FORMAT_VERSION,
                                  "encoder": self.fingerprint})

    def _chunk_files(self) -> list[Path]:
        return sorted(p for p in self.folder.glob(f"{CHUNK_PREFIX}*{CHUNK_SUFFIX}"))

    def _load_chunks(self) -> None:
        from safetensors import SafetensorError, safe_open

        for path in self._chunk_files():
            try:
                seq = int(path.name[len(CHUNK_PREFIX) : -len(CHUNK_SUFFIX)])
                self._next_chunk = max(self._next_chunk, seq + 1)
                with safe_open(str(path), framework="numpy") as fh:
                    meta = fh.metadata() or {}
                    feats = fh.get_tensor("features")
                ids = json.loads(meta["ids"])
                hashes = json.loads(meta["sha256"])
                if not (len(ids) == len(hashes) == feats.shape[0]) or feats.ndim != 2:
                    raise ValueError("ids, hashes and rows differ in number")
            except (OSError, ValueError, KeyError, SafetensorError) as exc:
                logger.warning("ignoring damaged checkpoint chunk %s: %s", path, exc)
                continue
            for i, h, row in zip(ids, hashes, feats, strict=True):
                self._rows[str(i)] = (str(h), row)
        if self._rows:
            logger.info("checkpoint %s: %d rows from an earlier run", self.folder,
                        len(self._rows))

    def __len__(self) -> int:
        return len(self._rows)

    def known_hashes(self, ids: Sequence[str]) -> list[str | None]:
        """For each id, the content hash of its saved row, or ``None``."""
        out: list[str | None] = []
        for i in ids:
            hit = self._rows.get(i)
            out.append(hit[0] if hit is not None else None)
        return out

    def get(self, item_id: str, sha256: str) -> np.ndarray | None:
        """The saved row for ``item_id`` if its content hash is ``sha256``, else ``None``."""
        hit = self._rows.get(item_id)
        if hit is None or hit[0] != sha256:
            return None
        return hit[1]

    # -- writing ---------------------------------------------------------------------------

    def add(self, ids: Sequence[str], hashes: Sequence[str], features: np.ndarray) -> None:
        """Record freshly encoded rows; a chunk is written when enough are pending."""
        feats = np.asarray(features, dtype=np.float32)
        if not (len(ids) == len(hashes) == feats.shape[0]):
            raise ValueError("ids, hashes and feature rows differ in number")
        for i, h, row in zip(ids, hashes, feats, strict=True):
            self._rows[str(i)] = (str(h), row)
        self._pending_ids.extend(str(i) for i in ids)
        self._pending_hashes.extend(str(h) for h in hashes)
        self._pending_rows.append(feats)
        too_old = time.monotonic() - self._last_flush > self.flush_seconds
        if len(self._pending_ids) >= self.flush_every or too_old:
            self.flush()

    def flush(self) -> None:
        """Write the pending rows as one chunk file (atomically)."""
        self._last_flush = time.monotonic()
        if not self._pending_ids:
            return
        from safetensors.numpy import save

        feats = np.ascontiguousarray(np.concatenate(self._pending_rows))
        meta = {"ids": json.dumps(self._pending_ids, ensure_ascii=False),
                "sha256": json.dumps(self._pending_hashes)}
        path = self.folder / f"{CHUNK_PREFIX}{self._next_chunk:06d}{CHUNK_SUFFIX}"
        atomic_write_bytes(path, save({"features": feats}, metadata=meta))
        logger.debug("checkpoint: wrote %d rows to %s", len(self._pending_ids), path)
        self._next_chunk += 1
        self._pending_ids, self._pending_hashes, self._pending_rows = [], [], []

    def clear(self) -> None:
        """Delete the checkpoint's files and folder, and forget every row.

        Raises
        ------
        CheckpointError
            The folder holds files kec did not write there (it is left alone).
        """
        self._rows.clear()
        self._pending_ids, self._pending_hashes, self._pending_rows = [], [], []
        self._next_chunk = 0
        if not self.folder.exists():
            return
        if not self.folder.is_dir():
            raise CheckpointError(f"{self.folder} is in the way of the embedding checkpoint: "
                                  "it is not a folder; move it away")
        foreign = [p.name for p in self.folder.iterdir() if not _is_ours(p)]
        if foreign:
            raise CheckpointError(
                f"{self.folder} holds files kec did not write ({', '.join(sorted(foreign)[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}); move them away or use another --out"
            )
        for p in self.folder.iterdir():
            p.unlink()
        self.folder.rmdir()


def _is_ours(path: Path) -> bool:
    name = path.name
    if not path.is_file() or path.is_symlink():
        return False
    if name == MANIFEST:
        return True
    if name.startswith(".") and name.endswith(".tmp"):  # an interrupted atomic write
        return True
    return name.startswith(CHUNK_PREFIX) and name.endswith(CHUNK_SUFFIX)
