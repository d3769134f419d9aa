"""Small deterministic data for the clustering tests (nothing is downloaded)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def blobs(n_per: int, k: int, d: int = 16, spread: float = 0.15, seed: int = 0
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``k`` well-separated clusters on the sphere: ``(X, y, centres)``."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((k, d)))
    y = np.repeat(np.arange(k), n_per)
    X = unit(centres[y] + spread * rng.standard_normal((k * n_per, d)) / np.sqrt(d))
    return X, y, centres


def random_unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    return unit(np.random.default_rng(seed).standard_normal((n, d)))


class HashEncoder:
    """Deterministic toy text encoder: a text's vector comes from its SHA-256, plus the
    direction of any anchor word it contains (so related texts are similar)."""

    def __init__(self, dim: int = 16, anchors: dict[str, np.ndarray] | None = None,
                 weight: float = 3.0) -> None:
        self.dim = dim
        self.anchors = anchors or {}
        self.weight = weight
        self.calls: list[list[str]] = []

    def _vec(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self.dim) / np.sqrt(self.dim)
        for word, direction in self.anchors.items():
            if word in text.split() or word in text:
                v = v + self.weight * direction
        return v

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return unit(np.stack([self._vec(t) for t in texts]))

    def describe(self) -> dict:
        return {"kind": "test-hash", "model": "hash", "pretrained": None, "dim": self.dim}


def toy_world(names: Sequence[str], n_per: int, *, spread: float, seed: int, d: int = 16
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, object]:
    """One cluster of ``n_per`` items per name, nouns and captions from :class:`HashEncoder`
    anchored on the cluster centres, and toy knowledge aligned with them:
    ``(X, y, nouns, captions, knowledge_features)``."""
    from kec.cluster.knowledge_features import knowledge_features

    X, y, centres = blobs(n_per, len(names), d=d, spread=spread, seed=seed)
    enc = HashEncoder(dim=d, anchors=dict(zip(names, centres)), weight=2.0)
    nouns = enc.encode([f"{n} {j}" for n in names for j in range(5)]
                       + [f"noise{j}" for j in range(10)])
    captions = enc.encode([f"a photo of an {n} outside" for n in names])
    doc = {
        "concepts": [{"id": f"c-00000000{i:02x}", "name": n, "description": f"a {n}",
                      "labels": [n], "attributes": [f"{n} shape", f"{n} colour"]}
                     for i, n in enumerate(names)],
        "pairs": [{"a": "c-0000000000", "b": "c-0000000001", "similarity": 0.8,
                   "attributes": ["apple is round, boat is long"]}],
    }
    return X, y, nouns, captions, knowledge_features(doc, enc)
