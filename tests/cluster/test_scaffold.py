"""TAC scaffold and KEC merging: counts, selection, counterpart, merging, groups document."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kec.cluster import ClusteringInputError
from kec.cluster.scaffold import (
    build_groups,
    merge_overclusters,
    n_overclusters,
    overcluster,
    overcluster_similarity,
    select_nouns,
    select_top_texts,
    text_counterpart,
)
from tests.cluster.helpers import blobs, unit


@pytest.mark.parametrize("n,rule,n_classes,expected", [
    (5_000, "n/300", None, 17),         # STL-10 train
    (50_000, "n/300", None, 167),       # CIFAR-10 train
    (13_000, "n/300", None, 43),        # ImageNet-10
    (19_500, "n/300", None, 65),        # ImageNet-Dogs
    (1_281_167, "n/300", None, 4271),   # ImageNet-1K train
    (5_640, "3k", 47, 141),             # DTD
    (13_320, "3k", 101, 303),           # UCF101
    (100, "n/300", None, 1),            # at least one
    (10, 50, None, 10),                 # at most N
    (1000, "25", None, 25),
])
def test_n_overclusters_matches_methods_table(n, rule, n_classes, expected):
    assert n_overclusters(n, rule, n_classes=n_classes) == expected


def test_n_overclusters_errors():
    with pytest.raises(ClusteringInputError, match="number of classes"):
        n_overclusters(100, "3k")
    with pytest.raises(ClusteringInputError, match="bad over-cluster rule"):
        n_overclusters(100, "sqrt")


def test_select_nouns_hand_example():
    centres = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    nouns = unit(np.array([[1, 0.0], [1, 0.2], [1, 0.5], [0.1, 1], [0.3, 1], [1, 1.0001]]))
    sel = select_nouns(centres, nouns, top_k=2, temperature=0.1)
    # nouns 0-2 prefer centre 0 (most confident first), 3-5 centre 1
    np.testing.assert_array_equal(sel.assignment, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(sel.per_centre[0], [0, 1])
    np.testing.assert_array_equal(sel.per_centre[1], [3, 4])
    np.testing.assert_array_equal(sel.indices, [0, 1, 3, 4])
    logits = nouns @ centres.T / 0.1
    p = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(sel.score, (p / p.sum(1, keepdims=True)).max(1), rtol=1e-5)


def test_select_nouns_centre_without_nouns_keeps_none():
    centres = np.array([[1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)
    nouns = unit(np.array([[1, 0.1], [1, -0.1]]))
    sel = select_nouns(centres, nouns, top_k=5)
    assert sel.per_centre[1].size == 0 and sel.indices.tolist() == [0, 1]


def test_select_top_texts_per_centre():
    centres = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    texts = unit(np.array([[1, 0.0], [1, 0.2], [1, 0.5], [0.1, 1], [0.3, 1]]))
    sel = select_top_texts(centres, texts, top_k=2)
    np.testing.assert_array_equal(sel.per_centre[0], [0, 1])
    np.testing.assert_array_equal(sel.per_centre[1], [3, 4])
    # a text may be kept by several centres; the union has no repeats
    sel3 = select_top_texts(centres, texts, top_k=5)
    np.testing.assert_array_equal(sel3.indices, np.arange(5))


def test_text_counterpart_formula():
    X = unit(np.array([[1.0, 0.2, 0.0], [0.0, 1.0, 0.3]]))
    T = unit(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    tau = 0.5
    w = np.exp(X.astype(float) @ T.T / tau)
    w /= w.sum(1, keepdims=True)
    expected = unit(w @ T)
    np.testing.assert_allclose(text_counterpart(X, T, tau), expected, atol=1e-6)
    # the default tau = 0.005 is nearly an argmax
    np.testing.assert_allclose(text_counterpart(X, T)[0], [1, 0, 0], atol=1e-6)


def test_overcluster_similarity_and_merge_hand_example():
    centres = unit(np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]))
    texts = unit(np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]))
    per_centre = [np.array([0]), np.array([0, 1]), np.array([], dtype=np.int64)]
    R = overcluster_similarity(centres, texts, per_centre, alpha=0.8)
    t1 = unit(texts[[0, 1]].mean(0))
    assert R[0, 1] == pytest.approx(0.8 * 0.8 + 0.2 * float(texts[0] @ t1), rel=1e-6)
    assert R[0, 2] == pytest.approx(0.0, abs=1e-6)      # no nouns: visual similarity alone
    assert R[1, 2] == pytest.approx(0.6, abs=1e-6)
    assert merge_overclusters(R, beta=0.8) == [[0, 1], [2]]
    assert merge_overclusters(R, beta=0.5) == [[0, 1, 2]]
    assert merge_overclusters(R, beta=0.99) == [[0], [1], [2]]


def _scaffold_data():
    X, y, centres = blobs(40, 4, d=8, spread=0.1, seed=11)
    rng = np.random.default_rng(0)
    names = ["apple", "boat", "cloud", "drum"]
    nouns, labels = [], []
    for c, name in enumerate(names):
        for j in range(4):
            nouns.append(centres[c] + 0.3 * rng.standard_normal(8) / np.sqrt(8))
            labels.append(f"{name} {j}")
    return X, y, unit(np.array(nouns)), labels


def test_overcluster_returns_unit_centres():
    X, _, _, _ = _scaffold_data()
    labels, centres = overcluster(X, 8, random_state=0)
    assert labels.shape == (160,) and centres.shape == (8, 8)
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 1, rtol=1e-5)


def test_build_groups_document():
    X, _, nouns, labels = _scaffold_data()
    doc = build_groups(X, nouns, labels, n_overclusters=8, top_k=3, random_state=0)
    json.dumps(doc)  # serialisable
    assert doc["kind"] == "kec.groups" and doc["version"] == 1
    assert set(doc) >= {"groups", "params", "source"}
    groups = doc["groups"]
    # 8 over-clusters of 4 visual classes merge into one group per class
    assert len(groups) == 4
    assert [g["id"] for g in groups] == ["g0000", "g0001", "g0002", "g0003"]
    for g in groups:
        assert g["size"] == 40
        words = {lab.split()[0] for lab in g["labels"]}
        assert len(words) == 1  # every group speaks about one class
        assert len(g["labels"]) == len(set(g["labels"])) <= 3 * len(g["members"])
    assert sorted(m for g in groups for m in g["members"]) == list(range(8))
    assert doc["params"]["n_overclusters"] == 8
    assert doc == build_groups(X, nouns, labels, n_overclusters=8, top_k=3, random_state=0)


def test_build_groups_without_merge_and_errors():
    X, _, nouns, labels = _scaffold_data()
    doc = build_groups(X, nouns, labels, n_overclusters=8, merge=False, random_state=0)
    assert sum(len(g["members"]) for g in doc["groups"]) + 0 <= 8
    assert all(len(g["members"]) == 1 for g in doc["groups"])
    with pytest.raises(ClusteringInputError, match="noun labels"):
        build_groups(X, nouns, labels[:-1], n_overclusters=4)
    with pytest.raises(ClusteringInputError, match="dimension mismatch"):
        build_groups(X, nouns[:, :4], labels, n_overclusters=4)
    with pytest.raises(ClusteringInputError, match="larger than"):
        build_groups(X[:3], nouns, labels, n_overclusters=4)
