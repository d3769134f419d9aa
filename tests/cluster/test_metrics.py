"""ACC (Hungarian), NMI, ARI: hand-computed values and invariances."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kec.cluster import ClusteringInputError, ari, cluster_accuracy, evaluate, nmi
from kec.cluster.metrics import contingency_table


def test_hand_computed_accuracy():
    y_true = [0, 0, 0, 1, 1, 1, 2, 2]
    y_pred = [1, 1, 0, 0, 0, 0, 2, 2]
    # contingency (cluster x class): c0={0:1, 1:3}, c1={0:2}, c2={2:2}
    np.testing.assert_array_equal(contingency_table(y_true, y_pred),
                                  [[1, 3, 0], [2, 0, 0], [0, 0, 2]])
    # best map c0->1, c1->0, c2->2: 3 + 2 + 2 = 7 of 8
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(7 / 8)


def test_more_clusters_than_classes_and_fewer():
    y_true = [0, 0, 1, 1]
    assert cluster_accuracy(y_true, [0, 1, 2, 3]) == pytest.approx(2 / 4)
    assert cluster_accuracy([0, 1, 2, 3], [0, 0, 1, 1]) == pytest.approx(2 / 4)
    assert cluster_accuracy(["cat", "cat", "dog"], ["b", "b", "a"]) == 1.0


def test_evaluate_keys_and_values():
    out = evaluate(["a", "a", "b", "b"], [1, 1, 0, 0])
    assert out == {"acc": 1.0, "nmi": 1.0, "ari": 1.0, "n_samples": 4, "n_classes": 2,
                   "n_clusters": 2}
    assert nmi([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0, abs=1e-12)
    assert ari([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)


labels = st.lists(st.integers(0, 5), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_invariant_to_relabelling_predictions(data):
    y_true = data.draw(labels)
    y_pred = data.draw(st.lists(st.integers(0, 6), min_size=len(y_true), max_size=len(y_true)))
    perm = data.draw(st.permutations(range(7)))
    relabelled = [perm[p] for p in y_pred]
    assert cluster_accuracy(y_true, relabelled) == pytest.approx(cluster_accuracy(y_true, y_pred))
    assert nmi(y_true, relabelled) == pytest.approx(nmi(y_true, y_pred))
    assert ari(y_true, relabelled) == pytest.approx(ari(y_true, y_pred))
    assert 0.0 <= cluster_accuracy(y_true, y_pred) <= 1.0


@settings(max_examples=40, deadline=None)
@given(y=labels, data=st.data())
def test_perfect_clustering_relabelled_scores_one(y, data):
    perm = data.draw(st.permutations(range(6)))
    pred = [perm[v] + 10 for v in y]
    assert cluster_accuracy(y, pred) == 1.0
    assert ari(y, pred) == pytest.approx(1.0)
    assert nmi(y, pred) == pytest.approx(1.0)


def test_errors():
    with pytest.raises(ClusteringInputError, match="has 2 labels"):
        evaluate([0, 1], [0, 1, 1])
    with pytest.raises(ClusteringInputError, match="no labels"):
        cluster_accuracy([], [])
    with pytest.raises(ClusteringInputError, match="1-D"):
        nmi([[0, 1]], [[0, 1]])
