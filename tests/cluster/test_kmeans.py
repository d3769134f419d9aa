"""SphericalKMeans: recovery, determinism, empty clusters, objective, errors."""

from __future__ import annotations

import numpy as np
import pytest

from kec.cluster import ClusteringInputError, SphericalKMeans, cluster_accuracy
from kec.cluster.kmeans import _update_centres, auto_n_init
from tests.cluster.helpers import blobs, random_unit, unit


def test_recovers_separated_clusters():
    X, y, _ = blobs(30, 6, seed=3)
    km = SphericalKMeans(6, random_state=0).fit(X)
    assert cluster_accuracy(y, km.labels_) == 1.0
    assert km.cluster_centers_.shape == (6, 16)
    np.testing.assert_allclose(np.linalg.norm(km.cluster_centers_, axis=1), 1, rtol=1e-5)
    # each centre is the normalised mean of its members
    for c in range(6):
        np.testing.assert_allclose(km.cluster_centers_[c], unit(X[km.labels_ == c].mean(0)),
                                   atol=1e-5)
    assert km.objective_ == pytest.approx(float(np.mean(
        (X * km.cluster_centers_[km.labels_]).sum(1))), rel=1e-6)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    np.testing.assert_array_equal(km.fit_predict(X), km.labels_)


def test_scale_invariant_and_deterministic():
    X, _, _ = blobs(20, 4, seed=5)
    a = SphericalKMeans(4, random_state=7).fit_predict(X)
    b = SphericalKMeans(4, random_state=7).fit_predict(X * 3.5)
    np.testing.assert_array_equal(a, b)


def test_hand_example_two_directions():
    X = unit(np.array([[1, 0.1], [1, -0.1], [0.1, 1], [-0.1, 1]], dtype=float))
    km = SphericalKMeans(2, init=np.array([[1.0, 0.0], [0.0, 1.0]])).fit(X)
    np.testing.assert_array_equal(km.labels_, [0, 0, 1, 1])
    np.testing.assert_allclose(km.cluster_centers_, [[1, 0], [0, 1]], atol=1e-6)
    assert km.n_init_ == 1
    assert km.inertia_ == pytest.approx(4 * (1 - 1 / np.sqrt(1.01)), rel=1e-5)


def test_empty_cluster_takes_the_farthest_point():
    X = unit(np.array([[1, 0], [0.99, 0.14], [0, 1], [-0.6, -0.8]], dtype=float))
    labels = np.array([0, 0, 0, 0])
    best = (X * X[0]).sum(axis=1)
    C, n_empty = _update_centres(X, labels, best, 2)
    assert n_empty == 1
    np.testing.assert_allclose(C[1], X[3], atol=1e-6)  # lowest similarity to its centre
    # through fit: two identical seeds leave one cluster empty at first
    km = SphericalKMeans(3, init=np.array([[1.0, 0], [1.0, 0], [0, 1.0]])).fit(X)
    assert len(np.unique(km.labels_)) == 3
    assert km.n_empty_reassigned_ >= 1


def test_k_equals_n_and_k_one():
    X = random_unit(7, 5, seed=1)
    assert sorted(SphericalKMeans(7, random_state=0).fit_predict(X)) == list(range(7))
    assert set(SphericalKMeans(1, random_state=0).fit_predict(X)) == {0}


def test_better_than_or_equal_to_random_seeding_objective():
    X, _, _ = blobs(25, 8, spread=0.6, seed=2)
    pp = SphericalKMeans(8, n_init=5, random_state=0).fit(X)
    rnd = SphericalKMeans(8, n_init=1, init="random", random_state=0).fit(X)
    assert pp.objective_ >= rnd.objective_ - 1e-6


def test_init_size_subsample_still_recovers():
    X, y, _ = blobs(30, 5, seed=4)
    km = SphericalKMeans(5, init_size=20, random_state=0).fit(X)
    assert cluster_accuracy(y, km.labels_) == 1.0


def test_auto_n_init():
    assert auto_n_init(10_000, 10, 512) == 10
    assert auto_n_init(50_000, 100, 512) == 3
    assert auto_n_init(50_000, 1000, 512) == 1


@pytest.mark.parametrize("k,match", [(0, ">= 1"), (-2, ">= 1"), (11, "larger than"),
                                     (2.5, "integer"), (True, "integer")])
def test_bad_n_clusters(k, match):
    with pytest.raises(ClusteringInputError, match=match):
        SphericalKMeans(k).fit(random_unit(10, 3))


def test_bad_features():
    X = random_unit(10, 3)
    X[4, 1] = np.nan
    with pytest.raises(ClusteringInputError, match="NaN"):
        SphericalKMeans(2).fit(X)
    X[4] = np.inf
    with pytest.raises(ClusteringInputError, match="NaN or infinite"):
        SphericalKMeans(2).fit(X)
    X[4] = 0.0
    with pytest.raises(ClusteringInputError, match="zero norm"):
        SphericalKMeans(2).fit(X)
    with pytest.raises(ClusteringInputError, match="2-D"):
        SphericalKMeans(2).fit(np.ones(5))


def test_bad_parameters_and_predict_errors():
    X = random_unit(10, 3)
    with pytest.raises(ClusteringInputError, match="init"):
        SphericalKMeans(2, init="kmeans||").fit(X)
    with pytest.raises(ClusteringInputError, match="shape"):
        SphericalKMeans(2, init=np.ones((3, 3))).fit(X)
    with pytest.raises(ClusteringInputError, match="n_init"):
        SphericalKMeans(2, n_init=0).fit(X)
    with pytest.raises(ClusteringInputError, match="not fitted"):
        SphericalKMeans(2).predict(X)
    km = SphericalKMeans(2, random_state=0).fit(X)
    with pytest.raises(ClusteringInputError, match="dimension mismatch"):
        km.predict(random_unit(4, 5))
    assert km.set_params(n_clusters=3).get_params()["n_clusters"] == 3
