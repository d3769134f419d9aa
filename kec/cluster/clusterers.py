"""Downstream clusterers by name: spherical k-means, spectral, agglomerative.

KEC reports that its features work with any clusterer (METHODS.md §2.5); this factory
gives the three with one interface, ``fit_predict(X) -> labels``. Every clusterer sees
L2-normalised rows, so Euclidean geometry equals cosine geometry for all of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kec.cluster._checks import ClusteringInputError, as_features, check_n_clusters
from kec.cluster.kmeans import SphericalKMeans, _normalize

CLUSTERERS = ("kmeans", "spectral", "agglomerative")
DENSE_AGGLOMERATIVE_MAX = 10_000
"""Above this many samples, agglomerative clustering is restricted to a k-NN graph
(Ward on the full data needs O(N²) memory)."""


class _RowNormalized:
    """Wrap a scikit-learn clusterer: check and L2-normalise rows, then ``fit_predict``."""

    def __init__(self, name: str, n_clusters: int, factory: Any, params: dict[str, Any]) -> None:
        self.name = name
        self.n_clusters = n_clusters
        self._factory = factory
        self.params = params

    def fit(self, X: Any, y: Any = None) -> _RowNormalized:
        X = _normalize(as_features(X, "features"))
        check_n_clusters(self.n_clusters, X.shape[0])
        self.estimator_ = self._factory(X)
        self.labels_ = np.asarray(self.estimator_.fit_predict(X), dtype=np.int64)
        return self

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X).labels_

    def __repr__(self) -> str:
        return f"{self.name}(n_clusters={self.n_clusters}, {self.params})"


def create_clusterer(
    name: str, n_clusters: int, random_state: int | None = 0, **kwargs: Any
) -> Any:
    """Make a clusterer with ``fit_predict(X) -> labels``.

    Parameters
    ----------
    name : {"kmeans", "spectral", "agglomerative"}
        ``"kmeans"``: :class:`~kec.cluster.kmeans.SphericalKMeans`; ``"spectral"``:
        :class:`sklearn.cluster.SpectralClustering` on a symmetric k-nearest-neighbour
        graph (``n_neighbors=10``, ``assign_labels="cluster_qr"``), which scales to
        tens of thousands of points where an RBF affinity would not; ``"agglomerative"``:
        :class:`sklearn.cluster.AgglomerativeClustering` with Ward linkage, restricted to
        a k-NN connectivity graph above :data:`DENSE_AGGLOMERATIVE_MAX` samples.
    n_clusters : int
        Number of clusters.
    random_state : int or None
        Seed (k-means and spectral).
    **kwargs
        Passed to the estimator (e.g. ``n_init``, ``n_neighbors``, ``linkage``).
    """
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) \
            or n_clusters < 1:
        raise ClusteringInputError(f"n_clusters must be an integer >= 1, got {n_clusters!r}")
    if name == "kmeans":
        return SphericalKMeans(int(n_clusters), random_state=random_state, **kwargs)
    if name == "spectral":
        from sklearn.cluster import SpectralClustering

        params = {"affinity": "nearest_neighbors", "n_neighbors": 10,
                  "assign_labels": "cluster_qr", **kwargs}

        def spectral(X: np.ndarray) -> Any:
            p = dict(params)
            p["n_neighbors"] = int(min(p["n_neighbors"], X.shape[0] - 1)) or 1
            return SpectralClustering(int(n_clusters), random_state=random_state, **p)

        return _RowNormalized("spectral", int(n_clusters), spectral, params)
    if name == "agglomerative":
        from sklearn.cluster import AgglomerativeClustering
        from sklearn.neighbors import kneighbors_graph

        params = {"linkage": "ward", "n_neighbors": 10, **kwargs}

        def agglomerative(X: np.ndarray) -> Any:
            p = dict(params)
            n_neighbors = int(p.pop("n_neighbors"))
            if "connectivity" not in p and X.shape[0] > DENSE_AGGLOMERATIVE_MAX:
                p["connectivity"] = kneighbors_graph(
                    X, n_neighbors=min(n_neighbors, X.shape[0] - 1), include_self=False
                )
            return AgglomerativeClustering(int(n_clusters), **p)

        return _RowNormalized("agglomerative", int(n_clusters), agglomerative, params)
    raise ClusteringInputError(f"unknown clusterer {name!r}; choose from {CLUSTERERS}")
