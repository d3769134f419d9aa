r"""Downstream clusterers by name: spherical k-means, spectral, agglomerative.

KEC reports that its features work with any clusterer (docs/methods.md §2.5); this factory
gives the three with one interface, ``fit_predict(X) -> labels``. Every clusterer sees
L2-normalised rows, so Euclidean geometry equals cosine geometry for all of them
(:math:`\|x - y\|^2 = 2 - 2\,x \cdot y` for unit vectors). All three are scikit-learn
estimators: ``sklearn.base.clone`` and ``get_params``/``set_params`` work.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from kec.cluster._checks import (
    ClusteringInputError,
    as_features,
    check_n_clusters,
    check_random_state,
)
from kec.cluster.kmeans import SphericalKMeans, _normalize
from kec.cluster.registry import CLUSTERERS

DENSE_AGGLOMERATIVE_MAX = 10_000
"""Above this many samples, agglomerative clustering is restricted to a k-NN graph
(Ward on the full data needs O(N²) memory)."""


class _RowNormalized(ClusterMixin, BaseEstimator):
    """Base: check and L2-normalise rows, build the scikit-learn estimator, ``fit_predict``."""

    name = "base"

    def _make(self, X: np.ndarray) -> Any:
        raise NotImplementedError

    @property
    def params(self) -> dict[str, Any]:
        """Effective scikit-learn parameters (constructor values plus ``extra_params``)."""
        raise NotImplementedError

    def fit(self, X: Any, y: Any = None) -> _RowNormalized:
        """Cluster the L2-normalised rows of ``X``; sets ``labels_`` and ``estimator_``.

        With ``n_clusters`` 1 or ``n_samples`` the partition is forced (one cluster, or
        one sample per cluster): it is returned without the scikit-learn estimator
        (``estimator_`` is ``None``), which cannot run there (spectral clustering's
        eigensolver needs ``n_clusters < n_samples``, both need 2 samples).
        """
        X = _normalize(as_features(X, "features"))
        k = check_n_clusters(self.n_clusters, X.shape[0])
        check_random_state(getattr(self, "random_state", None))
        self.n_features_in_ = X.shape[1]
        if k in (1, X.shape[0]):
            self.estimator_ = None
            self.labels_ = np.zeros(X.shape[0], np.int64) if k == 1 else \
                np.arange(X.shape[0], dtype=np.int64)
            return self
        self.estimator_ = self._make(X)
        self.labels_ = np.asarray(self.estimator_.fit_predict(X), dtype=np.int64)
        return self

    def fit_predict(self, X: Any, y: Any = None, **kwargs: Any) -> np.ndarray:
        """:meth:`fit` and return ``labels_``."""
        return self.fit(X).labels_


class SpectralClusterer(_RowNormalized):
    """:class:`sklearn.cluster.SpectralClustering` on a symmetric k-NN graph of unit rows.

    Parameters
    ----------
    n_clusters : int
        Number of clusters.
    n_neighbors : int
        Neighbours of the graph (capped at ``n_samples - 1``); a k-NN affinity scales to
        tens of thousands of points where an RBF affinity would not.
    assign_labels : str
        scikit-learn's label assignment in the embedding (``"cluster_qr"``: no k-means).
    random_state : int or None
        Seed of the eigensolver and label assignment.
    extra_params : dict or None
        Further :class:`~sklearn.cluster.SpectralClustering` arguments.

    Attributes
    ----------
    labels_ : numpy.ndarray of shape (N,)
        int64 cluster of every row.
    estimator_ : sklearn.cluster.SpectralClustering or None
        The fitted scikit-learn estimator (``None`` when ``n_clusters`` is 1 or the
        number of samples: the partition is then forced).
    n_features_in_ : int
        Dimension ``d`` seen by :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 0.1], [1, -0.1], [1, 0], [0.1, 1], [-0.1, 1], [0, 1]])
    >>> from kec.cluster.clusterers import SpectralClusterer
    >>> labels = SpectralClusterer(2, n_neighbors=4, random_state=0).fit_predict(X)
    >>> bool(labels[0] == labels[1] == labels[2] != labels[3] == labels[4] == labels[5])
    True
    """

    name = "spectral"

    def __init__(self, n_clusters: int = 8, *, n_neighbors: int = 10,
                 assign_labels: str = "cluster_qr", random_state: int | None = None,
                 extra_params: dict[str, Any] | None = None) -> None:
        self.n_clusters = n_clusters
        self.n_neighbors = n_neighbors
        self.assign_labels = assign_labels
        self.random_state = random_state
        self.extra_params = extra_params

    @property
    def params(self) -> dict[str, Any]:
        return {"affinity": "nearest_neighbors", "n_neighbors": self.n_neighbors,
                "assign_labels": self.assign_labels, **(self.extra_params or {})}

    def _make(self, X: np.ndarray) -> Any:
        from sklearn.cluster import SpectralClustering

        p = self.params
        p["n_neighbors"] = int(min(p["n_neighbors"], X.shape[0] - 1)) or 1
        return SpectralClustering(int(self.n_clusters), random_state=self.random_state, **p)


class AgglomerativeClusterer(_RowNormalized):
    """:class:`sklearn.cluster.AgglomerativeClustering` of unit rows (Ward by default).

    Above :data:`DENSE_AGGLOMERATIVE_MAX` samples, merges are restricted to a k-NN
    connectivity graph (Ward on all pairs needs O(N²) memory).

    Parameters
    ----------
    n_clusters : int
        Number of clusters.
    linkage : {"ward", "complete", "average", "single"}
        Merge criterion.
    n_neighbors : int
        Neighbours of the connectivity graph used on large inputs.
    extra_params : dict or None
        Further :class:`~sklearn.cluster.AgglomerativeClustering` arguments (a given
        ``connectivity`` replaces the k-NN graph).

    Attributes
    ----------
    labels_ : numpy.ndarray of shape (N,)
        int64 cluster of every row.
    estimator_ : sklearn.cluster.AgglomerativeClustering or None
        The fitted scikit-learn estimator (``None`` when ``n_clusters`` is 1 or the
        number of samples: the partition is then forced).
    n_features_in_ : int
        Dimension ``d`` seen by :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 0.1], [1, -0.1], [1, 0], [0.1, 1], [-0.1, 1], [0, 1]])
    >>> from kec.cluster.clusterers import AgglomerativeClusterer
    >>> labels = AgglomerativeClusterer(2).fit_predict(X)
    >>> bool(labels[0] == labels[1] == labels[2] != labels[3] == labels[4] == labels[5])
    True
    """

    name = "agglomerative"

    def __init__(self, n_clusters: int = 8, *, linkage: str = "ward", n_neighbors: int = 10,
                 extra_params: dict[str, Any] | None = None) -> None:
        self.n_clusters = n_clusters
        self.linkage = linkage
        self.n_neighbors = n_neighbors
        self.extra_params = extra_params

    @property
    def params(self) -> dict[str, Any]:
        return {"linkage": self.linkage, "n_neighbors": self.n_neighbors,
                **(self.extra_params or {})}

    def _make(self, X: np.ndarray) -> Any:
        from sklearn.cluster import AgglomerativeClustering
        from sklearn.neighbors import kneighbors_graph

        p = self.params
        n_neighbors = int(p.pop("n_neighbors"))
        if "connectivity" not in p and X.shape[0] > DENSE_AGGLOMERATIVE_MAX:
            p["connectivity"] = kneighbors_graph(
                X, n_neighbors=min(n_neighbors, X.shape[0] - 1), include_self=False
            )
        return AgglomerativeClustering(int(self.n_clusters), **p)


def create_clusterer(
    name: str, n_clusters: int, random_state: int | None = 0, *, device: str | None = None,
    **kwargs: Any,
) -> Any:
    """Make a clusterer with ``fit_predict(X) -> labels`` (a scikit-learn estimator).

    Parameters
    ----------
    name : {"kmeans", "spectral", "agglomerative"}
        ``"kmeans"``: :class:`~kec.cluster.kmeans.SphericalKMeans`; ``"spectral"``:
        :class:`SpectralClusterer`; ``"agglomerative"``: :class:`AgglomerativeClusterer`.
    n_clusters : int
        Number of clusters.
    random_state : int or None
        Seed (k-means and spectral).
    device : {None, "cpu", "cuda", "auto"}
        Where k-means computes (``None``: its default, the CPU). Spectral and
        agglomerative clustering are scikit-learn's and always run on the CPU.
    **kwargs
        Estimator parameters (e.g. ``n_init``, ``n_neighbors``, ``linkage``); for spectral
        and agglomerative, unknown ones go to the scikit-learn estimator.

    Returns
    -------
    SphericalKMeans, SpectralClusterer or AgglomerativeClusterer
        Unfitted.

    Raises
    ------
    ClusteringInputError
        Unknown ``name``, or ``n_clusters`` / ``random_state`` invalid.
    """
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) \
            or n_clusters < 1:
        raise ClusteringInputError(f"n_clusters must be an integer >= 1, got {n_clusters!r}")
    check_random_state(random_state)
    if name == "kmeans":
        if device is not None:
            kwargs["device"] = device
        return SphericalKMeans(int(n_clusters), random_state=random_state, **kwargs)
    if name == "spectral":
        own = {key: kwargs.pop(key) for key in ("n_neighbors", "assign_labels") if key in kwargs}
        return SpectralClusterer(int(n_clusters), random_state=random_state,
                                 extra_params=kwargs or None, **own)
    if name == "agglomerative":
        own = {key: kwargs.pop(key) for key in ("n_neighbors", "linkage") if key in kwargs}
        return AgglomerativeClusterer(int(n_clusters), extra_params=kwargs or None, **own)
    raise ClusteringInputError(f"unknown clusterer {name!r}; choose from {CLUSTERERS}")
