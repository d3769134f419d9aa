r"""Guarded fusion: decide, from the data, how far to trust the knowledge.

Grounded knowledge can help a lot (when the raw features are dominated by a nuisance,
such as a photo's background) and can hurt a lot (when the knowledge is poor, or the
raw features already separate the classes). kec measures two things on the items
themselves and chooses one of three ways to cluster (docs/methods.md §4.3):

**Consistency** :math:`s_{ca}` — does the knowledge agree with itself on this data?
The items are clustered twice, once on their grounded concept feature :math:`c_i` and
once on their grounded attribute feature :math:`a_i`, and

.. math::
    s_{ca} = \mathrm{NMI}(P_c, P_a).

Good knowledge has attributes that describe its concepts, so items that ground to a
concept also ground to its attributes and the two partitions agree. Placeholder or
unrelated attributes, or concepts that do not describe the items, give partitions
that agree by chance only.

**Agreement** :math:`s_{xc} = \mathrm{NMI}(P_x, P_c)` — do the raw features' own
clusters :math:`P_x` (k-means on :math:`x_i`) describe the same partition as the
knowledge?

Decision (thresholds are kec's choices, parameters of :func:`decide`):

``refine``
    :math:`s_{xc} \ge \theta_x`: the raw features' own clusters are close to the
    knowledge's; start from the knowledge partition, refine it on :math:`x` alone
    (spherical Lloyd iterations), and keep it only if it fits :math:`x` better than
    k-means with restarts does (higher spherical objective): the knowledge proposes a
    basin, the data has the last word.
``knowledge``
    :math:`s_{xc} < \theta_x` and :math:`s_{ca} \ge \theta_c`: the knowledge is
    self-consistent but the raw features' dominant structure is unrelated to it (a
    nuisance); start from the knowledge partition and refine it on
    :math:`[x_i ; \beta \hat c_i ; \beta \hat a_i]`.
``data``
    otherwise (knowledge that disagrees with the data and is not self-consistent):
    cluster :math:`x` alone (k-means with restarts). The knowledge still names the
    clusters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kec.cluster._checks import ClusteringInputError, l2_normalize_rows

MODES = ("data", "refine", "knowledge")
DEFAULT_CONSISTENCY = 0.5
DEFAULT_AGREEMENT = 0.5
DEFAULT_BETA = 1.0


@dataclass
class GuardDecision:
    """What :func:`decide` measured and chose.

    Attributes
    ----------
    mode : str
        ``"data"``, ``"refine"`` or ``"knowledge"``.
    consistency : float or None
        :math:`s_{ca}` (``None`` without an attribute level).
    agreement : float
        :math:`s_{xc}`.
    knowledge_labels, data_labels : numpy.ndarray
        :math:`P_c` and :math:`P_x`.
    info : dict
        JSON-ready summary (thresholds and scores).
    """

    mode: str
    consistency: float | None
    agreement: float
    knowledge_labels: np.ndarray
    data_labels: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def _kmeans(F: np.ndarray, k: int, random_state: int | None, n_init: Any,
            device: str | None = None) -> np.ndarray:
    from kec.cluster.kmeans import SphericalKMeans

    km = SphericalKMeans(n_clusters=k, random_state=random_state, n_init=n_init,
                         device=device or "cpu")
    return np.asarray(km.fit_predict(F), dtype=np.int64)


def _nmi(a: np.ndarray, b: np.ndarray) -> float:
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(a, b))


def lloyd_refine(
    F: np.ndarray, labels: np.ndarray, n_clusters: int, *, max_iter: int = 100
) -> tuple[np.ndarray, int]:
    r"""Spherical Lloyd iterations on ``F`` started from the partition ``labels``.

    .. math::
        \mu_k = \mathrm{normalize}\Big(\sum_{i: y_i = k} f_i\Big), \qquad
        y_i \leftarrow \arg\max_k f_i \cdot \mu_k

    until no label changes or ``max_iter``. A cluster that empties keeps its last
    centre (it may win items back). Returns ``(labels, iterations)``.
    """
    F = np.asarray(F, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64).copy()
    if y.shape != (F.shape[0],) or (y.size and (y.min() < 0 or y.max() >= n_clusters)):
        raise ClusteringInputError("labels must be (N,) ints in 0..n_clusters-1")
    centres = np.zeros((n_clusters, F.shape[1]), dtype=np.float64)
    it = 0
    while it < max_iter:
        it += 1
        sums = np.zeros_like(centres)
        np.add.at(sums, y, F)
        filled = np.linalg.norm(sums, axis=1) > 0
        centres[filled] = sums[filled]
        centres = l2_normalize_rows(centres)
        new = (F @ centres.T.astype(np.float32)).argmax(axis=1)
        if np.array_equal(new, y):
            break
        y = new
    return y, it


def decide(
    X: np.ndarray,
    concept: np.ndarray,
    attribute: np.ndarray | None,
    n_clusters: int,
    *,
    consistency_threshold: float = DEFAULT_CONSISTENCY,
    agreement_threshold: float = DEFAULT_AGREEMENT,
    random_state: int | None = 0,
    n_init: Any = "auto",
    device: str | None = None,
) -> GuardDecision:
    """Measure consistency and agreement and pick the mode (see the module docstring).

    Parameters
    ----------
    X : numpy.ndarray
        ``(N, d)`` raw features.
    concept : numpy.ndarray
        ``(N, d)`` grounded concept features :math:`c_i`.
    attribute : numpy.ndarray or None
        ``(N, d)`` grounded attribute features :math:`a_i` (``None``: knowledge without
        attributes; consistency cannot be measured, so the mode is ``refine`` or
        ``data``).
    n_clusters : int
        K.
    consistency_threshold, agreement_threshold : float
        :math:`\\theta_c` and :math:`\\theta_x`.
    random_state, n_init, device
        Of the three k-means runs.
    """
    k = int(n_clusters)
    p_c = _kmeans(l2_normalize_rows(np.array(concept, dtype=np.float32)), k, random_state,
                  n_init, device)
    p_x = _kmeans(X, k, random_state, n_init, device)
    agreement = _nmi(p_x, p_c)
    consistency = None
    if attribute is not None:
        p_a = _kmeans(l2_normalize_rows(np.array(attribute, dtype=np.float32)), k,
                      random_state, n_init, device)
        consistency = _nmi(p_c, p_a)
    if agreement >= agreement_threshold:
        mode = "refine"
    elif consistency is not None and consistency >= consistency_threshold:
        mode = "knowledge"
    else:
        mode = "data"
    info = {"mode": mode,
            "consistency": None if consistency is None else round(consistency, 4),
            "agreement": round(agreement, 4),
            "consistency_threshold": consistency_threshold,
            "agreement_threshold": agreement_threshold}
    return GuardDecision(mode, consistency, agreement, p_c, p_x, info)


def guarded_cluster(
    X: np.ndarray,
    concept: np.ndarray,
    attribute: np.ndarray | None,
    n_clusters: int,
    *,
    beta: float = DEFAULT_BETA,
    consistency_threshold: float = DEFAULT_CONSISTENCY,
    agreement_threshold: float = DEFAULT_AGREEMENT,
    random_state: int | None = 0,
    n_init: Any = "auto",
    max_iter: int = 100,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray, GuardDecision]:
    r"""Cluster with the mode :func:`decide` picks; returns ``(labels, features, decision)``.

    ``features`` is the matrix the final partition is a Lloyd fixed point of:
    :math:`x` (``data``, ``refine``) or :math:`[x ; \beta\hat c ; \beta\hat a]`
    (``knowledge``; without attributes :math:`[x ; \beta\hat c]`).
    """
    if beta < 0 or not np.isfinite(beta):
        raise ClusteringInputError(f"beta must be a finite number >= 0, got {beta}")
    dec = decide(X, concept, attribute, n_clusters,
                 consistency_threshold=consistency_threshold,
                 agreement_threshold=agreement_threshold, random_state=random_state,
                 n_init=n_init, device=device)
    X = np.asarray(X, dtype=np.float32)
    if dec.mode == "data":
        dec.info["iterations"] = 0
        return dec.data_labels, X, dec
    if dec.mode == "refine":
        feats = X
    else:
        parts = [X, np.float32(beta) * l2_normalize_rows(np.array(concept, dtype=np.float32))]
        if attribute is not None:
            parts.append(np.float32(beta)
                         * l2_normalize_rows(np.array(attribute, dtype=np.float32)))
        feats = np.concatenate(parts, axis=1)
    labels, it = lloyd_refine(feats, dec.knowledge_labels, n_clusters, max_iter=max_iter)
    dec.info["iterations"] = it
    dec.info["beta"] = beta
    if dec.mode == "refine":
        # the data has the last word: keep whichever partition fits x better
        refined, plain = spherical_objective(X, labels), spherical_objective(X, dec.data_labels)
        dec.info["objective"] = {"refined": round(refined, 4), "kmeans": round(plain, 4)}
        if plain > refined:
            dec.info["kept"] = "kmeans"
            return dec.data_labels, feats, dec
        dec.info["kept"] = "refined"
    return labels, feats, dec


def spherical_objective(F: np.ndarray, labels: np.ndarray) -> float:
    r"""Spherical k-means objective of a partition: :math:`\sum_k \lVert\sum_{i\in C_k}
    f_i\rVert` (the sum of cosines of the members to their normalised centroid when the
    rows are unit vectors)."""
    F = np.asarray(F, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    sums = np.zeros((int(y.max()) + 1 if y.size else 0, F.shape[1]))
    np.add.at(sums, y, F)
    return float(np.linalg.norm(sums, axis=1).sum())
