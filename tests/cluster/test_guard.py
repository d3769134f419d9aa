"""Guarded fusion: the three modes, Lloyd's fixed point, and the data's last word."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kec.cluster import guard
from kec.cluster.guard import GuardDecision, decide, guarded_cluster, lloyd_refine
from tests.cluster.helpers import blobs, unit


def test_knowledge_that_matches_the_data_refines():
    X, y, centres = blobs(40, 4, d=16, spread=0.4, seed=1)
    c = unit(centres[y] + 0.05)  # concept view: the true class directions
    dec = decide(X, c, c, 4)
    assert dec.mode == "refine" and dec.agreement > 0.9 and dec.consistency > 0.9


def test_inconsistent_knowledge_is_not_used():
    X, _, _ = blobs(40, 4, d=16, spread=0.4, seed=1)
    rng = np.random.default_rng(0)
    c, a = unit(rng.standard_normal(X.shape)), unit(rng.standard_normal(X.shape))
    dec = decide(X, c, a, 4)
    assert dec.mode == "data" and dec.consistency < 0.2


def test_consistent_knowledge_unrelated_to_the_data_leads():
    X, _, _ = blobs(40, 4, d=16, spread=0.4, seed=1)
    rng = np.random.default_rng(0)
    other = rng.permutation(X.shape[0]) % 4  # a partition independent of X's clusters
    dirs = unit(rng.standard_normal((4, 16)))
    c = unit(dirs[other] + 0.05 * rng.standard_normal(X.shape))
    dec = decide(X, c, c, 4)
    assert dec.mode == "knowledge" and dec.agreement < 0.2


def test_refine_keeps_kmeans_when_it_fits_the_data_better(monkeypatch):
    X, y, _ = blobs(40, 4, d=16, spread=0.4, seed=2)
    rng = np.random.default_rng(1)
    bad = rng.integers(0, 4, X.shape[0])
    good = y.copy()

    def fake_decide(*_, **__):
        return GuardDecision("refine", 0.9, 0.9, bad, good, {"mode": "refine"})

    monkeypatch.setattr(guard, "decide", fake_decide)
    # a random start may still converge to the classes; force a poor fixed point
    monkeypatch.setattr(guard, "lloyd_refine", lambda F, labels, k, max_iter=100: (labels, 1))
    labels, _, dec = guarded_cluster(X, X, X, 4)
    assert dec.info["kept"] == "kmeans"
    np.testing.assert_array_equal(labels, good)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 5))
def test_lloyd_returns_a_fixed_point(seed, k):
    rng = np.random.default_rng(seed)
    F = unit(rng.standard_normal((60, 8)))
    labels, _ = lloyd_refine(F, rng.integers(0, k, 60), k)
    again, it = lloyd_refine(F, labels, k)
    np.testing.assert_array_equal(again, labels)
    assert it == 1
