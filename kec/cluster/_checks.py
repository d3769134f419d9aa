"""Input validation shared by the clustering modules: one clear message per problem."""

from __future__ import annotations

import numpy as np

from kec.errors import KecError

MAX_ABS_FEATURE = 1e15
"""Largest feature magnitude accepted. Squared norms and dot products of ``d``-dim rows
reach ``d * x**2``; below ``1e15`` that stays finite in float32 (max ``3.4e38``) for any
``d`` up to ``3e8``, while real embeddings are of order 1. Larger values are refused
rather than rescaled, because they almost always mean a corrupt or mis-decoded file."""


class ClusteringInputError(KecError, ValueError):
    """Arrays or parameters given to :mod:`kec.cluster` cannot be used.

    A :class:`ValueError` for library callers and a :class:`kec.errors.KecError` for the
    CLI, which prints the message as one line and exits non-zero.
    """


def as_features(x: object, name: str = "features", *, dtype: type = np.float32) -> np.ndarray:
    """Return ``x`` as a C-contiguous 2-D finite array of ``dtype``.

    Every value must satisfy :math:`|x_{ij}| \\le` :data:`MAX_ABS_FEATURE`, so that the
    squared norms :math:`\\sum_j x_{ij}^2` used by every method stay finite in float32
    (IEEE 754 single precision: largest finite value about :math:`3.4 \\times 10^{38}`).

    Raises
    ------
    ClusteringInputError
        Not 2-D, no rows or columns, NaN/inf values, or values beyond
        :data:`MAX_ABS_FEATURE` (e.g. ``3e38``, which overflows as soon as it is squared).
    """
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ClusteringInputError(f"{name} must be a 2-D (n, d) array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ClusteringInputError(f"{name} is empty (shape {arr.shape})")
    check_real_dtype(arr, name)
    arr = np.ascontiguousarray(arr, dtype=dtype)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=1))
        raise ClusteringInputError(
            f"{name}: {len(bad)} row(s) contain NaN or infinite values "
            f"(first rows: {bad[:5].tolist()})"
        )
    big = np.abs(arr) > MAX_ABS_FEATURE
    if big.any():
        bad = np.flatnonzero(big.any(axis=1))
        raise ClusteringInputError(
            f"{name}: {len(bad)} row(s) hold values beyond +/-{MAX_ABS_FEATURE:.0e} (largest "
            f"magnitude {float(np.abs(arr).max()):.3g}; first rows: {bad[:5].tolist()}); "
            "such values overflow when squared. Embeddings are of order 1: the file is "
            "probably corrupt, or scale the features down"
        )
    return arr


def check_real_dtype(arr: np.ndarray, name: str = "features") -> None:
    """Raise unless ``arr`` holds real numbers (not bool, complex, strings or objects)."""
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ClusteringInputError(f"{name} must be real numbers, got dtype {arr.dtype}")


def same_dim(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise unless ``a`` and ``b`` have the same number of columns."""
    if a.shape[1] != b.shape[1]:
        raise ClusteringInputError(
            f"dimension mismatch: {name_a} are {a.shape[1]}-d but {name_b} are "
            f"{b.shape[1]}-d (were they made by the same encoder?)"
        )


def check_n_clusters(n_clusters: object, n_samples: int, name: str = "n_clusters") -> int:
    """Return ``n_clusters`` as int after checking ``1 <= n_clusters <= n_samples``."""
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)):
        raise ClusteringInputError(f"{name} must be an integer, got {n_clusters!r}")
    k = int(n_clusters)
    if k < 1:
        raise ClusteringInputError(f"{name} must be >= 1, got {k}")
    if k > n_samples:
        raise ClusteringInputError(
            f"{name}={k} is larger than the number of samples (n_samples={n_samples})"
        )
    return k


MAX_SEED = 2**32 - 1
"""Largest integer seed: numpy's legacy ``RandomState`` (used by scikit-learn's spectral
clustering) takes ``[0, 2**32 - 1]``; kec checks that range for every clusterer."""


def check_random_state(value: object, name: str = "random_state") -> object:
    """Return ``value`` after checking that it can seed every clusterer.

    Accepted: ``None``, an integer in ``[0, 2**32 - 1]``, or a numpy
    ``Generator``/``RandomState``/``SeedSequence``/``BitGenerator`` (returned as given).

    Raises
    ------
    ClusteringInputError
        A negative or too large integer, a bool, or anything else.
    """
    if value is None or isinstance(value, (np.random.Generator, np.random.RandomState,
                                           np.random.SeedSequence, np.random.BitGenerator)):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ClusteringInputError(f"{name} must be None, an integer in [0, 2**32 - 1] or a "
                                   f"numpy.random.Generator, got {value!r}")
    if not 0 <= int(value) <= MAX_SEED:
        raise ClusteringInputError(f"{name} must be an integer in [0, 2**32 - 1] (or None), "
                                   f"got {int(value)}")
    return int(value)


def check_positive(value: float, name: str) -> float:
    """Return ``value`` as float after checking it is finite and > 0."""
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ClusteringInputError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_fraction(value: float, name: str, *, low_open: bool = True) -> float:
    """Return ``value`` as float after checking it lies in (0, 1] (or [0, 1])."""
    v = float(value)
    ok = (0 < v <= 1) if low_open else (0 <= v <= 1)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ClusteringInputError(f"{name} must be in {interval}, got {value!r}")
    return v


def l2_normalize_rows(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm, in place when ``x`` is a float array.

    Zero rows stay zero. Returns ``x`` (float32/float64 kept).
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    np.maximum(norms, eps, out=norms)
    x /= norms
    return x
