r"""TAC's scaffold (docs/methods.md §1) and KEC's over-cluster merging (§2.2).

Pure functions over feature arrays:

1. :func:`n_overclusters` and :func:`overcluster`: spherical k-means with ``k = N/300``;
2. :func:`select_nouns`: every noun goes to the centre :math:`\arg\max_l
   \mathrm{softmax}_l(c_l \cdot t_j / \tau_s)`, each centre keeps its top 5
   (:func:`select_top_texts` is CAE's variant: the top-k most similar texts per centre);
3. :func:`text_counterpart`: :math:`\hat t_i = \mathrm{normalize}(\sum_j
   \mathrm{softmax}_j(x_i\cdot t_j/\tau)\, t_j)`, τ = 0.005;
4. :func:`overcluster_similarity` / :func:`merge_overclusters`: :math:`R = \alpha
   R^{vis} + (1-\alpha) R^{text}`, components of :math:`R > \beta`;
5. :func:`build_groups`: all of it, as the ``kec.groups`` document that
   ``kec knowledge build --groups`` condenses into one concept per group.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kec.cluster._checks import (
    ClusteringInputError,
    as_features,
    check_fraction,
    check_n_clusters,
    check_positive,
    l2_normalize_rows,
    same_dim,
)
from kec.cluster.kmeans import SphericalKMeans
from kec.knowledge.grouping import threshold_components

GROUPS_KIND = "kec.groups"
GROUPS_VERSION = 1
TAC_TAU = 0.005
SELECTION_TEMPERATURE = 0.01
BLOCK_BYTES = 32 * 2**20


def _rows_per_block(width: int) -> int:
    return max(1, BLOCK_BYTES // max(1, 4 * width))


# --------------------------------------------------------------------------- over-clustering
def n_overclusters(
    n_samples: int, rule: str | int = "auto", *, n_classes: int | None = None
) -> int:
    """Number of over-clusters.

    Parameters
    ----------
    n_samples : int
        Number of images ``N``.
    rule : str or int
        ``"n/300"`` (TAC and KEC; any ``"n/D"`` works): ``round(N / 300)``, e.g. 167 for
        50,000 images and 4,271 for ImageNet's 1,281,167; ``"3k"`` (any ``"Mk"``): ``3 ×
        n_classes``, TAC's rule for small sets such as DTD and UCF101; an int: that many;
        ``"auto"`` (default): ``max(round(N/300), 3 × n_classes)``, so that small sets
        are not over-clustered into a handful of groups (a 90-image set would otherwise
        get one over-cluster, hence one concept), and without ``n_classes``
        ``max(round(N/300), min(30, N // 10))``. The result is clipped to ``[1, N]``.
    n_classes : int, optional
        Needed by the ``"Mk"`` rules.
    """
    if n_samples < 1:
        raise ClusteringInputError("no samples to over-cluster")
    if isinstance(rule, (int, np.integer)) and not isinstance(rule, bool):
        value = int(rule)
    elif isinstance(rule, str) and rule.strip().lower() == "auto":
        base = math.floor(n_samples / 300 + 0.5)
        floor = 3 * int(n_classes) if n_classes else min(30, n_samples // 10)
        value = max(base, floor)
    elif isinstance(rule, str) and rule.strip().isdigit():
        value = int(rule.strip())
    elif isinstance(rule, str) and (m := re.fullmatch(r"\s*n\s*/\s*(\d+)\s*", rule)):
        value = math.floor(n_samples / int(m.group(1)) + 0.5)
    elif isinstance(rule, str) and (m := re.fullmatch(r"\s*(\d+)\s*k\s*", rule)):
        if n_classes is None or n_classes < 1:
            raise ClusteringInputError(f"over-cluster rule {rule!r} needs the number of classes")
        value = int(m.group(1)) * int(n_classes)
    else:
        raise ClusteringInputError(
            f"bad over-cluster rule {rule!r}: use 'auto', 'n/300', '3k' or an integer"
        )
    return int(min(max(value, 1), n_samples))


def overcluster(
    X: np.ndarray, n_clusters: int, *, random_state: int | None = 0, **kmeans_params: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means over-clustering (docs/methods.md §1.2).

    Parameters
    ----------
    X : numpy.ndarray
        ``(N, d)`` image features.
    n_clusters : int
        Number ``L`` of over-clusters.
    random_state : int or None
        Seed of the k-means.
    **kmeans_params
        Further :class:`~kec.cluster.kmeans.SphericalKMeans` parameters.

    Returns
    -------
    labels : numpy.ndarray
        ``(N,)`` over-cluster of every image.
    centres : numpy.ndarray
        ``(L, d)`` float32 unit centres (normalised member means).
    """
    km = SphericalKMeans(n_clusters, random_state=random_state, **kmeans_params).fit(X)
    return km.labels_, km.cluster_centers_


# --------------------------------------------------------------------------- noun selection
@dataclass
class TextSelection:
    """Texts kept per over-cluster centre.

    Attributes
    ----------
    indices : numpy.ndarray
        Sorted union of the kept text indices.
    per_centre : list of numpy.ndarray
        For every centre, its kept text indices, best first.
    score : numpy.ndarray
        ``(M,)`` score of every text for its best centre (softmax probability for
        :func:`select_nouns`, cosine for :func:`select_top_texts`).
    assignment : numpy.ndarray
        ``(M,)`` best centre of every text.
    rank : numpy.ndarray or None
        ``(M,)`` the ranking key when it is not ``score`` (log-odds for
        :func:`select_nouns`).
    """

    indices: np.ndarray
    per_centre: list[np.ndarray]
    score: np.ndarray
    assignment: np.ndarray
    rank: np.ndarray | None = None


def _texts_and_centres(centres: Any, texts: Any) -> tuple[np.ndarray, np.ndarray]:
    C = as_features(centres, "over-cluster centres")
    T = as_features(texts, "text features")
    same_dim(C, T, "over-cluster centres", "text features")
    return C, T


def _check_top_k(top_k: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ClusteringInputError(f"top_k must be an integer >= 1, got {top_k!r}")
    return int(top_k)


def select_nouns(
    centres: np.ndarray,
    nouns: np.ndarray,
    top_k: int = 5,
    *,
    temperature: float = SELECTION_TEMPERATURE,
) -> TextSelection:
    r"""TAC's noun selection (docs/methods.md §1.3).

    Noun :math:`t_j` goes to centre :math:`l_j = \arg\max_l p_{jl}`,
    :math:`p_{jl} = \mathrm{softmax}_l(c_l \cdot t_j / \tau_s)`; each centre keeps the
    ``top_k`` of its nouns with the highest :math:`p_{j l_j}` (ties: lower index first).
    The union has at most ``top_k × L`` nouns; a centre no noun prefers keeps none.
    Nouns are ranked by the log-odds :math:`\log p/(1-p)`, the same order as
    :math:`p` but computed so that it still separates nouns whose :math:`p` rounds to 1
    in float64 (at low :math:`\tau_s` in a text encoder's space, many do, and the order
    would otherwise fall back to the vocabulary's alphabetical order).

    Parameters
    ----------
    centres : numpy.ndarray
        ``(L, d)`` over-cluster centres.
    nouns : numpy.ndarray
        ``(M, d)`` noun embeddings.
    top_k : int
        Nouns kept per centre (5 in TAC and KEC).
    temperature : float
        :math:`\tau_s`. Only the ranking within a centre depends on it. 0.01 (CLIP's
        logit scale) is kec's choice; docs/methods.md gives no value.
    """
    C, T = _texts_and_centres(centres, nouns)
    top_k = _check_top_k(top_k)
    temperature = check_positive(temperature, "temperature")
    m = T.shape[0]
    assign = np.empty(m, dtype=np.int64)
    prob = np.empty(m, dtype=np.float64)
    log_odds = np.empty(m, dtype=np.float64)
    step = _rows_per_block(C.shape[0])
    for start in range(0, m, step):
        logits = (T[start : start + step] @ C.T).astype(np.float64) / temperature
        rows = np.arange(logits.shape[0])
        best = logits.argmax(axis=1)
        mx = logits[rows, best]
        assign[start : start + step] = best
        shifted = np.exp(logits - mx[:, None])
        total = shifted.sum(axis=1)
        prob[start : start + step] = 1.0 / total
        # log p/(1-p), computed without 1 - p: it keeps ranking nouns whose p rounds to 1
        others = np.maximum(total - 1.0, np.finfo(np.float64).tiny)
        if C.shape[0] > 1:
            logits[rows, best] = -np.inf
            second = logits.max(axis=1)
            rest = np.exp(logits - second[:, None]).sum(axis=1)
            others = np.where(total - 1.0 > 1e-6, others,
                              np.exp(second - mx) * rest)
        log_odds[start : start + step] = -np.log(others)
    order = np.lexsort((np.arange(m), -log_odds, assign))  # by centre, p desc, index
    per_centre: list[np.ndarray] = []
    bounds = np.searchsorted(assign[order], np.arange(C.shape[0] + 1))
    for l in range(C.shape[0]):  # noqa: E741
        per_centre.append(order[bounds[l] : bounds[l + 1]][:top_k].astype(np.int64))
    kept = np.unique(np.concatenate(per_centre)) if per_centre else np.zeros(0, np.int64)
    return TextSelection(kept.astype(np.int64), per_centre, prob, assign, log_odds)


def select_top_texts(centres: np.ndarray, texts: np.ndarray, top_k: int = 5) -> TextSelection:
    r"""CAE's semantic space (docs/methods.md §3.1): each centre keeps its ``top_k`` most
    similar texts by cosine :math:`c_l \cdot t_j`; the union is the selected set.

    ``top_k`` is open in CAE; 5 matches TAC's noun budget.

    Parameters
    ----------
    centres : numpy.ndarray
        ``(L, d)`` over-cluster centres.
    texts : numpy.ndarray
        ``(M, d)`` text features.
    top_k : int
        Texts kept per centre (at most ``M``).

    Returns
    -------
    TextSelection
        The union of the kept texts and the texts of every centre.
    """
    C, T = _texts_and_centres(centres, texts)
    top_k = min(_check_top_k(top_k), T.shape[0])
    L, m = C.shape[0], T.shape[0]
    best_idx = np.zeros((0, L), dtype=np.int64)
    best_sim = np.zeros((0, L), dtype=np.float32)
    assign = np.empty(m, dtype=np.int64)
    score = np.empty(m, dtype=np.float64)
    step = _rows_per_block(L)
    for start in range(0, m, step):
        sims = T[start : start + step] @ C.T  # (B, L)
        assign[start : start + step] = sims.argmax(axis=1)
        score[start : start + step] = sims.max(axis=1)
        idx = np.vstack([best_idx, np.arange(start, start + sims.shape[0])[:, None]
                         .repeat(L, axis=1)])
        val = np.vstack([best_sim, sims])
        if val.shape[0] > top_k:
            part = np.argpartition(-val, top_k - 1, axis=0)[:top_k]
            idx = np.take_along_axis(idx, part, axis=0)
            val = np.take_along_axis(val, part, axis=0)
        best_idx, best_sim = idx, val
    per_centre = []
    for l in range(L):  # noqa: E741
        o = np.lexsort((best_idx[:, l], -best_sim[:, l]))
        per_centre.append(best_idx[o, l].astype(np.int64))
    kept = np.unique(np.concatenate(per_centre))
    return TextSelection(kept, per_centre, score, assign)


# --------------------------------------------------------------------------- counterpart
def text_counterpart(X: np.ndarray, texts: np.ndarray, tau: float = TAC_TAU) -> np.ndarray:
    r"""TAC's training-free text counterpart of every image (docs/methods.md §1.4).

    .. math::  \hat t_i = \operatorname{normalize}\Big(\sum_j
               \operatorname{softmax}_j(x_i \cdot t_j / \tau)\, t_j\Big), \quad \tau = 0.005

    Computed in row blocks.

    Parameters
    ----------
    X : numpy.ndarray
        ``(N, d)`` image features :math:`x_i`.
    texts : numpy.ndarray
        ``(M, d)`` selected noun features :math:`t_j`.
    tau : float
        Softmax temperature :math:`\tau` (> 0).

    Returns
    -------
    numpy.ndarray
        ``(N, d)`` float32 unit rows :math:`\hat t_i`.
    """
    X = as_features(X, "image features")
    T = as_features(texts, "text features")
    same_dim(X, T, "image features", "text features")
    tau = check_positive(tau, "tau")
    out = np.empty_like(X)
    step = _rows_per_block(T.shape[0])
    for start in range(0, X.shape[0], step):
        logits = X[start : start + step] @ T.T
        logits -= logits.max(axis=1, keepdims=True)
        logits *= np.float32(1.0 / tau)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        out[start : start + step] = logits @ T
    return l2_normalize_rows(out)


# --------------------------------------------------------------------------- merging
def overcluster_similarity(
    centres: np.ndarray,
    texts: np.ndarray,
    per_centre: Sequence[np.ndarray],
    alpha: float = 0.8,
) -> np.ndarray:
    r"""Similarity between over-clusters (docs/methods.md §2.2).

    .. math::  R_{kl} = \alpha \cos(c_k, c_l) + (1-\alpha) \cos(\bar t_k, \bar t_l)

    :math:`\bar t_k` is the mean embedding of centre k's selected nouns. A centre with no
    nouns has no text side: its pairs use :math:`R^{vis}` alone. α = 0.8 follows one
    reimplementation (docs/methods.md marks it open).
    """
    C, T = _texts_and_centres(centres, texts)
    alpha = check_fraction(alpha, "alpha", low_open=False)
    L = C.shape[0]
    if len(per_centre) != L:
        raise ClusteringInputError(f"per_centre has {len(per_centre)} entries for {L} centres")
    C64 = l2_normalize_rows(C.astype(np.float64))
    r_vis = C64 @ C64.T
    means = np.zeros_like(C64)
    has = np.zeros(L, dtype=bool)
    for k, idx in enumerate(per_centre):
        if len(idx):
            means[k] = T[np.asarray(idx)].astype(np.float64).mean(axis=0)
            has[k] = np.linalg.norm(means[k]) > 1e-12
    means = l2_normalize_rows(means)
    r_text = means @ means.T
    both = has[:, None] & has[None, :]
    return np.where(both, alpha * r_vis + (1.0 - alpha) * r_text, r_vis)


def merge_overclusters(R: np.ndarray, beta: float = 0.8) -> list[list[int]]:
    r"""Connected components of the graph :math:`R_{kl} > \beta` (docs/methods.md §2.2).

    Returns sorted lists of over-cluster indices, ordered by their smallest member.
    β = 0.8 follows one reimplementation (docs/methods.md marks it open).
    """
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise ClusteringInputError(f"R must be a square matrix, got shape {R.shape}")
    return threshold_components(R, beta)


# --------------------------------------------------------------------------- groups
def build_groups(
    X: np.ndarray,
    nouns: np.ndarray,
    noun_labels: Sequence[str],
    *,
    n_overclusters: int | None = None,
    rule: str | int = "auto",
    n_classes: int | None = None,
    top_k: int = 5,
    temperature: float = SELECTION_TEMPERATURE,
    merge: bool = True,
    alpha: float = 0.8,
    beta: float = 0.8,
    random_state: int | None = 0,
    kmeans_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Label groups for the knowledge builder: over-cluster, select nouns, merge.

    Parameters
    ----------
    X : numpy.ndarray
        ``(N, d)`` image features.
    nouns : numpy.ndarray
        ``(M, d)`` noun embeddings (same encoder).
    noun_labels : sequence of str
        The ``M`` nouns.
    n_overclusters : int, optional
        Overrides ``rule``.
    rule, n_classes
        See :func:`n_overclusters`.
    top_k, temperature
        See :func:`select_nouns`.
    merge : bool
        Merge over-clusters whose :math:`R > \\beta` into one group (KEC); ``False``
        gives one group per over-cluster (TAC).
    alpha, beta
        See :func:`overcluster_similarity` and :func:`merge_overclusters`.
    random_state : int or None
        Seed of the over-clustering.
    kmeans_params : dict, optional
        Extra :class:`~kec.cluster.kmeans.SphericalKMeans` parameters.

    Returns
    -------
    dict
        ``{"kind": "kec.groups", "version": 1, "groups": [{"id", "labels", "size",
        "members"}], "params": {...}, "source": {...}, "stats": {...}}``. Groups are
        ordered by size (images), largest first; ``labels`` are the pooled nouns, best
        first, without repeats. Groups whose over-clusters kept no noun are left out and
        counted in ``stats``.
    """
    X = as_features(X, "image features")
    T = as_features(nouns, "noun features")
    same_dim(X, T, "image features", "noun features")
    labels_list = [str(s) for s in noun_labels]
    if len(labels_list) != T.shape[0]:
        raise ClusteringInputError(
            f"{len(labels_list)} noun labels for {T.shape[0]} noun feature rows"
        )
    n = X.shape[0]
    L = (check_n_clusters(n_overclusters, n, "n_overclusters") if n_overclusters is not None
         else n_overclusters_for(n, rule, n_classes))
    km_params = {"init": "k-means++", **(kmeans_params or {})}
    over, centres = overcluster(X, L, random_state=random_state, **km_params)
    sel = select_nouns(centres, T, top_k, temperature=temperature)
    if merge:
        R = overcluster_similarity(centres, T, sel.per_centre, alpha)
        comps = merge_overclusters(R, beta)
    else:
        comps = [[k] for k in range(L)]
    sizes = np.bincount(over, minlength=L)
    groups = []
    dropped_images = 0
    for members in comps:
        idx = np.concatenate([sel.per_centre[k] for k in members])
        size = int(sizes[members].sum())
        if idx.size == 0:
            dropped_images += size
            continue
        # pooled nouns, best probability first, each label once
        key = sel.rank if sel.rank is not None else sel.score
        order = np.lexsort((idx, -key[idx]))
        seen: dict[str, None] = {}
        for j in idx[order]:
            seen.setdefault(labels_list[int(j)], None)
        groups.append({"labels": list(seen), "size": size, "members": sorted(members)})
    groups.sort(key=lambda g: (-g["size"], g["members"][0]))
    width = max(4, len(str(max(len(groups) - 1, 0))))
    for i, g in enumerate(groups):
        g["id"] = f"g{i:0{width}d}"
    return {
        "kind": GROUPS_KIND,
        "version": GROUPS_VERSION,
        "groups": [{"id": g["id"], "labels": g["labels"], "size": g["size"],
                    "members": g["members"]} for g in groups],
        "params": {"n_overclusters": L, "rule": None if n_overclusters is not None else rule,
                   "top_k": top_k, "temperature": temperature, "merge": merge,
                   "alpha": alpha, "beta": beta, "seed": random_state,
                   "kmeans": {k: v for k, v in km_params.items()
                              if isinstance(v, (int, float, str, bool))}},
        "source": {"n_images": n, "n_nouns": int(T.shape[0]), "dim": int(X.shape[1])},
        "stats": {"n_groups": len(groups), "n_selected_nouns": int(sel.indices.size),
                  "images_without_nouns": dropped_images},
    }


def n_overclusters_for(n: int, rule: str | int, n_classes: int | None) -> int:
    """:func:`n_overclusters` (an alias that does not clash with keyword names)."""
    return n_overclusters(n, rule, n_classes=n_classes)
