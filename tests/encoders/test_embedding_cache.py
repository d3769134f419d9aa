"""The text-embedding cache: a second encode of the same texts calls the encoder for none."""

from __future__ import annotations

import numpy as np

from kec.encoders.cache import CachedTextEncoder


class CountingEncoder:
    """A deterministic encoder that records what it was asked to encode."""

    dim = 8

    def __init__(self, tag: str = "a") -> None:
        self.tag = tag
        self.seen: list[str] = []

    def encode(self, texts, **_):
        self.seen.extend(texts)
        out = np.stack([np.random.default_rng(abs(hash((self.tag, t))) % 2**32).normal(size=8)
                        for t in texts]).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def describe(self):
        return {"kind": "counting", "tag": self.tag, "dim": 8}


def test_second_run_reads_back_without_encoding(tmp_path):
    texts = ["a cat", "a dog", "a cat", "a ship"]
    first = CountingEncoder()
    a = CachedTextEncoder(first, tmp_path).encode(texts)
    assert first.seen == ["a cat", "a dog", "a ship"]  # each distinct text once
    second = CountingEncoder()
    b = CachedTextEncoder(second, tmp_path).encode(texts[::-1])
    assert second.seen == []
    np.testing.assert_array_equal(b, a[::-1])


def test_cache_is_keyed_on_the_encoder(tmp_path):
    CachedTextEncoder(CountingEncoder("a"), tmp_path).encode(["x"])
    other = CountingEncoder("b")
    CachedTextEncoder(other, tmp_path).encode(["x"])
    assert other.seen == ["x"]


def test_partial_hits_and_corrupt_shard(tmp_path):
    enc = CountingEncoder()
    cached = CachedTextEncoder(enc, tmp_path)
    ref = cached.encode(["one", "two"])
    for shard in cached.folder.glob("*.npz"):
        shard.write_bytes(b"garbage")
    again = CountingEncoder()
    out = CachedTextEncoder(again, tmp_path).encode(["one", "two", "three"])
    assert again.seen == ["one", "two", "three"]  # unreadable shards are re-encoded
    np.testing.assert_allclose(out[:2], ref)


def test_lazy_encoder_is_not_loaded_when_everything_is_cached(tmp_path):
    loads = []

    def factory():
        loads.append(1)
        return CountingEncoder()

    first = CachedTextEncoder(factory=factory, cache_dir=tmp_path, key={"spec": "count"})
    a = first.encode(["x", "y"])
    assert loads == [1] and first.describe()["kind"] == "counting"
    second = CachedTextEncoder(factory=factory, cache_dir=tmp_path, key={"spec": "count"})
    b = second.encode(["y", "x"])
    assert loads == [1] and not second.loaded  # served from disk, model never loaded
    assert second.dim == 8 and second.describe()["tag"] == "a"
    np.testing.assert_array_equal(b, a[::-1])
