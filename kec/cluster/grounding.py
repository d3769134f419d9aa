r"""Per-image grounding of textual knowledge (KEC, docs/methods.md §2.4; kec+cae, §4).

Softmax grounding (KEC), for concepts :math:`\zeta_q = \varphi_q + \psi_q` (name +
description embeddings) and attribute embeddings :math:`\xi_{q,l}`:

.. math::

    \omega_{i,q} = \operatorname{softmax}_q(x_i \cdot \zeta_q / T), \quad
    \bar\xi_{i,q} = \operatorname{mean}_l(x_i \odot \xi_{q,l}), \\
    c_i = \sum_q \omega_{i,q}\,\zeta_q, \quad
    a_i = \sum_q \omega_{i,q}\,\bar\xi_{i,q}, \quad
    \kappa_i = c_i + a_i .

Because the element-wise product distributes over the mean,
:math:`a_i = x_i \odot \sum_q \omega_{i,q} \bar\xi_q` with
:math:`\bar\xi_q = \operatorname{mean}_l \xi_{q,l}`, so no ``N×Q×d`` tensor is formed.

OT grounding (kec+cae) replaces the softmax by entropic OT plans with uniform
marginals: :math:`c_i = \operatorname{normalize}(\sum_q T^c_{iq} S^c_{iq} \hat\zeta_q)`
over the Q concepts and :math:`a_i` likewise over all attribute texts.

``T = 0.01`` is kec's choice (docs/methods.md leaves it open): it is CLIP's learned logit
scale, and because :math:`\|\zeta_q\| \approx 1.8` for a name and a description that
agree, the effective temperature on cosines is about 0.0055, close to TAC's 0.005 for
the analogous step. A raw softmax over cosines (T = 1) would be nearly uniform.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from kec.cluster._checks import (
    ClusteringInputError,
    as_features,
    check_positive,
    l2_normalize_rows,
    same_dim,
)
from kec.cluster.backend import as_backend_array, get_backend, to_host
from kec.cluster.distributed import current_rows
from kec.cluster.ot import OTResult, solve_and_transport

DEFAULT_TEMPERATURE = 0.01
BLOCK_BYTES = 32 * 2**20
GPU_BLOCK_BYTES = 512 * 2**20
ATTRIBUTE_MODES = ("transport", "elementwise")


@dataclass
class Grounding:
    """Grounded knowledge features of every image.

    Attributes
    ----------
    concept_weights : numpy.ndarray
        ``(N, Q)``: :math:`\\omega` (softmax) or the row-normalised concept plan (OT).
    concept : numpy.ndarray
        ``(N, d)`` :math:`c_i`.
    attribute : numpy.ndarray
        ``(N, d)`` :math:`a_i`.
    kappa : numpy.ndarray
        ``(N, d)`` :math:`\\kappa_i = c_i + a_i`.
    method : str
        ``"softmax"`` or ``"ot"``.
    concept_ot, attribute_ot : OTResult or None
        The OT solutions (OT grounding only).
    info : dict
        Diagnostics.
    """

    concept_weights: np.ndarray
    concept: np.ndarray
    attribute: np.ndarray
    kappa: np.ndarray
    method: str
    concept_ot: OTResult | None = None
    attribute_ot: OTResult | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _rows(width: int, device: str) -> int:
    budget = GPU_BLOCK_BYTES if device.startswith("cuda") else BLOCK_BYTES
    return max(1, budget // max(1, 4 * width))


def weight_blocks(
    X: Any,
    U: Any,
    *,
    temperature: float | None = None,
    ot: OTResult | None = None,
    device: str | None = None,
) -> Iterator[tuple[slice, Any]]:
    r"""Row blocks of per-image weights over the texts ``U``.

    With ``temperature``: :math:`\mathrm{softmax}_j(x_i\cdot u_j / T)`. With ``ot``: the
    row-normalised plan :math:`T_{ij}/\sum_j T_{ij} = \mathrm{softmax}_j(\log v_j +
    S_{ij}/\varepsilon)`. Yields ``(row_slice, float32 block)``: numpy for numpy inputs
    and ``device`` None or ``"cpu"``, else a torch tensor on ``device`` (or on the
    inputs' device), one code path over :mod:`kec.cluster.backend`.
    """
    if (temperature is None) == (ot is None):
        raise ValueError("give exactly one of temperature and ot")
    Xb = as_backend_array(X, device, "float32")
    nx = get_backend(Xb)
    Ub = nx.asarray(U, dtype="float32", like=Xb)
    scale = 1.0 / (ot.reg if ot is not None else float(temperature))
    shift = None if ot is None else nx.asarray(ot.log_v, dtype="float32", like=Xb)
    step = _rows(Ub.shape[0], nx.device(Xb))
    Ut = Ub.T
    for start in range(0, Xb.shape[0], step):
        sl = slice(start, min(start + step, Xb.shape[0]))
        z = nx.matmul(Xb[sl], Ut)
        z *= scale
        if shift is not None:
            z += shift
        z -= nx.max(z, axis=1, keepdims=True)
        nx.exp(z, out=z)
        z /= nx.sum(z, axis=1, keepdims=True)
        yield sl, z


def mean_weights_per_cluster(
    X: np.ndarray,
    U: np.ndarray,
    labels: np.ndarray,
    n_clusters: int,
    *,
    temperature: float | None = None,
    ot: OTResult | None = None,
    device: str | None = None,
) -> np.ndarray:
    """``(K, M)`` mean weight of every text over each cluster's members (blockwise,
    on ``device`` as :func:`weight_blocks`); numpy float64."""
    labels = np.asarray(labels, dtype=np.int64)
    out: Any = None
    for sl, w in weight_blocks(X, U, temperature=temperature, ot=ot, device=device):
        nx = get_backend(w)
        if out is None:
            out = nx.zeros((n_clusters, w.shape[1]), dtype="float64", device=nx.device(w))
            lab_all = nx.asarray(labels, device=nx.device(w))
        lab = lab_all[sl]
        if nx.name == "numpy":
            onehot = sparse.csr_matrix(
                (np.ones(lab.size), (lab, np.arange(lab.size))), shape=(n_clusters, lab.size))
            out += onehot @ w.astype(np.float64)
        else:
            out.index_add_(0, lab, w.double())
    if out is None:
        out = np.zeros((n_clusters, np.shape(U)[0]))
    rows = current_rows()  # sums over every rank's rows (kec.cluster.distributed)
    counts = rows.sum(np.bincount(labels, minlength=n_clusters).astype(np.float64))
    return rows.sum(to_host(out)) / np.maximum(counts, 1.0)[:, None]


def _check(X: Any, zeta: Any) -> tuple[np.ndarray, np.ndarray]:
    X = as_features(X, "image features")
    Z = as_features(zeta, "concept embeddings")
    same_dim(X, Z, "image features", "concept embeddings")
    return X, Z


def softmax_attribute_view(
    X: np.ndarray, attr_emb: np.ndarray, temperature: float = DEFAULT_TEMPERATURE,
    device: str | None = None,
) -> np.ndarray:
    r"""Attribute view of every image by softmax over all attribute texts, ``(N, d)``.

    .. math::
        a_i = \sum_l \mathrm{softmax}_l(x_i \cdot \xi_l / T)\, \xi_l

    The softmax counterpart of OT grounding's attribute level; guarded fusion
    (docs/methods.md §4.3) compares its partition with the concept level's.
    """
    X = as_features(X, "image features")
    E = as_features(attr_emb, "attribute embeddings")
    same_dim(X, E, "image features", "attribute embeddings")
    temperature = check_positive(temperature, "temperature")
    out = np.empty((X.shape[0], E.shape[1]), dtype=np.float32)
    Eb: Any = None
    for sl, w in weight_blocks(X, E, temperature=temperature, device=device):
        if Eb is None:
            Eb = get_backend(w).asarray(E, like=w)
        out[sl] = to_host(w @ Eb)
    return out


def concept_weights(
    X: np.ndarray, zeta: np.ndarray, temperature: float = DEFAULT_TEMPERATURE,
    device: str | None = None,
) -> np.ndarray:
    r""":math:`\omega_{i,q} = \mathrm{softmax}_q(x_i\cdot\zeta_q/T)`, ``(N, Q)`` float32
    (computed on ``device``, returned as numpy)."""
    X, Z = _check(X, zeta)
    temperature = check_positive(temperature, "temperature")
    out = np.empty((X.shape[0], Z.shape[0]), dtype=np.float32)
    for sl, w in weight_blocks(X, Z, temperature=temperature, device=device):
        out[sl] = to_host(w)
    return out


def attribute_means(
    attr_emb: np.ndarray, concept_attrs: list[np.ndarray], n_concepts: int | None = None
) -> np.ndarray:
    r""":math:`\bar\xi_q = \operatorname{mean}_l \xi_{q,l}`, ``(Q, d)``; zero for a concept
    without attributes (it then adds nothing to :math:`a_i`)."""
    E = np.asarray(attr_emb, dtype=np.float32)
    q = len(concept_attrs) if n_concepts is None else n_concepts
    if len(concept_attrs) != q:
        raise ClusteringInputError(f"{len(concept_attrs)} attribute lists for {q} concepts")
    d = E.shape[1] if E.ndim == 2 else 0
    out = np.zeros((q, d), dtype=np.float32)
    for k, idx in enumerate(concept_attrs):
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size:
            out[k] = E[idx].mean(axis=0)
    return out


def ground_softmax(
    X: np.ndarray,
    zeta: np.ndarray,
    attr_mean: np.ndarray,
    temperature: float = DEFAULT_TEMPERATURE,
    device: str | None = None,
) -> Grounding:
    r"""KEC's per-image grounding (docs/methods.md §2.4), exactly as written.

    Parameters
    ----------
    X : numpy.ndarray
        ``(N, d)`` image features.
    zeta : numpy.ndarray
        ``(Q, d)`` :math:`\zeta_q = \varphi_q + \psi_q` (not renormalised).
    attr_mean : numpy.ndarray
        ``(Q, d)`` :math:`\bar\xi_q` from :func:`attribute_means`.
    temperature : float
        :math:`T` (see the module docstring for the default).

    Returns
    -------
    Grounding
        ``concept_weights`` is :math:`\omega`; ``kappa = concept + attribute``.
    """
    X, Z = _check(X, zeta)
    M = np.asarray(attr_mean, dtype=np.float32)
    if M.shape != Z.shape:
        raise ClusteringInputError(
            f"attribute means have shape {M.shape}, expected {Z.shape} (one row per concept)"
        )
    omega = concept_weights(X, Z, temperature, device)
    c = omega @ Z
    a = X * (omega @ M)
    return Grounding(omega, c, a, c + a, "softmax", info={"temperature": float(temperature)})


def ground_ot(
    X: np.ndarray,
    zeta: np.ndarray,
    attr_emb: np.ndarray,
    *,
    reg: float = 0.01,
    ot_method: str = "auto",
    attribute_mode: str = "transport",
    ot_params: dict[str, Any] | None = None,
    device: str | None = None,
) -> Grounding:
    r"""kec+cae grounding: CAE's OT alignment applied to KEC's hierarchy (docs/methods.md §4).

    .. math::

        c_i = \operatorname{normalize}\Big(\sum_q T^c_{iq} S^c_{iq} \hat\zeta_q\Big), \quad
        a_i = \operatorname{normalize}\Big(\sum_l T^a_{il} S^a_{il} \xi_l\Big), \quad
        \kappa_i = c_i + a_i

    with :math:`\hat\zeta_q = \zeta_q/\|\zeta_q\|`, :math:`S = ` cosines, and
    :math:`T^c`, :math:`T^a` entropic OT plans with uniform marginals (cost ``1 - S``).
    ``attribute_mode="elementwise"`` keeps KEC's instantiation instead:
    :math:`a_i = x_i \odot \sum_l P^a_{il}\,\xi_l`, :math:`P^a` the row-normalised plan.

    Parameters
    ----------
    X, zeta
        As in :func:`ground_softmax`.
    attr_emb : numpy.ndarray
        ``(L, d)`` embeddings of all attribute texts (uni and pair).
    reg, ot_method, ot_params
        Passed to :func:`kec.cluster.ot.solve_and_transport`.
    device : str, optional
        Where the concept weights are computed (the OT solves take theirs from
        ``ot_params``); results are numpy.
    attribute_mode : {"transport", "elementwise"}
        See above.
    """
    X, Z = _check(X, zeta)
    A = as_features(attr_emb, "attribute embeddings")
    same_dim(X, A, "image features", "attribute embeddings")
    if attribute_mode not in ATTRIBUTE_MODES:
        raise ClusteringInputError(
            f"attribute_mode must be one of {ATTRIBUTE_MODES}, got {attribute_mode!r}"
        )
    params = dict(ot_params or {})
    Zn = l2_normalize_rows(Z.copy())
    c, res_c = solve_and_transport(X, Zn, ot_method, reg=reg, **params)
    weights = np.empty((X.shape[0], Z.shape[0]), dtype=np.float32)
    for sl, w in weight_blocks(X, Zn, ot=res_c, device=device):
        weights[sl] = to_host(w)
    if attribute_mode == "transport":
        a, res_a = solve_and_transport(X, A, ot_method, reg=reg, **params)
    else:
        from kec.cluster.ot import solve_ot

        res_a = solve_ot(X, A, ot_method, reg=reg, **params)
        a = np.empty_like(X)
        for sl, w in weight_blocks(X, A, ot=res_a):
            a[sl] = X[sl] * (to_host(w) @ A)
    info = {"reg": float(reg), "attribute_mode": attribute_mode,
            "concept_ot": _ot_summary(res_c), "attribute_ot": _ot_summary(res_a)}
    return Grounding(weights, c, a, c + a, "ot", res_c, res_a, info)


def _ot_summary(res: OTResult) -> dict[str, Any]:
    out = {"method": res.method, "n_iter": res.n_iter, "converged": res.converged,
           "marginal_error": res.marginal_error, "seconds": round(res.seconds, 3)}
    for key in ("matmul_dtype", "device"):
        if isinstance(res.info.get(key), str):
            out[key] = res.info[key]
    return out
