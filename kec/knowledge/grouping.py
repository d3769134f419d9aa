"""Pure array functions: label grouping and pair selection (docs/methods.md §2.2-2.3)."""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components


def _check_unit_rows(emb: np.ndarray) -> np.ndarray:
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be 2-D, got shape {emb.shape}")
    if not np.isfinite(emb).all():
        raise ValueError("embeddings contain NaN or inf")
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.maximum(norms, 1e-12)


def threshold_components(sim: np.ndarray, threshold: float) -> list[list[int]]:
    r"""Connected components of the graph :math:`i \sim j \iff s_{ij} > \beta` over a
    square similarity matrix (docs/methods.md §2.2).

    Returns groups of row indices; each group is sorted, groups are ordered by their
    smallest index, so the result is deterministic.
    """
    adj = np.greater(np.asarray(sim, dtype=np.float64), float(threshold))
    np.fill_diagonal(adj, False)
    _, comp = connected_components(csr_matrix(adj), directed=False)
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(comp):
        groups.setdefault(int(c), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def group_by_similarity(emb: np.ndarray, threshold: float) -> list[list[int]]:
    r"""Connected components of the thresholded cosine-similarity graph.

    .. math::  i \sim j \iff \cos(e_i, e_j) > \beta

    (docs/methods.md §2.2 with :math:`\alpha = 0`: only text similarity exists for plain labels.)
    See :func:`threshold_components` for the order of the result.
    """
    e = _check_unit_rows(emb)
    if e.shape[0] == 0:
        return []
    return threshold_components(e @ e.T, threshold)


def select_pairs(
    emb: np.ndarray, mass: float = 0.8, temperature: float = 0.05, max_per_concept: int = 3
) -> list[tuple[int, int, float]]:
    r"""Pairs of similar concepts by cumulative softmax mass (docs/methods.md §2.3).

    For concept :math:`q`, the other concepts are sorted by similarity and added until

    .. math::  \sum_{r \in P_q} \operatorname{softmax}_r(s_{qr} / \tau) \ge \beta

    or ``max_per_concept`` is reached. Pairs are unordered and deduplicated.

    ``temperature`` (:math:`\tau`) and ``max_per_concept`` are kec's choices, not the paper's:
    a softmax over raw cosines is nearly uniform, so without :math:`\tau` every concept
    would pair with most others.

    Returns ``(i, j, similarity)`` with ``i < j``, sorted by ``(i, j)``.
    """
    if not 0 < mass <= 1:
        raise ValueError("mass (beta) must be in (0, 1]")
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    e = _check_unit_rows(emb)
    q = e.shape[0]
    if q < 2 or max_per_concept < 1:
        return []
    sim = np.clip(e @ e.T, -1.0, 1.0)
    pairs: dict[tuple[int, int], float] = {}
    for i in range(q):
        others = np.array([j for j in range(q) if j != i])
        s = sim[i, others]
        order = np.lexsort((others, -s))  # by similarity desc, ties by index
        w = np.exp((s - s.max()) / temperature)
        w /= w.sum()
        cum = 0.0
        for rank, k in enumerate(order):
            if rank >= max_per_concept:
                break
            j = int(others[k])
            pairs[(min(i, j), max(i, j))] = float(sim[i, j])
            cum += float(w[k])
            if cum >= mass:
                break
    return sorted((i, j, s) for (i, j), s in pairs.items())
