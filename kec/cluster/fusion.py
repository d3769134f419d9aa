r"""Fusing an image feature with its text-side features (CAE §3.3, KEC §2.5, docs/methods.md).

CAE's adaptive fusion over modalities :math:`m` (image, nouns, captions, ...):

.. math::

    p_i = \frac1{|m|}\sum_m x^m_i, \qquad
    w^m_i = \operatorname{softmax}_m\big(\cos(x^m_i, p_i)/\gamma\big), \quad \gamma = 0.01,

then either the weighted sum :math:`\sum_m w^m_i x^m_i` or the weighted concatenation
:math:`[w^1_i x^1_i; w^2_i x^2_i; \dots]` (docs/methods.md leaves the choice open; both are
here). KEC's published fusion is the plain concatenation :math:`[x_i ; \kappa_i]`
(``fusion="concat"``); kec's knowledge methods default to guarded fusion instead
(:mod:`kec.cluster.guard`, :mod:`kec.cluster.strategies`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kec.cluster._checks import ClusteringInputError, as_features, check_positive, l2_normalize_rows
from kec.cluster.backend import Backend, as_backend_array, get_backend, to_host

DEFAULT_GAMMA = 0.01
FUSION_MODES = ("sum", "concat")


def _stack(modalities: Sequence[np.ndarray]) -> list[np.ndarray]:
    if len(modalities) < 1:
        raise ClusteringInputError("fusion needs at least one modality")
    mods = [as_features(m, f"modality {i}") for i, m in enumerate(modalities)]
    n, d = mods[0].shape
    for i, m in enumerate(mods[1:], start=1):
        if m.shape != (n, d):
            raise ClusteringInputError(
                f"modality {i} has shape {m.shape}, expected {(n, d)} like modality 0"
            )
    return mods


def adaptive_weights(modalities: Sequence[np.ndarray], gamma: float = DEFAULT_GAMMA,
                     device: str | None = None) -> np.ndarray:
    r"""CAE's per-image modality weights :math:`w^m_i` (docs/methods.md §3.3).

    Parameters
    ----------
    modalities : sequence of numpy.ndarray
        ``m`` arrays of shape ``(N, d)`` in one embedding space (e.g. :math:`x`,
        :math:`x^u`, :math:`x^v`).
    gamma : float
        Temperature :math:`\gamma` (0.01 in CAE).
    device : str, optional
        Where to compute (:func:`kec.cluster.backend.as_backend_array`); the result is
        numpy either way.

    Returns
    -------
    numpy.ndarray
        ``(N, m)`` float32, rows sum to 1.
    """
    mods = _on_device(_stack(modalities), device)
    return to_host(_weights_of(mods, check_positive(gamma, "gamma")))


def _on_device(mods: list[np.ndarray], device: str | None) -> list[Any]:
    return [as_backend_array(m, device, "float32") for m in mods]


def _unit_rows(nx: Backend, x: Any, eps: float = 1e-12) -> Any:
    return x / nx.maximum(nx.norm(x, axis=1, keepdims=True), eps)


def _weights_of(mods: list[Any], gamma: float) -> Any:
    """:math:`w^m_i` on the modalities' backend and device, ``(N, m)`` float32."""
    nx = get_backend(mods[0])
    total = mods[0].copy() if nx.name == "numpy" else mods[0].clone()
    for m in mods[1:]:
        total += m
    p = _unit_rows(nx, total)
    del total
    logits = nx.concatenate(
        [nx.astype(nx.sum(_unit_rows(nx, m) * p, axis=1, keepdims=True), "float64")
         for m in mods], axis=1) / gamma
    logits -= nx.max(logits, axis=1, keepdims=True)
    w = nx.exp(logits)
    w /= nx.sum(w, axis=1, keepdims=True)
    return nx.astype(w, "float32")


def _sum_of(mods: list[Any], w: Any) -> Any:
    out = w[:, 0:1] * mods[0]
    for k, m in enumerate(mods[1:], start=1):
        out += w[:, k : k + 1] * m
    return out


def weighted_sum(modalities: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    r""":math:`\sum_m w^m_i x^m_i`, ``(N, d)`` float32 (not renormalised)."""
    mods = _stack(modalities)
    return _sum_of(mods, _weights(weights, mods))


def weighted_concat(modalities: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    r""":math:`[w^1_i x^1_i; w^2_i x^2_i; \dots]`, ``(N, m·d)`` float32."""
    mods = _stack(modalities)
    w = _weights(weights, mods)
    return np.concatenate([w[:, k : k + 1] * m for k, m in enumerate(mods)], axis=1)


def _weights(weights: np.ndarray, mods: list[np.ndarray]) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float32)
    if w.shape != (mods[0].shape[0], len(mods)):
        raise ClusteringInputError(
            f"weights have shape {w.shape}, expected {(mods[0].shape[0], len(mods))}"
        )
    return w


def adaptive_fusion(
    modalities: Sequence[np.ndarray], gamma: float = DEFAULT_GAMMA, mode: str = "sum",
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    r"""CAE's adaptive fusion: :func:`adaptive_weights`, then :func:`weighted_sum`
    (``mode="sum"``) or :func:`weighted_concat` (``mode="concat"``).

    Parameters
    ----------
    modalities : sequence of numpy.ndarray
        ``M`` arrays of shape ``(N, d)``: the image features first, then each text level.
    gamma : float
        Temperature :math:`\gamma` of the softmax over modalities (> 0; default 0.01).
    mode : {"sum", "concat"}
        Weighted sum ``(N, d)`` or weighted concatenation ``(N, M·d)``.
    device : str or None
        Where to compute; the results come back as numpy.

    Returns
    -------
    fused : numpy.ndarray
        The fused features.
    weights : numpy.ndarray
        ``(N, M)`` weight of every modality for every item (rows sum to 1).
    """
    if mode not in FUSION_MODES:
        raise ClusteringInputError(f"fusion mode must be one of {FUSION_MODES}, got {mode!r}")
    gamma = check_positive(gamma, "gamma")
    mods = _stack(modalities)
    if mode == "concat":
        w = adaptive_weights(mods, gamma, device)
        return weighted_concat(mods, w), w
    dev = _on_device(mods, device)
    w = _weights_of(dev, gamma)
    return to_host(_sum_of(dev, w)), to_host(w)


def concat(parts: Sequence[np.ndarray], *, normalize: bool = True) -> np.ndarray:
    """Row-wise concatenation of ``(N, d_k)`` arrays, each L2-normalised first by default."""
    if len(parts) < 1:
        raise ClusteringInputError("nothing to concatenate")
    arrs = [as_features(p, f"part {i}") for i, p in enumerate(parts)]
    n = arrs[0].shape[0]
    if any(a.shape[0] != n for a in arrs):
        raise ClusteringInputError(f"parts have different numbers of rows: "
                                   f"{[a.shape[0] for a in arrs]}")
    if normalize:
        arrs = [l2_normalize_rows(a.copy()) for a in arrs]
    return np.concatenate(arrs, axis=1)


def kec_concat(X: np.ndarray, kappa: np.ndarray, *, normalize: bool = True) -> np.ndarray:
    r"""KEC's fusion input :math:`[x_i ; \kappa_i]` (docs/methods.md §2.5).

    ``normalize=True`` (kec's default, a choice) scales both halves to unit norm so that
    neither dominates the cosine: :math:`\|\kappa_i\|` is about 1.8 with un-normalised
    :math:`\zeta`, while :math:`\|x_i\| = 1`. ``False`` concatenates as written.
    """
    X = as_features(X, "image features")
    K = as_features(kappa, "kappa")
    if K.shape != X.shape:
        raise ClusteringInputError(f"kappa has shape {K.shape}, expected {X.shape}")
    return concat([X, K], normalize=normalize)
