r"""Guarded fusion: decide, from the data, how far to trust the knowledge.

Grounded knowledge can help a lot (when the raw features are dominated by a nuisance,
such as a photo's background) and can hurt a lot (when the knowledge is poor, or the
raw features already separate the classes). kec trusts the knowledge only where the
data corroborates it, and measures that on the items themselves (docs/methods.md §4.3).

Three partitions of the items, each by spherical k-means with K clusters: :math:`P_x`
on the raw features :math:`x_i`, :math:`P_c` on the grounded concept features
:math:`\hat c_i`, and, when needed, :math:`P_r` on the **residual** features

.. math::
    x^\perp_i = \mathrm{normalize}\big((I - QQ^\top)\,x_i\big),

where the columns of :math:`Q` span the between-cluster subspace of :math:`P_x` (the
top :math:`K-1` right singular vectors of its centred cluster means). If :math:`P_x`
follows a nuisance, :math:`Q` estimates the nuisance directions and :math:`x^\perp`
is what is left once they are projected out (the linear-projection idea of Ravfogel
et al. 2020, arXiv:2004.07667, and Chuang et al. 2023, arXiv:2302.00070, with the
directions found by the data's own clusters instead of labels or prompts).

**Agreement** :math:`s_{xc} = \mathrm{NMI}(P_x, P_c)`: does the data's dominant
structure match the knowledge? **Corroboration** :math:`s_{rc} = \mathrm{NMI}(P_r,
P_c)`: does the data's structure *after the dominant one is removed* match it?

Decision (thresholds are kec's choices, parameters of :func:`decide`):

``refine``
    :math:`s_{xc} \ge \theta_x`: start from the knowledge partition, refine it on
    :math:`x` alone (spherical Lloyd iterations), and keep it only if it fits :math:`x`
    better than k-means with restarts does: the knowledge proposes a basin, the data
    has the last word.
``nuisance``
    :math:`s_{xc} < \theta_x`, :math:`s_{rc} \ge \theta_r` and :math:`s_{rc} > s_{xc}`:
    the knowledge describes the data's secondary structure better than its dominant
    one, so the dominant one is taken for a nuisance. Refine the knowledge partition on
    :math:`x^\perp` (kept only if it beats k-means on :math:`x^\perp`), then run Lloyd
    on :math:`[x^\perp_i ; \beta \hat c_i ; \beta \hat a_i]` from there.
``data``
    otherwise: cluster :math:`x` alone (k-means with restarts). The knowledge still
    names the clusters.

Knowledge that is self-consistent but corroborated by nothing in the data (a wrong or
unrelated knowledge file) therefore never drives the partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from kec.cluster._checks import ClusteringInputError, l2_normalize_rows
from kec.cluster.backend import as_backend_array, dtype_name, get_backend, is_torch
from kec.cluster.distributed import current_rows

MODES = ("data", "refine", "nuisance")
DEFAULT_AGREEMENT = 0.5
"""Agreement at and above which the knowledge is fully trusted (:math:`\\theta_x`)."""
DEFAULT_AGREEMENT_MARGIN = 0.1
"""Trust ramps from 0 at :math:`\\theta_x - m` to 1 at :math:`\\theta_x` (:math:`m`)."""
DEFAULT_OBJECTIVE_TOLERANCE = 0.05
"""Share of the data's objective that fully trusted knowledge may cost (:math:`\\epsilon`)."""
DEFAULT_ANCHOR_WEIGHT = 0.1
"""Pull of a cluster's knowledge direction on its centre at full trust (:math:`\\lambda`)."""
DEFAULT_SPREAD_RATIO = 2.0
r"""Knowledge partitions farther from the data's than this many times the spread of the
data's own k-means runs are not trusted (:math:`\rho_{\max}`)."""
DEFAULT_SPREAD_MARGIN = 0.5
r"""Trust in the partition ramps from 1 at :math:`\rho_{\max} - m_\rho` to 0 at
:math:`\rho_{\max}` (:math:`m_\rho`)."""
DEFAULT_SPREAD_RUNS = 4
"""Extra k-means runs on :math:`x` (other seeds) that measure the data's own spread."""
DEFAULT_CORROBORATION = 0.2
DEFAULT_BETA = 0.25
MIN_PER_CLUSTER = 5
"""The residual test needs at least this many items per cluster on average."""


@dataclass
class GuardDecision:
    """What :func:`decide` measured and chose.

    Attributes
    ----------
    mode : str
        ``"data"``, ``"refine"`` or ``"nuisance"``.
    agreement : float
        :math:`s_{xc}`.
    corroboration : float or None
        :math:`s_{rc}` (``None`` when not measured: high agreement, or K too large
        for the dimension).
    knowledge_labels, data_labels : numpy.ndarray
        :math:`P_c` and :math:`P_x`.
    residual, residual_labels : numpy.ndarray or None
        :math:`x^\\perp` and :math:`P_r` when measured.
    info : dict
        JSON-ready summary (thresholds, scores, objectives and the reason).
    trust : float
        :math:`t \\in [0, 1]`, from the agreement (:func:`trust_weight`).
    refined_labels : numpy.ndarray or None
        The knowledge-anchored refinement when it was computed (kept in ``refine``).
    """

    mode: str
    agreement: float
    corroboration: float | None
    knowledge_labels: np.ndarray
    data_labels: np.ndarray
    residual: np.ndarray | None = None
    residual_labels: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    trust: float = 0.0
    refined_labels: np.ndarray | None = None


def _kmeans(F: np.ndarray, k: int, random_state: int | None, n_init: Any,
            device: str | None = None) -> np.ndarray:
    from kec.cluster.kmeans import SphericalKMeans

    km = SphericalKMeans(n_clusters=k, random_state=random_state, n_init=n_init,
                         device=device or "cpu")
    return np.asarray(km.fit_predict(F), dtype=np.int64)


def _nmi(a: np.ndarray, b: np.ndarray) -> float:
    """NMI of two partitions of the items, over every rank's rows
    (:mod:`kec.cluster.distributed`: the labels are gathered first)."""
    rows = current_rows()
    return _nmi_of(rows.gather(np.asarray(a)), rows.gather(np.asarray(b)))


def _nmi_of(a: np.ndarray, b: np.ndarray) -> float:
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(a, b))


def nmi_above_chance(a: np.ndarray, b: np.ndarray, *, n_permutations: int = 3,
                     random_state: int | None = 0) -> float:
    r"""NMI of two partitions minus its chance level.

    .. math::  \mathrm{NMI}(a, b) - \frac1P\sum_{p=1}^{P}\mathrm{NMI}(a, \pi_p(b))

    with :math:`\pi_p` random permutations of the items. Two unrelated partitions of
    ``N`` items into ``K`` parts score an NMI that grows with ``K/N`` (about 0.03 at
    1,500 items and 15 parts, about 0.3 at 200 and 20); the difference is near 0 for
    unrelated partitions at every size (Vinh et al. 2010, JMLR 11, correct MI for chance
    analytically; permutations are cheaper at ImageNet scale).
    """
    rows = current_rows()  # partitions of rows split over processes: compare them whole
    a, b = rows.gather(np.asarray(a)), rows.gather(np.asarray(b))
    rng = np.random.default_rng(random_state)
    chance = np.mean([_nmi_of(a, b[rng.permutation(b.size)])
                      for _ in range(n_permutations)])
    return _nmi_of(a, b) - float(chance)


ASSIGN_BLOCK_BYTES = 256 * 2**20
"""Memory of one block of item-centre similarities in :func:`lloyd_refine`."""


def _cluster_sums(F: Any, y: Any, n_clusters: int) -> Any:
    """``(K, d)`` sums of the rows of ``F`` per label, on ``F``'s backend and device, over
    every rank's rows (:mod:`kec.cluster.distributed`)."""
    nx = get_backend(F)
    if nx.name == "numpy":
        onehot = sparse.csr_matrix((np.ones(y.size, dtype=F.dtype), (y, np.arange(y.size))),
                                   shape=(n_clusters, y.size))
        return nx.reduce_sum(np.asarray(onehot @ F, dtype=np.float64))  # no copy of F
    sums = nx.zeros((n_clusters, F.shape[1]), dtype=dtype_name(F.dtype), device=nx.device(F))
    return nx.reduce_sum(sums.index_add_(0, y, F).double())


def _assign(F: Any, centres: Any, bias: Any) -> Any:
    """``argmax_k (f_i · mu_k + bias_k)`` for every row, by row blocks."""
    nx = get_backend(F)
    step = max(1, ASSIGN_BLOCK_BYTES // max(1, 4 * centres.shape[0]))
    Ct = centres.T
    parts = [nx.argmax(nx.matmul(F[s:s + step], Ct) + bias, axis=1)
             for s in range(0, F.shape[0], step)]
    return nx.concatenate(parts) if len(parts) > 1 else parts[0]


def _counts(y: Any, n_clusters: int) -> Any:
    """``(K,)`` float64 cluster sizes over every rank's rows, on ``y``'s backend and
    device."""
    if isinstance(y, np.ndarray):
        return current_rows().sum(np.bincount(y, minlength=n_clusters).astype(np.float64))
    return current_rows().sum(y.bincount(minlength=n_clusters).double())


def lloyd_refine(
    F: np.ndarray, labels: np.ndarray, n_clusters: int, *, max_iter: int = 100,
    anchors: np.ndarray | None = None, anchor_weight: float = 0.0,
    device: str | None = None,
) -> tuple[np.ndarray, int]:
    r"""Spherical Lloyd iterations on ``F`` started from the partition ``labels``.

    Without anchors (``anchor_weight = 0``), plain spherical k-means:

    .. math::
        \mu_k = \mathrm{normalize}\Big(\sum_{i: y_i = k} f_i\Big), \qquad
        y_i \leftarrow \arg\max_k f_i \cdot \mu_k .

    With anchors :math:`A_k` (unit vectors in the space of ``F``) and weight
    :math:`\lambda`, every member of cluster :math:`k` also pulls its centre towards
    :math:`A_k`: the iterations are coordinate ascent on

    .. math::
        J(y, \mu) = \sum_i \big(f_i + \lambda A_{y_i}\big)\cdot\mu_{y_i}, \qquad
        \mu_k = \mathrm{normalize}\big(S_k + \lambda n_k A_k\big), \qquad
        y_i \leftarrow \arg\max_k\, f_i\cdot\mu_k + \lambda A_k\cdot\mu_k

    (:math:`S_k`, :math:`n_k` the sum and size of cluster :math:`k`), so :math:`J` never
    decreases and the iterations stop. Guarded fusion anchors cluster :math:`k` to the
    direction its knowledge partition gave it (docs/methods.md §4.3).

    Runs until no label changes or ``max_iter``. A cluster that empties keeps its last
    centre (it may win items back); a label that ``labels`` never uses stays unused.
    Runs on ``device`` (numpy on the CPU, torch on a GPU:
    :func:`kec.cluster.backend.as_backend_array`). Returns ``(labels, iterations)`` with
    numpy labels.
    """
    F = np.asarray(F, dtype=np.float32) if not is_torch(F) else F
    y0 = np.asarray(labels, dtype=np.int64).copy()
    if y0.shape != (F.shape[0],) or (y0.size and (y0.min() < 0 or y0.max() >= n_clusters)):
        raise ClusteringInputError("labels must be (N,) ints in 0..n_clusters-1")
    if not np.isfinite(anchor_weight) or anchor_weight < 0:
        raise ClusteringInputError(f"anchor_weight must be >= 0, got {anchor_weight}")
    Fb = as_backend_array(F, device, "float32")
    nx = get_backend(Fb)
    dev = nx.device(Fb)
    y = nx.asarray(y0, device=dev)
    A = None
    if anchors is not None and anchor_weight > 0:
        A = np.asarray(anchors, dtype=np.float64)
        if A.shape != (n_clusters, F.shape[1]):
            raise ClusteringInputError(f"anchors must be ({n_clusters}, {F.shape[1]}), got "
                                       f"{A.shape}")
        A = nx.asarray(l2_normalize_rows(A) * float(anchor_weight), device=dev)
    centres = nx.zeros((n_clusters, Fb.shape[1]), dtype="float32", device=dev)
    # a cluster without a centre yet (never filled) cannot win items
    bias = nx.full(n_clusters, -np.inf, dtype="float32", device=dev)
    it = 0
    while it < max_iter:
        it += 1
        sums = _cluster_sums(Fb, y, n_clusters)
        if A is not None:
            sums = sums + _counts(y, n_clusters)[:, None] * A
        norms = nx.norm(sums, axis=1)
        filled = norms > 0
        mu = sums[filled] / norms[filled][:, None]
        centres[filled] = nx.astype(mu, "float32")
        bias[filled] = nx.astype(nx.sum(A[filled] * mu, axis=1), "float32") \
            if A is not None else 0.0
        new = _assign(Fb, centres, bias)
        if not nx.reduce_sum(int(bool(nx.any(new != y)))):  # no label moved on any rank
            break
        y = new
    return np.asarray(nx.to_numpy(y), dtype=np.int64), it


def nuisance_basis(X: np.ndarray, labels: np.ndarray, n_clusters: int,
                   max_rank: int | None = None) -> np.ndarray:
    r"""``(d, r)`` float32 :math:`Q`: the between-cluster subspace of ``labels`` that
    :func:`nuisance_residual` projects out (``r = 0``: nothing to project).

    .. math::
        Q = V_{:, 1..r}, \quad \bar\mu - \mathbf 1 m^\top = U\Sigma V^\top

    with :math:`\bar\mu` the ``(K', d)`` means of the non-empty clusters, :math:`m` their
    mean and :math:`r = K' - 1` (at most ``d - 1`` and ``max_rank``: the ``r`` most
    separating directions; singular values below :math:`10^{-6}\sigma_1` are not
    projected).
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)
    sums = _cluster_sums(X, y, int(n_clusters))
    counts = current_rows().sum(np.bincount(y, minlength=int(n_clusters)))
    means = sums[counts > 0] / counts[counts > 0, None]
    rank = min(means.shape[0] - 1, X.shape[1] - 1,
               max_rank if max_rank is not None else X.shape[1])
    if rank < 1:
        return np.zeros((X.shape[1], 0), dtype=np.float32)
    _, sv, vt = np.linalg.svd(means - means.mean(axis=0), full_matrices=False)
    rank = min(rank, int((sv > 1e-6 * max(sv[0], 1e-30)).sum()))
    return vt[:max(rank, 0)].T.astype(np.float32)


def nuisance_max_rank(dim: int) -> int:
    """At most ``d / 4`` directions go: with ``K - 1 > d / 4`` the most separating ones."""
    return int(dim) // 4


def nuisance_residual(X: np.ndarray, labels: np.ndarray, n_clusters: int,
                      max_rank: int | None = None) -> tuple[np.ndarray, int]:
    r"""Rows of ``X`` with the between-cluster subspace of ``labels`` projected out.

    .. math::
        x^\perp_i = \mathrm{normalize}\big((I - QQ^\top)\,x_i\big)

    with :math:`Q` from :func:`nuisance_basis`. Returns ``(x_perp, r)``, float32.
    """
    X = np.asarray(X, dtype=np.float32)
    Q = nuisance_basis(X, labels, n_clusters, max_rank)
    if Q.shape[1] < 1:
        return l2_normalize_rows(X.copy()), 0
    return l2_normalize_rows(X - (X @ Q) @ Q.T), int(Q.shape[1])


def null_agreement(X: np.ndarray, data_labels: np.ndarray, n_clusters: int, *,
                   n_draws: int = 3, random_state: int | None = 0) -> float:
    r"""Agreement with the data's partition that knowledge-free directions reach.

    .. math::
        s_0 = \frac1D\sum_{d=1}^{D}\mathrm{NMI}^+\big(P_x,\ \arg\max_k x_i\cdot r^{(d)}_k\big)

    with :math:`r^{(d)}_k` ``n_clusters`` random unit directions (``n_draws`` draws).
    Any projection of clustered items partitions them along their clusters to some
    degree: in 384 dimensions of MiniLM about 0.1-0.2, in a few dozen dimensions up to
    0.8. Knowledge earns trust only by agreeing more than this.
    """
    rng = np.random.default_rng(random_state)
    X = np.asarray(X, dtype=np.float32)
    scores = []
    for _ in range(int(n_draws)):
        R = l2_normalize_rows(rng.standard_normal((int(n_clusters), X.shape[1]))
                              .astype(np.float32))
        scores.append(nmi_above_chance(data_labels, (X @ R.T).argmax(axis=1),
                                       random_state=random_state))
    return float(np.mean(scores)) if scores else 0.0


def trust_weight(agreement: float, threshold: float = DEFAULT_AGREEMENT,
                 margin: float = DEFAULT_AGREEMENT_MARGIN) -> float:
    r"""How far the knowledge is trusted, from its agreement with the data.

    .. math::
        t = \mathrm{clip}\Big(\frac{s_{xc} - (\theta_x - m)}{m},\ 0,\ 1\Big)

    0 below :math:`\theta_x - m`, 1 at and above :math:`\theta_x`, linear between
    (``margin = 0``: a step at :math:`\theta_x`, the rule of kec 0.1.0).
    """
    if agreement >= threshold:
        return 1.0
    if margin <= 0 or agreement <= threshold - margin:
        return 0.0
    return float(np.clip((agreement - (threshold - margin)) / margin, 0.0, 1.0))


def spread_trust(ratio: float, max_ratio: float = DEFAULT_SPREAD_RATIO,
                 margin: float = DEFAULT_SPREAD_MARGIN) -> float:
    r"""How far a knowledge partition is trusted, from its distance to the data's.

    .. math::
        t_\rho = \mathrm{clip}\Big(\frac{\rho_{\max} - \rho}{m_\rho},\ 0,\ 1\Big),
        \qquad \rho = \frac{1 - \mathrm{NMI}(P_k, P_x)}
                          {\operatorname{median}_{r \ne r'}
                           \big(1 - \mathrm{NMI}(P_x^{(r)}, P_x^{(r')})\big)}

    :math:`\rho` compares the distance of the knowledge partition :math:`P_k` from the
    data's k-means partition :math:`P_x` with the distances between k-means partitions
    of :math:`x` from different seeds: at :math:`\rho \le 1` the knowledge's partition
    is as close to the data's as the data's own runs are to each other, and the data
    cannot tell them apart. 1 at and below :math:`\rho_{\max} - m_\rho`, 0 at and
    above :math:`\rho_{\max}` (``max_ratio = inf``: always 1).
    """
    if not np.isfinite(max_ratio) or ratio <= max_ratio - margin:
        return 1.0
    if ratio >= max_ratio:
        return 0.0
    return float(np.clip((max_ratio - ratio) / margin, 0.0, 1.0))


def data_spread(X: np.ndarray, data_labels: np.ndarray, n_clusters: int, *,
                n_runs: int = DEFAULT_SPREAD_RUNS, random_state: int | None = 0,
                n_init: Any = "auto", device: str | None = None) -> float:
    r"""Median NMI distance :math:`1 - \mathrm{NMI}` between the k-means partitions of
    ``X`` from ``n_runs`` other seeds and ``data_labels`` (every pair of the
    ``n_runs + 1`` partitions): how much the data's own clustering moves from seed to
    seed. The median keeps one run stuck in a poor local optimum from inflating it."""
    seeds = np.random.SeedSequence(None if random_state is None else int(random_state))
    runs = [np.asarray(data_labels)] + [
        _kmeans(X, n_clusters, int(child.generate_state(1)[0]), n_init, device)
        for child in seeds.spawn(int(n_runs))]
    dist = [1.0 - _nmi(runs[i], runs[j])
            for i in range(len(runs)) for j in range(i + 1, len(runs))]
    return float(np.median(dist)) if dist else 0.0


def knowledge_anchors(concept: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    r"""``(K, d)`` unit direction of every cluster of the knowledge partition,
    :math:`A_k = \mathrm{normalize}\big(\sum_{i: y_i = k} \hat c_i\big)` (zero rows for
    unused labels)."""
    sums = _cluster_sums(l2_normalize_rows(np.array(concept, dtype=np.float32)),
                         np.asarray(labels, dtype=np.int64), int(n_clusters))
    return l2_normalize_rows(sums)


def _check_guard_params(**params: float) -> None:
    for name, value in params.items():
        if np.isnan(value) or value < 0 or (np.isinf(value) and name != "spread_ratio"):
            raise ClusteringInputError(f"{name} must be a finite number >= 0, got {value}")


@dataclass(frozen=True)
class _Refinement:
    """The parameters of the knowledge-anchored refinement and of its acceptance."""

    tolerance: float
    anchor_weight: float
    spread_ratio: float
    spread_margin: float
    spread_runs: int
    random_state: int | None
    n_init: Any
    max_iter: int
    device: str | None


def _spread_check(X: np.ndarray, refined: np.ndarray, p_x: np.ndarray, k: int,
                  cfg: _Refinement) -> dict[str, float]:
    """Distance of the refined partition from the data's, against the data's spread."""
    if not np.isfinite(cfg.spread_ratio):
        return {"spread_trust": 1.0}
    distance = 1.0 - _nmi(refined, p_x)
    spread = data_spread(X, p_x, k, n_runs=cfg.spread_runs, random_state=cfg.random_state,
                         n_init=cfg.n_init, device=cfg.device)
    ratio = 0.0 if distance <= 1e-9 else distance / max(spread, 1e-9)
    return {"distance": round(distance, 4), "data_spread": round(spread, 4),
            "spread_ratio": round(ratio, 3),
            "spread_trust": round(spread_trust(ratio, cfg.spread_ratio, cfg.spread_margin), 4)}


def _try_knowledge(X: np.ndarray, concept: np.ndarray, p_c: np.ndarray, p_x: np.ndarray,
                   k: int, trust: float, cfg: _Refinement,
                   info: dict[str, Any]) -> np.ndarray | None:
    """The knowledge-anchored refinement, or ``None`` when it costs the data too much."""
    refined, it = lloyd_refine(X, p_c, k, max_iter=cfg.max_iter,
                               anchors=knowledge_anchors(concept, p_c, k),
                               anchor_weight=cfg.anchor_weight * trust, device=cfg.device)
    o_k, o_x = spherical_objective(X, refined), spherical_objective(X, p_x)
    loss = (o_x - o_k) / max(abs(o_x), 1e-12)
    spread = _spread_check(X, refined, p_x, k, cfg)
    # t**2: knowledge the data half-supports buys a quarter of the slack (on the quick
    # WordNet benchmark the 135M model's kec+cae partitions at t = 0.35-0.54 cost 1.3-2.2 %
    # and lost 4-5 ACC points; fully trusted knowledge keeps the whole tolerance)
    allowed = cfg.tolerance * trust ** 2 * spread["spread_trust"]
    info["refinement"] = {"iterations": it,
                          "anchor_weight": round(cfg.anchor_weight * trust, 4),
                          "objective": round(o_k, 4), "kmeans_objective": round(o_x, 4),
                          "loss": round(loss, 5), **spread, "allowed_loss": round(allowed, 5)}
    why = f"agreement {info['agreement']:.3f} gives trust {trust:.2f}"
    if "spread_ratio" in spread:
        why += (f"; the knowledge partition is {spread['spread_ratio']:.2f} times as far from "
                f"the data's as the data's own k-means runs are from each other "
                f"(trust {spread['spread_trust']:.2f})")
    kept = bool(loss <= allowed)
    info["refinement"]["kept"] = kept
    info["reason"] = (f"{why}; it costs {100 * loss:.2f} % of the data's objective, "
                      f"{'within' if kept else 'more than'} the {100 * allowed:.2f} % "
                      f"allowed")
    return refined if kept else None


def decide(
    X: np.ndarray,
    concept: np.ndarray,
    n_clusters: int,
    *,
    agreement_threshold: float = DEFAULT_AGREEMENT,
    agreement_margin: float = DEFAULT_AGREEMENT_MARGIN,
    objective_tolerance: float = DEFAULT_OBJECTIVE_TOLERANCE,
    anchor_weight: float = DEFAULT_ANCHOR_WEIGHT,
    spread_ratio: float = DEFAULT_SPREAD_RATIO,
    spread_margin: float = DEFAULT_SPREAD_MARGIN,
    spread_runs: int = DEFAULT_SPREAD_RUNS,
    corroboration_threshold: float = DEFAULT_CORROBORATION,
    random_state: int | None = 0,
    n_init: Any = "auto",
    max_iter: int = 100,
    device: str | None = None,
) -> GuardDecision:
    r"""Measure how far the data supports the knowledge, and pick the mode.

    1. :math:`P_x`, :math:`P_c`: k-means of the raw and of the grounded concept
       features; agreement :math:`s_{xc} = \mathrm{NMI}^+(P_x, P_c)` and trust
       :math:`t` (:func:`trust_weight`), times
       :math:`\mathrm{clip}((s_{xc} - s_0)/m - 1, 0, 1)`: no trust unless the knowledge
       agrees with the data by :math:`m` more than random directions do
       (:func:`null_agreement`), full trust from :math:`2m` more.
    2. If :math:`t > 0`: Lloyd iterations on :math:`x` from :math:`P_c`, each cluster
       anchored to its knowledge direction with weight :math:`t\lambda`
       (:func:`lloyd_refine`, :func:`knowledge_anchors`). Kept (``refine``) when it
       costs at most :math:`t^2\,t_\rho\,\epsilon` of the objective of k-means on
       :math:`x`, with :math:`t_\rho` from the partition's distance to :math:`P_x`
       against the spread of k-means runs of :math:`x` (:func:`spread_trust`).
    3. Otherwise, if :math:`s_{xc} < \theta_x`, the residual test: ``nuisance`` when
       :math:`s_{rc} \ge \theta_r` and :math:`s_{rc} > s_{xc}`.
    4. Otherwise ``data``.

    Parameters
    ----------
    X : numpy.ndarray
        ``(N, d)`` raw features.
    concept : numpy.ndarray
        ``(N, d_c)`` grounded concept features :math:`c_i`.
    n_clusters : int
        K.
    agreement_threshold, agreement_margin : float
        :math:`\theta_x` and :math:`m` (full trust at :math:`\theta_x`, none below
        :math:`\theta_x - m`).
    objective_tolerance : float
        :math:`\epsilon`, the share of the data's objective that fully trusted
        knowledge may cost.
    anchor_weight : float
        :math:`\lambda`.
    spread_ratio, spread_margin : float
        :math:`\rho_{\max}` and :math:`m_\rho` of :func:`spread_trust` (``inf``: the
        partition's distance from the data's is not measured).
    spread_runs : int
        Extra k-means runs of :func:`data_spread`.
    corroboration_threshold : float
        :math:`\theta_r`.
    random_state, n_init, device
        Of the k-means runs (two or three).
    max_iter : int
        Of the Lloyd refinement.
    """
    _check_guard_params(agreement_margin=agreement_margin,
                        objective_tolerance=objective_tolerance, anchor_weight=anchor_weight,
                        spread_ratio=spread_ratio, spread_margin=spread_margin,
                        spread_runs=spread_runs)
    k = int(n_clusters)
    X = l2_normalize_rows(np.array(X, dtype=np.float32))
    p_c = _kmeans(l2_normalize_rows(np.array(concept, dtype=np.float32)), k, random_state,
                  n_init, device)
    p_x = _kmeans(X, k, random_state, n_init, device)
    agreement = nmi_above_chance(p_x, p_c, random_state=random_state)
    trust = trust_weight(agreement, agreement_threshold, agreement_margin)
    null = null_agreement(X, p_x, k, random_state=random_state) if trust > 0 else None
    if null is not None and agreement_margin > 0:  # beat random directions by a margin
        trust *= float(np.clip((agreement - null) / agreement_margin - 1.0, 0.0, 1.0))
    elif null is not None and agreement <= null:
        trust = 0.0
    info: dict[str, Any] = {"agreement": round(agreement, 4), "trust": round(trust, 4),
                            "null_agreement": None if null is None else round(null, 4),
                            "corroboration": None,
                            "agreement_threshold": agreement_threshold,
                            "agreement_margin": agreement_margin,
                            "objective_tolerance": objective_tolerance,
                            "spread_ratio": spread_ratio if np.isfinite(spread_ratio) else None,
                            "spread_margin": spread_margin,
                            "corroboration_threshold": corroboration_threshold}
    if trust > 0:
        cfg = _Refinement(objective_tolerance, anchor_weight, spread_ratio, spread_margin,
                          int(spread_runs), random_state, n_init, max_iter, device)
        refined = _try_knowledge(X, concept, p_c, p_x, k, trust, cfg, info)
        if refined is not None:
            info["mode"] = "refine"
            return GuardDecision("refine", agreement, None, p_c, p_x, info=info,
                                 trust=trust, refined_labels=refined)
    elif null is not None:
        info["reason"] = (f"agreement {agreement:.3f} is not above what random directions "
                          f"reach ({null:.3f}) by {agreement_margin}: no trust")
    else:
        info["reason"] = (f"agreement {agreement:.3f} is below "
                          f"{agreement_threshold - agreement_margin:.3f}: no trust")
    if agreement >= agreement_threshold:
        info["mode"] = "data"
        return GuardDecision("data", agreement, None, p_c, p_x, info=info, trust=trust)
    n_items = current_rows().total(X.shape[0])
    if n_items < MIN_PER_CLUSTER * k:
        info.update(mode="data", note=f"residual not measured ({n_items} items for "
                                      f"{k} clusters, fewer than {MIN_PER_CLUSTER} each)")
        return GuardDecision("data", agreement, None, p_c, p_x, info=info, trust=trust)
    # at most d/4 directions go: with K - 1 > d/4 the most separating ones
    residual, rank = nuisance_residual(X, p_x, k, max_rank=X.shape[1] // 4)
    if rank < 1:
        info.update(mode="data", note=f"residual not measured (no between-cluster "
                                      f"direction; d = {X.shape[1]})")
        return GuardDecision("data", agreement, None, p_c, p_x, info=info, trust=trust)
    p_r = _kmeans(residual, k, random_state, n_init, device)
    corroboration = nmi_above_chance(p_r, p_c, random_state=random_state)
    mode = ("nuisance" if corroboration >= corroboration_threshold
            and corroboration > agreement else "data")
    info.update(mode=mode, corroboration=round(corroboration, 4), nuisance_rank=rank)
    if mode == "nuisance":
        info["reason"] = (f"corroboration {corroboration:.3f} under the data's dominant "
                          f"structure exceeds agreement {agreement:.3f} and "
                          f"{corroboration_threshold}: that structure is a nuisance")
    return GuardDecision(mode, agreement, corroboration, p_c, p_x, residual, p_r, info,
                         trust=trust)


def _refine_checked(F: np.ndarray, start: np.ndarray, kmeans_labels: np.ndarray,
                    n_clusters: int, max_iter: int, info: dict[str, Any],
                    device: str | None) -> np.ndarray:
    """Lloyd on ``F`` from ``start``; the k-means partition instead if it fits ``F`` better."""
    labels, it = lloyd_refine(F, start, n_clusters, max_iter=max_iter, device=device)
    refined, plain = spherical_objective(F, labels), spherical_objective(F, kmeans_labels)
    info["iterations"] = it
    info["objective"] = {"refined": round(refined, 4), "kmeans": round(plain, 4)}
    if plain > refined:
        info["kept"] = "kmeans"
        return kmeans_labels
    info["kept"] = "refined"
    return labels


def guarded_cluster(
    X: np.ndarray,
    concept: np.ndarray,
    attribute: np.ndarray | None,
    n_clusters: int,
    *,
    beta: float = DEFAULT_BETA,
    agreement_threshold: float = DEFAULT_AGREEMENT,
    agreement_margin: float = DEFAULT_AGREEMENT_MARGIN,
    objective_tolerance: float = DEFAULT_OBJECTIVE_TOLERANCE,
    anchor_weight: float = DEFAULT_ANCHOR_WEIGHT,
    spread_ratio: float = DEFAULT_SPREAD_RATIO,
    spread_margin: float = DEFAULT_SPREAD_MARGIN,
    spread_runs: int = DEFAULT_SPREAD_RUNS,
    corroboration_threshold: float = DEFAULT_CORROBORATION,
    random_state: int | None = 0,
    n_init: Any = "auto",
    max_iter: int = 100,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray, GuardDecision]:
    r"""Cluster with the mode :func:`decide` picks; returns ``(labels, features, decision)``.

    ``features`` is the matrix the final partition is a Lloyd fixed point of (or the
    k-means partition of): :math:`x` (``data``; ``refine``, where the fixed point is of
    the anchored iterations) or :math:`[x^\perp ; \beta\hat c ; \beta\hat a]`
    (``nuisance``; without attributes :math:`[x^\perp ; \beta\hat c]`).

    Parameters
    ----------
    X : numpy.ndarray
        ``(N, d)`` raw features.
    concept : numpy.ndarray
        ``(N, d_c)`` grounded concept view :math:`c_i`.
    attribute : numpy.ndarray or None
        ``(N, d_a)`` grounded attribute view :math:`a_i` (used in ``nuisance`` mode).
    n_clusters : int
        K.
    beta : float
        :math:`\beta`, weight of the knowledge views in ``nuisance`` mode (>= 0).
    agreement_threshold, agreement_margin, objective_tolerance, anchor_weight : float
        As in :func:`decide`.
    spread_ratio, spread_margin, corroboration_threshold : float
        As in :func:`decide`.
    spread_runs, max_iter : int
        As in :func:`decide`.
    random_state, n_init, device
        As in :func:`decide` (its k-means runs).

    Returns
    -------
    labels : numpy.ndarray
        ``(N,)`` int64 clusters.
    features : numpy.ndarray
        The matrix described above.
    decision : GuardDecision
        The mode and its measurements; ``decision.info`` is ``MethodResult.info["guard"]``
        (docs/api.md).
    """
    if beta < 0 or not np.isfinite(beta):
        raise ClusteringInputError(f"beta must be a finite number >= 0, got {beta}")
    dec = decide(X, concept, n_clusters, agreement_threshold=agreement_threshold,
                 agreement_margin=agreement_margin, objective_tolerance=objective_tolerance,
                 anchor_weight=anchor_weight, spread_ratio=spread_ratio,
                 spread_margin=spread_margin, spread_runs=spread_runs,
                 corroboration_threshold=corroboration_threshold,
                 random_state=random_state, n_init=n_init, max_iter=max_iter, device=device)
    X = l2_normalize_rows(np.array(X, dtype=np.float32))
    if dec.mode == "data":
        dec.info.setdefault("iterations", 0)
        return dec.data_labels, X, dec
    if dec.mode == "refine":
        assert dec.refined_labels is not None
        dec.info["kept"] = "refined"
        return dec.refined_labels, X, dec
    assert dec.residual is not None and dec.residual_labels is not None
    start = _refine_checked(dec.residual, dec.knowledge_labels, dec.residual_labels,
                            n_clusters, max_iter, dec.info, device)
    parts = [dec.residual, np.float32(beta) * l2_normalize_rows(np.array(concept,
                                                                         dtype=np.float32))]
    if attribute is not None:
        parts.append(np.float32(beta) * l2_normalize_rows(np.array(attribute,
                                                                   dtype=np.float32)))
    feats = np.concatenate(parts, axis=1)
    labels, it = lloyd_refine(feats, start, n_clusters, max_iter=max_iter, device=device)
    dec.info["beta"] = beta
    dec.info["fused_iterations"] = it
    return labels, feats, dec


def spherical_objective(F: np.ndarray, labels: np.ndarray) -> float:
    r"""Spherical k-means objective of a partition: :math:`\sum_k \lVert\sum_{i\in C_k}
    f_i\rVert` (the sum of cosines of the members to their normalised centroid when the
    rows are unit vectors)."""
    F = np.asarray(F, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)
    sums = _cluster_sums(F, y, current_rows().max(int(y.max()) + 1 if y.size else 0))
    return float(np.linalg.norm(sums, axis=1).sum())
