"""create_clusterer: every backend recovers well-separated clusters."""

from __future__ import annotations

import numpy as np
import pytest

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
