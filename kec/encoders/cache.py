"""A disk cache of text embeddings, keyed on the encoder and the text.

``kec cluster`` embeds the same knowledge texts on every run; with
:class:`CachedTextEncoder` the second run reads them back instead. One ``.npy`` file
per encoder and text hash would be many small files, so entries live in one folder
per encoder (``<cache>/embeddings/<encoder-hash>/``), in shards named by the first two
hex digits of the text hash: ``<shard>.npz`` holding ``keys`` and ``vectors``. Shards
are written atomically (temporary file + rename), so an interrupted run never leaves a
half-written shard; a shard that cannot be read is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kec._io import atomic_write_bytes, canonical_json

logger = logging.getLogger(__name__)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encoder_key(description: dict[str, Any]) -> str:
    """A stable hash of an encoder's ``describe()`` (model, weights, templates, dim)."""
    return _hash(canonical_json(description))[:24]


class CachedTextEncoder:
    """Wrap a text encoder so that every text is embedded at most once per cache.

    Parameters
    ----------
    encoder : object with ``encode(texts)`` and ``describe()``
        The encoder to wrap; ``dim`` and ``describe()`` are passed through.
    factory : callable, optional
        Instead of ``encoder``: makes the encoder on the first cache miss, so that a run
        whose texts are all cached never loads a model. Needs ``key``.
    key : dict, optional
        With ``factory``: what identifies the encoder (e.g. its spec); its ``describe()``
        is stored beside the entries at the first load and served from there.
    cache_dir : path-like
        Root of kec's cache (``<cache_dir>/embeddings/...`` is used).

    Attributes
    ----------
    hits, misses : int
        Texts served from the cache and texts sent to the encoder, over this object's life.
    """

    def __init__(self, encoder: Any = None, cache_dir: str | os.PathLike[str] = ".",
                 *, factory: Any = None, key: dict[str, Any] | None = None) -> None:
        if (encoder is None) == (factory is None):
            raise ValueError("give an encoder or a factory (with a key), not both")
        if factory is not None and not key:
            raise ValueError("a lazy encoder (factory) needs a key describing it")
        self._encoder = encoder
        self._factory = factory
        if encoder is not None:
            describe = getattr(encoder, "describe", None)
            self._description: dict[str, Any] | None = (
                dict(describe()) if callable(describe) else {"class": type(encoder).__name__})
            key = self._description
        else:
            self._description = None
        self.folder = Path(cache_dir) / "embeddings" / encoder_key(dict(key or {}))
        self.hits = 0
        self.misses = 0

    @property
    def encoder(self) -> Any:
        """The wrapped encoder, loaded by the factory on first use."""
        if self._encoder is None:
            self._encoder = self._factory()
            describe = getattr(self._encoder, "describe", None)
            self._description = (dict(describe()) if callable(describe)
                                 else {"class": type(self._encoder).__name__})
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.folder / "encoder.json",
                               canonical_json(self._description).encode("utf-8"))
        return self._encoder

    @property
    def loaded(self) -> bool:
        return self._encoder is not None

    def _stored_description(self) -> dict[str, Any] | None:
        path = self.folder / "encoder.json"
        try:
            import json

            d = json.loads(path.read_text("utf-8"))
            return d if isinstance(d, dict) else None
        except (OSError, ValueError):
            return None

    @property
    def dim(self) -> int:
        if self._encoder is None:
            d = self._stored_description()
            if d is not None and isinstance(d.get("dim"), int):
                return int(d["dim"])
        return int(self.encoder.dim)

    def describe(self) -> dict[str, Any]:
        if self._description is None:
            stored = self._stored_description()
            if stored is not None:
                return dict(stored)
            self.encoder  # noqa: B018 - loads and records the description
        return dict(self._description or {})

    def _read_shard(self, shard: str) -> dict[str, np.ndarray]:
        path = self.folder / f"{shard}.npz"
        if not path.is_file():
            return {}
        try:
            with np.load(path, allow_pickle=False) as z:
                keys, vecs = z["keys"], z["vectors"]
            if keys.shape[0] != vecs.shape[0] or vecs.ndim != 2:
                raise ValueError("keys and vectors disagree")
            return {str(k): v for k, v in zip(keys, vecs)}
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("ignoring unreadable embedding cache shard %s (%s)", path, exc)
            return {}

    def _write_shard(self, shard: str, entries: dict[str, np.ndarray]) -> None:
        buf = io.BytesIO()
        keys = np.array(sorted(entries), dtype="U64")
        np.savez(buf, keys=keys, vectors=np.stack([entries[k] for k in keys]).astype(np.float32))
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.folder / f"{shard}.npz", buf.getvalue())

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Embeddings of ``texts``: cached rows read back, the others encoded and stored."""
        items = list(texts)
        keys = [_hash(t) for t in items]
        shards: dict[str, dict[str, np.ndarray]] = {}
        for k in keys:
            if k[:2] not in shards:
                shards[k[:2]] = self._read_shard(k[:2])
        missing = sorted({i for i, k in enumerate(keys) if k not in shards[k[:2]]},
                         key=lambda i: i)
        first: dict[str, int] = {}
        todo = [i for i in missing if first.setdefault(keys[i], i) == i]
        self.misses += len(todo)
        self.hits += len(items) - len(missing)
        if todo:
            kw = {"progress": progress} if progress else {}
            new = np.asarray(self.encoder.encode([items[i] for i in todo], **kw),
                             dtype=np.float32)
            touched: set[str] = set()
            for i, vec in zip(todo, new):
                shards[keys[i][:2]][keys[i]] = vec
                touched.add(keys[i][:2])
            for shard in touched:
                self._write_shard(shard, shards[shard])
        dim = int(next(iter(v for sh in shards.values() for v in sh.values())).shape[0]) \
            if items else self.dim
        out = np.empty((len(items), dim), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = shards[k[:2]][k]
        return out
