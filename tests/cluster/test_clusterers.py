"""create_clusterer: every backend recovers well-separated clusters."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from kec.cluster import (
    ClusteringInputError,
    SphericalKMeans,
    cluster_accuracy,
    clusterers,
    create_clusterer,
)
from tests.cluster.helpers import blobs


@pytest.mark.filterwarnings("ignore:Graph is not fully connected")
@pytest.mark.parametrize("name", ["kmeans", "spectral", "agglomerative"])
def test_backends_recover_blobs(name):
    X, y, _ = blobs(25, 4, seed=6)
    labels = create_clusterer(name, 4, random_state=0).fit_predict(X * 2.0)
    assert labels.shape == (100,)
    assert cluster_accuracy(y, labels) == 1.0


def test_kmeans_is_spherical_kmeans_with_params():
    est = create_clusterer("kmeans", 3, random_state=1, n_init=2)
    assert isinstance(est, SphericalKMeans) and est.n_init == 2


@pytest.mark.filterwarnings("ignore:the number of connected components")
def test_agglomerative_uses_knn_graph_when_large(monkeypatch):
    monkeypatch.setattr(clusterers, "DENSE_AGGLOMERATIVE_MAX", 10)
    X, y, _ = blobs(20, 3, seed=2)
    est = create_clusterer("agglomerative", 3)
    assert cluster_accuracy(y, est.fit_predict(X)) == 1.0
    assert est.estimator_.connectivity is not None


def test_errors():
    X, _, _ = blobs(5, 2)
    with pytest.raises(ClusteringInputError, match="unknown clusterer"):
        create_clusterer("dbscan", 2)
    with pytest.raises(ClusteringInputError, match=">= 1"):
        create_clusterer("spectral", 0)
    with pytest.raises(ClusteringInputError, match="larger than"):
        create_clusterer("agglomerative", 11).fit_predict(X)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ClusteringInputError, match="NaN"):
        create_clusterer("spectral", 2).fit_predict(bad)


@pytest.mark.filterwarnings("ignore:Graph is not fully connected")
@pytest.mark.parametrize("name", ["kmeans", "spectral", "agglomerative"])
def test_clone_gives_an_unfitted_twin_with_the_same_result(name):
    X, _, _ = blobs(15, 3, seed=9)
    est = create_clusterer(name, 3, random_state=2, n_neighbors=7) if name != "kmeans" \
        else create_clusterer(name, 3, random_state=2, n_init=2)
    twin = clone(est)
    assert type(twin) is type(est) and twin.get_params() == est.get_params()
    np.testing.assert_array_equal(twin.fit_predict(X), est.fit_predict(X))
    assert not hasattr(clone(est), "labels_")
    assert twin.set_params(n_clusters=2).fit_predict(X).max() == 1


def test_params_reach_the_sklearn_estimator():
    X, _, _ = blobs(10, 2, seed=3)
    spec = create_clusterer("spectral", 2, n_neighbors=500, eigen_tol=1e-5)
    assert spec.get_params()["extra_params"] == {"eigen_tol": 1e-5}
    spec.fit(X)
    assert spec.estimator_.n_neighbors == 19 and spec.estimator_.eigen_tol == 1e-5
    agg = create_clusterer("agglomerative", 2, linkage="average").fit(X)
    assert agg.estimator_.linkage == "average" and agg.params["linkage"] == "average"


def test_device_goes_to_kmeans_only():
    assert create_clusterer("kmeans", 2, device="cpu").device == "cpu"
    assert "device" not in create_clusterer("spectral", 2, device="cpu").get_params()


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", ["kmeans", "spectral", "agglomerative"])
@pytest.mark.parametrize("n", [1, 2, 3, 7])
@pytest.mark.parametrize("same", [False, True])
def test_every_k_from_1_to_n_works_on_tiny_inputs(name, n, same):
    """K = N, N = 2 and N = 1 used to crash spectral (eigsh needs K < N) and both
    scikit-learn clusterers (2 samples at least); the forced partitions are returned."""
    X = np.random.default_rng(n).normal(size=(n, 5))
    if same:
        X[:] = X[0]
    for k in range(1, n + 1):
        labels = create_clusterer(name, k, random_state=0).fit_predict(X)
        assert labels.shape == (n,) and labels.min() >= 0 and labels.max() < k
        if k == n and not same:
            assert sorted(labels.tolist()) == list(range(n))  # one sample per cluster
        if k == 1:
            assert not labels.any()


@pytest.mark.parametrize("name", ["kmeans", "spectral", "agglomerative"])
def test_a_negative_seed_is_a_clear_error(name):
    with pytest.raises(ClusteringInputError, match=r"random_state must be .*got -1"):
        create_clusterer(name, 2, random_state=-1).fit_predict(np.eye(4))
