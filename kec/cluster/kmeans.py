r"""Spherical k-means on numpy or on a torch device (docs/methods.md §1.2, §1.5).

Maximises the total cosine between each point and its centre,

.. math::  \max_{c_1..c_K,\ \|c_k\|=1} \; \sum_i \max_k \; x_i \cdot c_k ,

by Lloyd iterations (assign every point to its most similar centre; replace each centre
by the normalised sum of its members, which maximises the cluster's total cosine),
from greedy k-means++ seeds, keeping the best of ``n_init`` restarts
(Dhillon & Modha, "Concept decompositions for large sparse text data using clustering",
Machine Learning 42, 2001; Arthur & Vassilvitskii, "k-means++: the advantages of careful
seeding", SODA 2007).

One code path serves numpy and torch through :mod:`kec.cluster.backend`: assignments are
row-blocked matrix products (the ``N×K`` similarity matrix is never held, so 1.28M × 512
with K = 4,300 fits a GPU), centre updates a segment sum (a sparse one-hot product in
numpy, ``index_add_`` in torch). Random numbers are always drawn by numpy on the host, so a
seed gives the same seeds and restarts on every device.

On numpy, Lloyd skips the rows whose label cannot change (:func:`_lloyd_bounded`: Yinyang
bounds for cosine, the labels of a full assignment) and keeps the cluster sums up to
date by moving only the rows that changed; the k-means++ seeding of all restarts runs
in lockstep on one subsample (:func:`_kmeans_plusplus_batch`), so the sample is read
once per step for all of them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.exceptions import NotFittedError

try:
    from sklearn.utils.validation import validate_data
except ImportError:  # scikit-learn < 1.6

    def validate_data(est: Any, X: Any, *, reset: bool, ensure_all_finite: bool,
                      **kwargs: Any) -> Any:
        """scikit-learn < 1.6: the estimator method, with the old keyword."""
        return est._validate_data(X, reset=reset, force_all_finite=ensure_all_finite,
                                  **kwargs)


from kec.cluster._checks import (
    MAX_ABS_FEATURE,
    ClusteringInputError,
    as_features,
    check_n_clusters,
    check_random_state,
    check_real_dtype,
)
from kec.cluster.backend import (
    Backend,
    get_backend,
    is_torch,
    resolve_device,
    torch_backend,
)

ASSIGN_BLOCK_BYTES = 32 * 2**20
"""Similarity block held at once on the CPU (rows × K float32)."""
DEVICE_BLOCK_BYTES = 1 * 2**30
"""Similarity block held at once on a GPU."""
BOUND_GROUP = 10
"""Centres per group in the bounds of :func:`_lloyd_bounded` (Ding et al.'s Yinyang
k-means groups; 5, 10 and 20 skipped about as many rows at K = 100)."""
BOUND_MARGIN = 1e-5
"""A row is skipped only when its bounds are this far apart: far above the float32
rounding of a unit-row similarity (~1e-7), so a skipped row keeps the label a full
float32 assignment would give it."""
ANGLE_PAD = 4e-6
"""Radians added to a fresh angle bound of :func:`_lloyd_bounded`, in the safe direction
(the bounds are float32: numpy's float32 arccos is within a few units in the last
place, 2.4e-7 rad each near pi, and the sum rounds once more), so a bound from a
float32 similarity stays a bound."""
ANGLE_STEP_PAD = 1e-6
"""Radians added to every drift step of the float32 angle bounds: the step's cast to
float32 and the sum round by at most 3.1e-7 rad together, so the bounds stay bounds
(100 iterations loosen them by 1e-4 rad at most; rows skipped were the same to 0.1 %
as with float64 bounds)."""
TOP2_BLOCK_ROWS = 1024
"""Rows assigned at once by :func:`_top2_rows`, gathered into one reused buffer (2 MiB
at d = 512, about a core's L2 cache). Fewer rows made OpenBLAS's sgemm 2.6x slower per
row at K = 1,000 (173 rows: 690 ms, 1,024 rows: 261 ms for 25,000 rows); more rows
gave no gain at K = 100 or 1,000."""
BOUND_MAX_BYTES = 512 * 2**20
"""Largest ``(N, K / BOUND_GROUP)`` float64 bound array; beyond it Lloyd assigns every
row at every iteration."""
SEED_BATCH_ENTRIES = 2**24
"""Restarts seeded together hold at most this many candidate similarities."""
RESTART_TIE = 1e-6
"""A restart replaces the best so far only when its mean cosine is higher by more than
this (relative): closer objectives are equal within the float32 rounding of the cluster
sums, and the first restart is kept, so the winner does not depend on summation order
(how rows are split over processes, :mod:`kec.cluster.distributed`)."""
ENGINES = ("kec", "faiss")
_backend_np = get_backend(np.zeros(1))
MATMUL_DTYPES = (None, "float32", "bfloat16", "float16")


class ClusteringTypeError(ClusteringInputError, TypeError):
    """Input of a type k-means cannot read (sparse matrices, objects that are not numbers)."""


class ClusteringNotFittedError(ClusteringInputError, NotFittedError):
    """``predict`` was called before ``fit``."""


# --------------------------------------------------------------------------- array helpers
# Operations kec.cluster.backend does not have (yet): segment sums, bincount, cumsum,
# searchsorted, max-with-argmax, integer indexing. Each dispatches on ``nx.name``.
def _torch(nx: Backend) -> bool:
    return nx.name == "torch"


def _index(nx: Backend, X: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` (a host int array) of ``X``."""
    if _torch(nx):
        return X[nx.torch.as_tensor(idx, device=X.device)]
    return X[idx]


def _index_host(nx: Backend, idx: np.ndarray, like: Any) -> Any:
    """A host int array as an index for arrays like ``like``."""
    return nx.torch.as_tensor(idx, device=like.device) if _torch(nx) else idx


def _max_argmax(nx: Backend, S: Any) -> tuple[Any, Any]:
    """Row-wise argmax of ``S`` and the maximum, in one pass on torch."""
    if _torch(nx):
        vals, lab = S.max(dim=1)
        return lab, vals
    lab = S.argmax(axis=1)
    return lab, np.take_along_axis(S, lab[:, None], axis=1)[:, 0]


def _segment_sum(nx: Backend, X: Any, labels: Any, k: int) -> Any:
    r"""``(K, d)`` sums :math:`s_k = \sum_{i: \ell_i = k} x_i`."""
    if _torch(nx):
        torch = nx.torch
        out = torch.zeros((k, X.shape[1]), dtype=X.dtype, device=X.device)
        return out.index_add_(0, labels, X)
    n = X.shape[0]
    onehot = sparse.csr_matrix((np.ones(n, dtype=X.dtype), (labels, np.arange(n))),
                               shape=(k, n))
    return np.asarray(onehot @ X)


def _bincount(nx: Backend, labels: Any, k: int) -> np.ndarray:
    """Members per cluster, on the host."""
    if _torch(nx):
        return nx.to_numpy(nx.torch.bincount(labels, minlength=k))
    return np.bincount(labels, minlength=k)


def _lowest(nx: Backend, best: Any, m: int) -> np.ndarray:
    """Indices (host) of the ``m`` points least similar to their centre."""
    if _torch(nx):
        return nx.to_numpy(nx.torch.topk(best, m, largest=False, sorted=True).indices)
    return np.argsort(best, kind="stable")[:m]


def _searchsorted(nx: Backend, cdf: Any, v: Any) -> Any:
    """Per row ``r``: indices ``i`` with ``cdf[r, i-1] < v[r] <= cdf[r, i]``, clamped to
    the last index (``cdf`` is ``(R, n)``, ``v`` is ``(R, t)``)."""
    last = cdf.shape[-1] - 1
    if _torch(nx):
        return nx.torch.searchsorted(cdf.contiguous(), v.contiguous()).clamp_(max=last)
    return np.minimum(np.stack([np.searchsorted(c, t) for c, t in zip(cdf, v)]), last)


def _cumsum(nx: Backend, x: Any) -> Any:
    """Cumulative sums along the last axis."""
    return nx.torch.cumsum(x, dim=-1) if _torch(nx) else np.cumsum(x, axis=-1)


def _mean64(nx: Backend, x: Any) -> float:
    """Mean over all rows (every rank's, :mod:`kec.cluster.distributed`) as a Python
    float, summed in float64."""
    total = float(x.double().sum()) if _torch(nx) else float(x.sum(dtype=np.float64))
    return nx.reduce_sum(total) / nx.rows.total(x.shape[0])


def _equal(nx: Backend, a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are equal on every rank."""
    same = bool(nx.torch.equal(a, b)) if _torch(nx) else bool(np.array_equal(a, b))
    return nx.reduce_sum(int(not same)) == 0


def _text_or_bool(arr: np.ndarray) -> bool:
    """Whether ``arr`` holds booleans or text (which scikit-learn would turn into floats).

    Object arrays of numbers pass (scikit-learn's convention); complex input is left to
    scikit-learn's own message.
    """
    if arr.dtype.kind in "bUS":
        return True
    return arr.dtype == object and any(
        isinstance(v, (str, bytes, bool, np.bool_)) for v in arr.flat)


# --------------------------------------------------------------------------- math
def _unit_rows(X: Any) -> tuple[Any, np.ndarray]:
    r"""Rows scaled to unit norm, :math:`x_i / \|x_i\|`, on ``X``'s backend; zero rows stay zero.

    Rows are first divided by their largest magnitude, so huge finite values (1e38) do not
    overflow the norm. Returns the scaled rows and the (host) indices of the zero rows.
    """
    nx = get_backend(X)
    scale = nx.max(nx.abs(X), axis=1, keepdims=True)
    zero = np.flatnonzero(nx.to_numpy(scale[:, 0] <= 0))
    if zero.size:
        scale = nx.where(scale > 0, scale, 1.0)
    X = X / scale
    norms = nx.norm(X, axis=1, keepdims=True)
    if zero.size:
        norms = nx.where(norms > 0, norms, 1.0)
    return X / norms, zero


def _normalize(X: Any, name: str = "features") -> Any:
    """:func:`_unit_rows`, but zero rows (no direction) raise :class:`ClusteringInputError`."""
    X, zero = _unit_rows(X)
    if zero.size:
        raise ClusteringInputError(
            f"{name}: {zero.size} row(s) have zero norm and no direction "
            f"(first rows: {zero[:5].tolist()})"
        )
    return X


def auto_n_init(n_samples: int, n_clusters: int, n_features: int, device: str = "cpu") -> int:
    """Restarts used by ``n_init="auto"``: 10 for small problems, 3, then 1 at ImageNet scale.

    Thresholds on ``N·K·d`` (2.5e9 and 2.5e10 on the CPU, 100 times more on a GPU) keep one
    fit under about a minute on two cores or a few seconds on a GPU; this is kec's choice
    (TAC restarts faiss k-means 20 times).
    """
    work = n_samples * n_clusters * n_features
    scale = 100.0 if str(device).startswith("cuda") else 1.0
    if work <= 2.5e9 * scale:
        return 10
    if work <= 2.5e10 * scale:
        return 3
    return 1


def _assign(
    X: Any, C: Any, block_bytes: int | None = None, XL: Any = None
) -> tuple[Any, Any]:
    r"""Most similar centre :math:`\ell_i = \arg\max_k x_i \cdot c_k` and that similarity.

    Computed in row blocks of at most ``block_bytes`` of similarities; returns ``(N,)``
    int64 labels and ``(N,)`` float32 similarities on ``X``'s backend. ``XL``: ``X`` in
    bfloat16/float16 (torch); then the products use it and ``C`` cast alike, summed in
    float32.
    """
    nx = get_backend(X)
    n, k = X.shape[0], C.shape[0]
    if block_bytes is None:
        block_bytes = DEVICE_BLOCK_BYTES if nx.device(X).startswith("cuda") \
            else ASSIGN_BLOCK_BYTES
    rows = max(1, block_bytes // max(1, 4 * k))
    if XL is not None:
        A, CT, mm = XL, C.T.to(XL.dtype), nx.matmul_fp32
    else:
        A, CT, mm = X, (C.T if _torch(nx) else np.ascontiguousarray(C.T)), nx.matmul
    if rows >= n:
        return _max_argmax(nx, mm(A, CT))
    if _torch(nx):
        labels = nx.torch.empty(n, dtype=nx.torch.int64, device=X.device)
    else:
        labels = np.empty(n, dtype=np.int64)
    best = nx.empty(n, dtype="float32", like=X)
    for start in range(0, n, rows):
        lab, val = _max_argmax(nx, mm(A[start : start + rows], CT))
        labels[start : start + rows] = lab
        best[start : start + rows] = val
    return labels, best


def _kmeans_plusplus(X: Any, k: int, rng: np.random.Generator) -> Any:
    """Rows of ``X`` chosen by :func:`_kmeans_plusplus_indices`."""
    return _index(get_backend(X), X, _kmeans_plusplus_indices(X, k, rng))


def _kmeans_plusplus_indices(X: Any, k: int, rng: np.random.Generator) -> np.ndarray:
    r"""Greedy k-means++ seeds with the distance :math:`1 - x \cdot y` (Arthur & Vassilvitskii).

    The first seed is uniform; each next one is the best of :math:`2 + \lfloor\ln K\rfloor`
    candidates drawn with probability proportional to :math:`D(x)`, the distance to the
    closest seed so far, where best means the lowest :math:`\sum_i \min(D(x_i), d(x_i, y))`
    (the greedy variant of scikit-learn's ``kmeans_plusplus``). Returns ``K`` distinct
    host row indices.
    """
    return _kmeans_plusplus_batch(X, k, [rng])[0]


def _kmeans_plusplus_batch(X: Any, k: int, rngs: list[np.random.Generator]
                           ) -> list[np.ndarray]:
    """:func:`_kmeans_plusplus_indices` for several restarts at once, one per generator.

    The restarts advance in lockstep: at each step the candidates of all of them are
    compared to the sample in one matrix product, which reads the sample once instead of
    once per restart (each step is bound by reading it). Every restart draws from its own
    generator, so its seeds are those it would get alone.
    """
    nx = get_backend(X)
    trials = 2 + int(math.log(k))
    if _torch(nx):
        return _kmeans_plusplus_loop(X, X.T, k, trials, rngs, nx)
    # numpy: one BLAS thread is faster for these thin products (4x on two busy cores),
    # and the transposed copy makes every candidate's similarities one contiguous row
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return _kmeans_plusplus_loop(X, np.ascontiguousarray(X.T), k, trials, rngs, nx)


def _kmeans_plusplus_loop(
    X: Any, XT: Any, k: int, trials: int, rngs: list[np.random.Generator], nx: Backend
) -> list[np.ndarray]:
    """The seeding loop, ``R = len(rngs)`` restarts in lockstep; on a GPU it queues work
    without waiting for it (one sync at the end)."""
    n, R = X.shape[0], len(rngs)
    first = np.array([int(r.integers(n)) for r in rngs])
    # every draw up front: the same stream on every backend
    u = np.stack([r.random((k - 1, trials)) for r in rngs])  # (R, k - 1, trials)
    rows = np.arange(R)
    if _torch(nx):
        u = nx.torch.as_tensor(u, dtype=nx.torch.float64, device=X.device)
        idx = nx.torch.empty((R, k), dtype=nx.torch.int64, device=X.device)
        rows = nx.torch.as_tensor(rows, device=X.device)
    else:
        idx = np.empty((R, k), dtype=np.int64)
    idx[:, 0] = _index_host(nx, first, X)
    closest = nx.astype(nx.clip(1.0 - nx.matmul(_index(nx, X, first), XT), 0.0), "float64")
    potential = nx.sum(closest, axis=1)  # (R,)
    for c in range(1, k):
        cand = _searchsorted(nx, _cumsum(nx, closest), u[:, c - 1] * potential[:, None])
        dist = nx.clip(1.0 - nx.matmul(X[cand.reshape(-1)], XT), 0.0)  # (R * trials, n)
        new = nx.minimum(closest[:, None, :], nx.astype(dist, "float64").reshape(R, trials, n))
        pots = nx.sum(new, axis=2)  # (R, trials)
        best = nx.argmin(pots, axis=1)
        idx[:, c] = cand[rows, best]
        closest = new[rows, best]
        potential = pots[rows, best]
    return [_distinct(nx.to_numpy(idx[r]).copy(), n, rngs[r]) for r in range(R)]


def _distinct(idx: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``idx`` with repeated entries replaced by unused rows (drawn from ``rng``)."""
    _, kept = np.unique(idx, return_index=True)
    if kept.size < idx.size:
        # a point drawn twice: once every point coincides with a seed (zero potential, all
        # draws hit index 0) or through rounding noise; the repeats become unused points
        again = np.setdiff1d(np.arange(idx.size), kept)
        idx[again] = rng.choice(np.setdiff1d(np.arange(n), idx), size=again.size,
                                replace=False)
    return idx


def _update_centres(X: Any, labels: Any, best: Any, k: int) -> tuple[Any, int]:
    r"""Centres :math:`c_k = s_k / \|s_k\|` with :math:`s_k` the sum of cluster ``k``.

    An empty cluster takes one of the points least similar to their centre (the lowest
    ``best``); a cluster whose members cancel out exactly keeps one member. Returns the
    centres and the number of empty clusters.
    """
    nx = get_backend(X)
    return _centres_from_sums(X, labels, lambda: best, k,
                              nx.reduce_sum(_segment_sum(nx, X, labels, k)),
                              nx.reduce_sum(_bincount(nx, labels, k)))


def _centres_from_sums(X: Any, labels: Any, best: Any, k: int, sums: Any,
                       counts: np.ndarray) -> tuple[Any, int]:
    """:func:`_update_centres` from the cluster sums; ``best()`` gives the similarities
    of the points to their centres, asked for only when a cluster is empty.

    ``sums`` and ``counts`` are over all rows (every rank's); the points that replace
    empty or degenerate centres are chosen over all rows too."""
    nx = get_backend(X)
    rows = nx.rows
    empty = np.flatnonzero(counts == 0)
    if empty.size:  # (sums is changed in place)
        far = (rows.lowest(best(), empty.size) if rows.distributed
               else _lowest(nx, best(), empty.size))
        sums[_index_host(nx, empty, X)] = rows.take(X, far)
    norms = nx.norm(sums, axis=1)
    degenerate = np.flatnonzero(nx.to_numpy(norms) < 1e-12)
    if degenerate.size:  # members cancel out exactly: keep one member as the centre
        lab = nx.to_numpy(labels)
        start = rows.offset(X.shape[0])
        for c in degenerate:
            mine = np.flatnonzero(lab == c)[:1] + start
            first = rows.min(np.int64(mine[0] if mine.size else np.iinfo(np.int64).max))
            sums[int(c)] = rows.take(X, np.array([first]))[0]
        norms = nx.norm(sums, axis=1)
    return sums / norms[:, None], int(empty.size)


def _lloyd(
    X: Any, C: Any, max_iter: int, tol: float, XL: Any = None
) -> tuple[Any, Any, float, int, int]:
    """Lloyd iterations from centres ``C`` until labels are stable or the gain < ``tol``.

    With ``XL`` (``X`` in 16 bits) the iterations assign with it; the returned labels and
    objective come from one final float32 assignment to the returned centres.
    """
    nx = get_backend(X)
    k = C.shape[0]
    groups = -(-k // BOUND_GROUP)
    if nx.name == "numpy" and XL is None \
            and nx.rows.max(X.shape[0]) * groups * 8 <= BOUND_MAX_BYTES:
        return _lloyd_bounded(X, C, max_iter, tol)
    labels, best = _assign(X, C, XL=XL)
    objective = _mean64(nx, best)
    n_empty = 0
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (n_iter is returned)
        C, empty = _update_centres(X, labels, best, k)
        n_empty += empty
        new_labels, best = _assign(X, C, XL=XL)
        new_objective = _mean64(nx, best)
        stable = _equal(nx, new_labels, labels)
        improved = new_objective - objective
        labels, objective = new_labels, new_objective
        if stable or (empty == 0 and improved < tol):
            break
    if XL is not None:
        labels, best = _assign(X, C)
        objective = _mean64(nx, best)
    return C, labels, objective, n_iter, n_empty


def _top2_rows(X: np.ndarray, C: np.ndarray, rows: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``X[rows]`` (all rows for ``None``): the most similar centre, its similarity
    (float64) and the largest similarity in each group of other centres
    (:func:`_group_max`), ``(n, G)`` float32.

    Row blocks of :data:`TOP2_BLOCK_ROWS` (rows gathered into one reused buffer,
    similarities into another), so the product and the reductions read them from the
    cache and no call allocates fresh pages per block.
    """
    m = X.shape[0] if rows is None else rows.size
    k, d = C.shape
    CT = np.ascontiguousarray(C.T)
    step = max(1, min(TOP2_BLOCK_ROWS, ASSIGN_BLOCK_BYTES // (4 * k)))
    buf = np.empty((min(step, m), k), dtype=np.float32)
    rows_buf = None if rows is None else np.empty((min(step, m), d), dtype=np.float32)
    lab = np.empty(m, dtype=np.int64)
    best = np.empty(m, dtype=np.float64)
    upper = np.empty((m, -(-k // BOUND_GROUP)), dtype=np.float32)
    for s in range(0, m, step):
        e = min(m, s + step)
        A = X[s:e] if rows is None else np.take(X, rows[s:e], axis=0, out=rows_buf[: e - s])
        S = np.matmul(A, CT, out=buf[: e - s])
        r = np.arange(e - s)
        lab[s:e] = S.argmax(axis=1)
        best[s:e] = S[r, lab[s:e]]
        S[r, lab[s:e]] = -np.inf
        upper[s:e] = _group_max(S)
    return lab, best, upper


def _group_max(S: np.ndarray) -> np.ndarray:
    """Row-wise maxima of ``S`` over the ``G = ceil(K / BOUND_GROUP)`` groups of centres,
    centre ``j`` in group ``j mod G`` (so the reduction runs over contiguous rows of G).

    ``S`` is ``(n, K)`` (or ``(K,)``); returns ``(n, G)`` (or ``(G,)``).
    """
    k = S.shape[-1]
    G = -(-k // BOUND_GROUP)
    out = S[..., :G].copy()
    for j in range(G, k, G):  # elementwise maxima of column slabs: vectorised over rows
        part = S[..., j : j + G]
        np.maximum(out[..., : part.shape[-1]], part, out=out[..., : part.shape[-1]])
    return out


def _lloyd_bounded(X: np.ndarray, C: np.ndarray, max_iter: int, tol: float
                   ) -> tuple[np.ndarray, np.ndarray, float, int, int]:
    r""":func:`_lloyd` on numpy, skipping rows whose label provably cannot change.

    Each row keeps an upper bound :math:`a_i` on the angle to its own centre and, per
    group of :data:`BOUND_GROUP` other centres, a lower bound :math:`b_{ig}` on the angle
    to them (Yinyang k-means, Ding et al., ICML 2015, on the sphere, where the angle
    :math:`\angle(x, c) = \arccos x \cdot c` is a metric). When centre :math:`k` turns by
    :math:`\theta_k = \angle(c_k, c_k') = 2 \arcsin(\|c_k' - c_k\| / 2)`, the triangle
    inequality gives :math:`|\angle(x, c_k') - \angle(x, c_k)| \le \theta_k`, so
    :math:`a_i \mathrel{+}= \theta_{\ell_i}` and
    :math:`b_{ig} \mathrel{-}= \max_{k \in g} \theta_k`. Rows with
    :math:`\cos \min_g b_{ig} + \text{margin} < \cos a_i` keep their label; the others
    are assigned again by one GEMM over those rows, which resets their bounds. On
    similarities near :math:`s` this bound moves by about :math:`\theta \sqrt{1 - s^2}`
    where the Euclidean one, :math:`|x \cdot c_k' - x \cdot c_k| \le \|c_k' - c_k\|`,
    moves by :math:`\theta`: 10 % fewer rows assigned again at 10,000 × 512, K = 100
    and at 50,000 × 512, K = 1,000. Labels are those of a full assignment
    (:data:`BOUND_MARGIN`); the objective is :math:`\frac1N \sum_k c_k \cdot s_k` with
    :math:`s_k` the cluster sums.
    """
    nx = get_backend(X)
    n, k = nx.rows.total(X.shape[0]), C.shape[0]
    labels, best, upper = _top2_rows(X, C, None)
    far, near = _angles(best, ANGLE_PAD), _angles(upper, -ANGLE_PAD)
    # this rank's sums and sizes; ``sums``, ``counts``: over every rank's rows
    own_sums = _segment_sum(nx, X, labels, k).astype(np.float64)
    own_counts = _bincount(nx, labels, k)
    sums, counts, _ = _all_rows(nx, own_sums, own_counts, 0)
    objective = float(np.einsum("kd,kd->", C, sums)) / n
    n_empty = n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (n_iter is returned)
        old = C
        C, empty = _centres_from_sums(X, labels, partial(_own_similarity, X, old, labels, best),
                                      k, sums.copy() if (counts == 0).any() else sums, counts)
        C = C.astype(np.float32)
        n_empty += empty
        turn = 2.0 * np.arcsin(np.minimum(
            0.5 * np.sqrt(((C.astype(np.float64) - old) ** 2).sum(axis=1)), 1.0))
        far += (turn + ANGLE_STEP_PAD).astype(np.float32)[labels]
        near -= (_group_max(turn) + ANGLE_STEP_PAD).astype(np.float32)[None, :]
        todo = _unsure_rows(near, far)
        best = None
        moved = todo[:0]
        if todo.size:
            lab, low, up = _top2_rows(X, C, todo)
            moved = np.flatnonzero(lab != labels[todo])
            own_sums, own_counts = _move_rows(X, labels, own_sums, own_counts, todo[moved],
                                              lab[moved])
            labels[todo] = lab
            far[todo], near[todo] = _angles(low, ANGLE_PAD), _angles(up, -ANGLE_PAD)
        sums, counts, n_moved = _all_rows(nx, own_sums, own_counts, moved.size)
        new_objective = float(np.einsum("kd,kd->", C, sums)) / n
        improved = new_objective - objective
        objective = new_objective
        if n_moved == 0 or (empty == 0 and improved < tol):
            break
    return C, labels, objective, n_iter, n_empty


def _all_rows(nx: Backend, sums: np.ndarray, counts: np.ndarray, moved: int
              ) -> tuple[np.ndarray, np.ndarray, int]:
    """Cluster sums, sizes and moved rows over every rank's rows, in one all-reduce
    (this rank's own, unchanged, in one process)."""
    if not nx.rows.distributed:
        return sums, counts, int(moved)
    k = counts.shape[0]
    flat = nx.reduce_sum(np.concatenate([sums.ravel(), counts.astype(np.float64),
                                         [float(moved)]]))
    return (flat[: sums.size].reshape(sums.shape), flat[sums.size : sums.size + k]
            .astype(counts.dtype), int(flat[-1]))


def _unsure_rows(near: np.ndarray, far: np.ndarray) -> np.ndarray:
    """Rows whose label the angle bounds of :func:`_lloyd_bounded` cannot keep."""
    return np.flatnonzero(np.cos(np.clip(near.min(axis=1), 0.0, np.pi)) + BOUND_MARGIN
                          >= np.cos(np.minimum(far, np.pi)))


def _angles(sim: np.ndarray, pad: float) -> np.ndarray:
    """Angles :math:`\\arccos s + \\text{pad}` (float32) of similarities of unit vectors,
    taken in float32 (10x faster than float64; :data:`ANGLE_PAD` covers the rounding)."""
    out = np.arccos(np.clip(sim, -1.0, 1.0).astype(np.float32, copy=False))
    out += np.float32(pad)
    return out


def _move_rows(X: np.ndarray, labels: np.ndarray, sums: np.ndarray, counts: np.ndarray,
               rows: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster sums (float64) and sizes after ``rows`` move from ``labels[rows]`` to ``new``.

    One signed sparse product over the moved rows; all rows again when most moved.
    """
    k = sums.shape[0]
    if rows.size == 0:
        return sums, counts
    if rows.size > X.shape[0] // 4:
        lab = labels.copy()
        lab[rows] = new
        return (_segment_sum(_backend_np, X, lab, k).astype(np.float64),
                np.bincount(lab, minlength=k))
    m = rows.size
    signed = sparse.csr_matrix(
        (np.r_[np.ones(m, np.float32), -np.ones(m, np.float32)],
         (np.r_[new, labels[rows]], np.r_[np.arange(m), np.arange(m)])), shape=(k, m))
    sums += signed @ X[rows]
    counts = counts + np.bincount(new, minlength=k) - np.bincount(labels[rows], minlength=k)
    return sums, counts


def _own_similarity(X: np.ndarray, C: np.ndarray, labels: np.ndarray,
                    known: np.ndarray | None) -> np.ndarray:
    r""":math:`x_i \cdot c_{\ell_i}` for every row (``known`` when given: exact already)."""
    if known is not None:
        return known
    out = np.empty(X.shape[0], dtype=np.float32)
    step = max(1, (32 * 2**20) // (4 * X.shape[1]))
    for s in range(0, X.shape[0], step):
        out[s : s + step] = np.einsum("ij,ij->i", X[s : s + step], C[labels[s : s + step]])
    return out


def _faiss_run(X: np.ndarray, k: int, n_init: int, max_iter: int, seed: int,
               init: np.ndarray | None) -> tuple[np.ndarray, int]:
    """faiss's spherical k-means (random seeds, ``max_iter`` iterations, ``n_init`` redos)."""
    try:
        import faiss
    except ImportError as exc:
        from kec.errors import MissingDependencyError

        raise MissingDependencyError("faiss-cpu", "faiss", "engine='faiss'") from exc
    km = faiss.Kmeans(X.shape[1], k, niter=max_iter, nredo=n_init, spherical=True,
                      seed=seed, max_points_per_centroid=max(256, -(-X.shape[0] // k)),
                      min_points_per_centroid=1)
    km.train(X, init_centroids=init)
    return np.ascontiguousarray(km.centroids, dtype=np.float32), max_iter


def _seed_sample(init_size: int | None, X: Any, k: int, rng: np.random.Generator) -> Any:
    """The rows k-means++ seeds from: ``init_size`` rows drawn from ``rng`` over the global
    row indices (default ``max(5·K, 2048)``), or every row, on every rank
    (:meth:`kec.cluster.distributed.RowGroup.take`), so seeds do not depend on how rows
    are split."""
    rows = get_backend(X).rows
    n = rows.total(X.shape[0])
    size = init_size if init_size is not None else max(5 * k, 2048)
    size = int(min(n, max(size, k)))
    if size < n:
        return rows.take(X, np.sort(rng.choice(n, size=size, replace=False)))
    return rows.gather(X)


# --------------------------------------------------------------------------- estimator

def _refuse_text_or_bool(X: Any) -> None:
    """As the estimators: bool and string arrays are refused, not converted."""
    if sparse.issparse(X):
        return
    try:
        arr = np.asarray(X)
    except ValueError:  # ragged rows: scikit-learn's check says so later
        return
    if _text_or_bool(arr):
        check_real_dtype(arr, "features")


class SphericalKMeans(ClusterMixin, BaseEstimator):
    r"""K-means on the unit sphere (cosine similarity), a scikit-learn estimator.

    Maximises :math:`\sum_i \max_k x_i \cdot c_k` over unit centres :math:`c_k` by Lloyd
    iterations from greedy k-means++ seeds (Dhillon & Modha 2001; Arthur & Vassilvitskii
    2007); rows of ``X`` are L2-normalised first. See the module notes.

    Parameters
    ----------
    n_clusters : int
        Number of clusters ``K`` (1 <= K <= number of samples).
    n_init : int or "auto"
        Restarts; the run with the highest mean cosine wins (by more than
        :data:`RESTART_TIE`, relative; else the earlier one). ``"auto"``: see
        :func:`auto_n_init` (10 for small problems, 1 at ImageNet scale).
    max_iter : int
        Maximum Lloyd iterations per restart.
    tol : float
        Stop a restart when the mean cosine improves by less than ``tol`` (or no label
        changes).
    init : {"k-means++", "random"} or numpy.ndarray
        Seeding: greedy k-means++ with distance ``1 - cos``, ``K`` distinct random points,
        or given ``(K, d)`` centres (then one restart).
    init_size : int or None
        k-means++ seeds from a random subsample of this many points (as scikit-learn's
        ``MiniBatchKMeans``), one subsample shared by all restarts; default
        ``max(5·K, 2048)`` (the whole data when smaller).
        Seeding is ``K`` sequential passes over the sample, bound by memory bandwidth;
        at 50,000 × 512 with K = 1,000 on two cores, samples of 2,048, 5,000 and 10,000
        points gave fits of 18.5, 14.9 and 20.8 s with objectives within 0.01 %.
    random_state : int, numpy.random.Generator or None
        Seed for reproducible results. Random numbers are drawn on the host by numpy, so
        the seeds do not depend on the device.
    device : {"cpu", "cuda", "auto"} or str
        Where to compute: ``"cpu"`` runs numpy (a torch tensor input stays a torch CPU
        tensor), ``"cuda"``/``"cuda:N"`` torch on that GPU, ``"auto"`` a GPU when torch
        sees one. Results come back as numpy arrays.
    engine : {"kec", "faiss"}
        ``"faiss"`` runs ``faiss.Kmeans(spherical=True)`` (random seeds, exactly
        ``max_iter`` iterations per restart; needs ``pip install 'kec[faiss]'``), then
        labels every point with the same assignment as ``"kec"``.
    matmul_dtype : {None, "float32", "bfloat16", "float16"}
        Precision of the assignment products on a torch device: 16-bit inputs with
        float32 sums use a GPU's tensor cores (an assignment of 1.28M × 512 to 4,267
        centres took 69 ms against 121 ms in float32 on an H200; cosines to about 3
        significant digits, so near-ties may go either way). The final labels and
        ``objective_`` always come from a float32 assignment. ``None``: float32.

    Attributes
    ----------
    cluster_centers_ : numpy.ndarray
        ``(K, d)`` float32 unit centres.
    labels_ : numpy.ndarray
        ``(N,)`` int64 cluster of every training point.
    objective_ : float
        Mean cosine between points and their centres (higher is better).
    inertia_ : float
        ``sum_i (1 - x_i · c_{label_i})``, the spherical analogue of scikit-learn's.
    n_iter_ : int
        Lloyd iterations of the winning restart.
    n_init_ : int
        Restarts actually run.
    n_empty_reassigned_ : int
        Empty clusters re-seeded during the winning restart.
    n_features_in_ : int
        Dimension ``d`` seen by :meth:`fit`.
    device_ : str
        Device the fit ran on (``"cpu"``, ``"cuda"``...).

    Examples
    --------
    >>> import numpy as np
    >>> from kec import SphericalKMeans
    >>> X = np.array([[1, 0.1], [1, -0.1], [0.1, 1], [-0.1, 1]])
    >>> SphericalKMeans(2, random_state=0).fit_predict(X).tolist() in ([0, 0, 1, 1],
    ...                                                                 [1, 1, 0, 0])
    True
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        n_init: int | str = "auto",
        max_iter: int = 100,
        tol: float = 1e-6,
        init: str | np.ndarray = "k-means++",
        init_size: int | None = None,
        random_state: int | np.random.Generator | None = None,
        device: str = "cpu",
        engine: str = "kec",
        matmul_dtype: str | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.init = init
        self.init_size = init_size
        self.random_state = random_state
        self.device = device
        self.engine = engine
        self.matmul_dtype = matmul_dtype

    # ------------------------------------------------------------------ helpers
    def _validate(self, X: Any, reset: bool) -> Any:
        """``X`` as finite float32 on the compute device.

        numpy input is checked by scikit-learn (shape, dtype, ``n_features_in_``); for a
        CUDA device the value checks run on the GPU after the copy. A torch tensor stays on
        its device when ``device="cpu"`` (the torch CPU path), else moves to ``device``.
        """
        device = resolve_device(self.device)
        if not is_torch(X):
            _refuse_text_or_bool(X)
            try:
                X = validate_data(self, X, reset=reset, dtype=[np.float32, np.float64],
                                  ensure_all_finite=False)
            except ClusteringInputError:
                raise
            except TypeError as exc:
                raise ClusteringTypeError(str(exc)) from exc
            except ValueError as exc:
                raise ClusteringInputError(str(exc)) from exc
            if device == "cpu":
                # checked in the input precision (1e300 is "too large", not "infinite");
                # within MAX_ABS_FEATURE the cast to float32 cannot overflow
                X = as_features(X, "features", dtype=X.dtype)
                return np.ascontiguousarray(X, dtype=np.float32)
            X = torch_backend().asarray(X, device=device)
        else:
            torch = torch_backend().torch
            if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
                raise ClusteringInputError(
                    f"features must be a non-empty 2-D (n, d) tensor, got shape "
                    f"{tuple(X.shape)}"
                )
            if X.is_complex() or X.dtype == torch.bool:
                raise ClusteringInputError(f"features must be real numbers, got {X.dtype}")
            if reset:
                self.n_features_in_ = int(X.shape[1])
            elif X.shape[1] != self.n_features_in_:
                raise ClusteringInputError(
                    f"X has {X.shape[1]} features, but SphericalKMeans is expecting "
                    f"{self.n_features_in_} features as input"
                )
            X = X.detach()
            X = X.cpu() if device == "cpu" else X.to(device)
            if not X.is_floating_point():
                X = X.double()
        nx = get_backend(X)
        bad = np.flatnonzero(nx.to_numpy(~nx.isfinite(X).all(dim=1)))
        if bad.size:
            raise ClusteringInputError(
                f"features: {bad.size} row(s) contain NaN or infinite values "
                f"(first rows: {bad[:5].tolist()})"
            )
        top = float(X.abs().amax())
        if top > MAX_ABS_FEATURE:
            raise ClusteringInputError(
                f"features hold values beyond +/-{MAX_ABS_FEATURE:.0e} (largest magnitude "
                f"{top:.3g}); such values overflow when squared"
            )
        return X.float().contiguous()

    def _check_params(
        self, n: int, d: int, device: str, torch_input: bool = False
    ) -> tuple[int, int]:
        k = check_n_clusters(self.n_clusters, n)
        check_random_state(self.random_state)  # numpy's own error names no parameter
        if isinstance(self.init, str):
            if self.init not in ("k-means++", "random"):
                raise ClusteringInputError(
                    f"init must be 'k-means++', 'random' or an array, got {self.init!r}"
                )
        else:
            shape = tuple(np.shape(self.init))
            if shape != (k, d):
                raise ClusteringInputError(f"init centres have shape {shape}, expected {(k, d)}")
        if isinstance(self.n_init, str) and self.n_init == "auto":
            n_init = auto_n_init(n, k, d, device)
        elif isinstance(self.n_init, (int, np.integer)) and not isinstance(self.n_init, bool) \
                and self.n_init >= 1:
            n_init = int(self.n_init)
        else:
            raise ClusteringInputError(f"n_init must be an int >= 1 or 'auto', got {self.n_init!r}")
        if not isinstance(self.init, str):
            n_init = 1
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, (int, np.integer)) \
                or self.max_iter < 1:
            raise ClusteringInputError(f"max_iter must be an int >= 1, got {self.max_iter!r}")
        if not (isinstance(self.tol, (int, float, np.number)) and self.tol >= 0):
            raise ClusteringInputError(f"tol must be a number >= 0, got {self.tol!r}")
        if self.init_size is not None and (
                isinstance(self.init_size, bool)
                or not isinstance(self.init_size, (int, np.integer)) or self.init_size < 1):
            raise ClusteringInputError(f"init_size must be an int >= 1, got {self.init_size!r}")
        if self.matmul_dtype not in MATMUL_DTYPES:
            raise ClusteringInputError(
                f"matmul_dtype must be one of {MATMUL_DTYPES}, got {self.matmul_dtype!r}"
            )
        if self.matmul_dtype in ("bfloat16", "float16") and device == "cpu" \
                and not torch_input:
            raise ClusteringInputError(
                f"matmul_dtype={self.matmul_dtype!r} needs torch (device='cuda' or a tensor)"
            )
        if self.engine not in ENGINES:
            raise ClusteringInputError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        return k, n_init

    def _seed(self, X: Any, k: int, rng: np.random.Generator) -> Any:
        nx = get_backend(X)
        if not isinstance(self.init, str):
            C = as_features(nx.to_numpy(self.init) if is_torch(self.init) else self.init,
                            "init centres")
            return _normalize(nx.asarray(C, like=X), "init centres")
        rows = nx.rows
        n = rows.total(X.shape[0])
        if self.init == "random":
            return rows.take(X, rng.choice(n, size=k, replace=False))
        return _kmeans_plusplus(_seed_sample(self.init_size, X, k, rng), k, rng)

    def _seeds(self, X: Any, k: int, rng: np.random.Generator,
               run_rngs: list[np.random.Generator]) -> Iterator[Any]:
        """Seed centres of every restart: k-means++ restarts share one subsample (drawn
        from ``rng``) and are seeded together (:func:`_kmeans_plusplus_batch`), in groups
        that keep the candidate similarities under :data:`SEED_BATCH_ENTRIES`."""
        if not (isinstance(self.init, str) and self.init == "k-means++"):
            for run_rng in run_rngs:
                yield self._seed(X, k, run_rng)
            return
        nx = get_backend(X)
        X = _seed_sample(self.init_size, X, k, rng)
        size = X.shape[0]
        group = max(1, SEED_BATCH_ENTRIES // ((2 + int(math.log(k))) * size))
        for start in range(0, len(run_rngs), group):
            for idx in _kmeans_plusplus_batch(X, k, run_rngs[start : start + group]):
                yield _index(nx, X, idx)

    # ------------------------------------------------------------------ API
    def fit(self, X: Any, y: Any = None) -> SphericalKMeans:
        """Cluster ``X`` (rows are L2-normalised first).

        Zero rows have no direction: they are left out of the fit, have cosine 0 with every
        centre and join cluster 0 (with a warning).

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
            Features; a torch tensor is clustered with torch on its device when
            ``device="cpu"``, else on ``device``.
        y : None
            Ignored (scikit-learn convention).

        Returns
        -------
        SphericalKMeans
            ``self``, fitted.
        """
        X = self._validate(X, reset=True)
        n, d = X.shape
        rows = get_backend(X).rows  # under torchrun: this rank's rows of the problem
        n_all = rows.total(n)
        k, n_init = self._check_params(n_all, d, resolve_device(self.device), is_torch(X))
        if rows.distributed and self.engine != "kec":
            raise ClusteringInputError("engine='faiss' runs in one process; use engine='kec' "
                                       "with rows split over processes")
        X, zero = _unit_rows(X)
        nx = get_backend(X)
        keep = None
        n_zero = rows.total(zero.size)
        if n_zero:
            keep = np.setdiff1d(np.arange(n), zero)
            if k > n_all - n_zero:
                raise ClusteringInputError(
                    f"features: {n_zero} of {n_all} rows are zero (no direction), leaving "
                    f"fewer rows than n_clusters={k}"
                )
            first = (zero[:5] + rows.offset(n)).tolist()  # global row numbers
            if zero.size:
                warnings.warn(
                    f"features: {zero.size} row(s) are zero and have no direction; they are "
                    f"left out of the fit and join cluster 0 (first rows: {first})",
                    UserWarning, stacklevel=2,
                )
            X = _index(nx, X, keep)
        rng = np.random.default_rng(self.random_state)
        if self.engine == "faiss":
            init = None if isinstance(self.init, str) else nx.to_numpy(self._seed(X, k, rng))
            C, n_iter = _faiss_run(np.ascontiguousarray(nx.to_numpy(X)), k, n_init,
                                   int(self.max_iter), int(rng.integers(2**31)), init)
            C = nx.asarray(C, like=X)
            labels, best = _assign(X, C)
            best_run = (C, labels, _mean64(nx, best), n_iter, 0)
        else:
            low = self.matmul_dtype in ("bfloat16", "float16")
            XL = nx.astype(X, self.matmul_dtype) if low else None
            best_run = None
            run_rngs = [np.random.default_rng(rng.integers(2**63)) for _ in range(n_init)]
            for seeds in self._seeds(X, k, rng, run_rngs):
                run = _lloyd(X, seeds, int(self.max_iter), float(self.tol), XL)
                if best_run is None or \
                        run[2] > best_run[2] + RESTART_TIE * max(1.0, abs(best_run[2])):
                    best_run = run
        assert best_run is not None
        C, labels, objective, n_iter, n_empty = best_run
        labels = nx.to_numpy(labels).astype(np.int64, copy=False)
        if keep is not None:
            full = np.zeros(n, dtype=np.int64)
            full[keep] = labels
            labels = full
            objective = objective * (n_all - n_zero) / n_all
        self.cluster_centers_ = np.ascontiguousarray(nx.to_numpy(C), dtype=np.float32)
        self.labels_ = labels
        self.objective_ = float(objective)
        self.inertia_ = float(n_all * (1.0 - objective))
        self.n_iter_ = int(n_iter)
        self.n_init_ = n_init
        self.n_empty_reassigned_ = int(n_empty)
        self.device_ = nx.device(X)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Most similar fitted centre of every row of ``X`` (int64 numpy labels).

        Zero rows join cluster 0, as in :meth:`fit`.
        """
        if not hasattr(self, "cluster_centers_"):
            raise ClusteringNotFittedError(
                "This SphericalKMeans instance is not fitted yet: call fit() first"
            )
        X, zero = _unit_rows(self._validate(X, reset=False))
        nx = get_backend(X)
        labels, _ = _assign(X, nx.asarray(self.cluster_centers_, like=X))
        labels = nx.to_numpy(labels).astype(np.int64, copy=True)
        labels[zero] = 0
        return labels

    def fit_predict(self, X: Any, y: Any = None, **kwargs: Any) -> np.ndarray:
        """:meth:`fit` and return ``labels_``."""
        return self.fit(X).labels_
