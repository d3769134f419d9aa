"""Clustering metrics: ACC (Hungarian matching), NMI, ARI (docs/methods.md §6)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from kec.cluster._checks import ClusteringInputError


def _encode(y: Sequence[Any] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ClusteringInputError(f"{name} must be 1-D, got shape {arr.shape}")
    return np.unique(arr, return_inverse=True)[1].reshape(-1)


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = _encode(y_true, "y_true")
    p = _encode(y_pred, "y_pred")
    if t.shape[0] != p.shape[0]:
        raise ClusteringInputError(
            f"y_true has {t.shape[0]} labels but y_pred has {p.shape[0]}"
        )
    if t.shape[0] == 0:
        raise ClusteringInputError("no labels to evaluate")
    return t, p


def contingency_table(y_true: Any, y_pred: Any) -> np.ndarray:
    """``(n_clusters, n_classes)`` counts of points per (cluster, class) pair.

    Classes and clusters are indexed in sorted order of their labels.
    """
    t, p = _pair(y_true, y_pred)
    table = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(table, (p, t), 1)
    return table


def cluster_accuracy(y_true: Any, y_pred: Any) -> float:
    r"""Clustering accuracy under the best one-to-one map of clusters to classes.

    .. math::  \mathrm{ACC} = \max_{m} \frac1N \sum_i \mathbf 1[y_i = m(\hat y_i)]

    where :math:`m` is injective, found by the Hungarian algorithm
    (:func:`scipy.optimize.linear_sum_assignment`) on the contingency table. With more
    clusters than classes the extra clusters match nothing and count as errors; with
    fewer, the extra classes do (docs/methods.md §6).

    Parameters
    ----------
    y_true : array-like of shape (N,)
        Ground-truth classes (any hashable labels).
    y_pred : array-like of shape (N,)
        Predicted clusters (any hashable labels).

    Returns
    -------
    float
        ACC in ``[0, 1]``.

    Raises
    ------
    ClusteringInputError
        Labels not 1-D, of different lengths, or empty.
    """
    table = contingency_table(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def nmi(y_true: Any, y_pred: Any) -> float:
    """Normalised mutual information (arithmetic mean), scikit-learn's definition.

    Parameters
    ----------
    y_true : array-like of shape (N,)
        Ground-truth classes (any hashable labels).
    y_pred : array-like of shape (N,)
        Predicted clusters (any hashable labels).

    Returns
    -------
    float
        NMI in ``[0, 1]``.
    """
    t, p = _pair(y_true, y_pred)
    return float(normalized_mutual_info_score(t, p))


def ari(y_true: Any, y_pred: Any) -> float:
    """Adjusted Rand index, scikit-learn's definition.

    Parameters
    ----------
    y_true : array-like of shape (N,)
        Ground-truth classes (any hashable labels).
    y_pred : array-like of shape (N,)
        Predicted clusters (any hashable labels).

    Returns
    -------
    float
        ARI: 1 for identical partitions, about 0 for independent ones, at least -0.5.
    """
    t, p = _pair(y_true, y_pred)
    return float(adjusted_rand_score(t, p))


def evaluate(y_true: Any, y_pred: Any) -> dict[str, float | int]:
    """ACC, NMI and ARI of a partition, with its sizes.

    Parameters
    ----------
    y_true : array-like of shape (N,)
        Ground-truth classes (any hashable labels).
    y_pred : array-like of shape (N,)
        Predicted clusters (any hashable labels).

    Returns
    -------
    dict
        ``acc``, ``nmi`` (floats in ``[0, 1]``), ``ari`` (float, 1 at best, negative
        below chance), ``n_samples``, ``n_classes``, ``n_clusters`` (ints).

    Examples
    --------
    >>> from kec.cluster.metrics import evaluate
    >>> evaluate(["a", "a", "b", "b"], [1, 1, 0, 0])["acc"]
    1.0
    """
    t, p = _pair(y_true, y_pred)
    return {
        "acc": cluster_accuracy(t, p),
        "nmi": nmi(t, p),
        "ari": ari(t, p),
        "n_samples": int(t.shape[0]),
        "n_classes": int(t.max() + 1),
        "n_clusters": int(p.max() + 1),
    }
