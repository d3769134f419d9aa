r"""Row blocks of the stabilised Gibbs kernel between image and text features.

The engine behind the streamed OT solvers in :mod:`kec.cluster.ot`. For ``S = X Uᵀ``
(cosine similarities of unit rows) and regularisation :math:`\varepsilon` it provides

.. math::  K_{ij} = \exp(S_{ij}/\varepsilon - s_i), \qquad s_i = \max_j S_{ij}/\varepsilon,

one block of rows at a time, so every entry lies in ``(0, 1]`` and the full ``N×M``
matrix never exists in float64. Blocks are kept in memory (in ``dtype``, float32 by
default) while they fit ``cache_bytes``; the others are recomputed from the features
(one GEMM per block) at every pass, so results are identical whether or not a block is
cached.

One :meth:`KernelBlocks.sweep` is one pass over all entries: it computes the row
log-sum-exps for the current column potentials, lets the caller turn them into row
potentials, and accumulates the column log-sum-exps for those new row potentials. With
the kernel factored this way, a pass is two matrix-vector products per block (plus the
GEMM and one ``exp`` for blocks that are not cached); the potentials themselves stay in
float64 log domain.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
from scipy.special import logsumexp

BLOCK_BYTES = 8 * 2**20
"""Default size of one row block of the kernel (8 MiB).

Small enough that a block read by the row product is still in the CPU cache when the
column product reads it again, which halves the memory traffic of a pass; large enough
for an efficient GEMM when the block has to be recomputed."""

RowUpdate = Callable[[np.ndarray, slice], np.ndarray]


class KernelBlocks:
    """Stabilised kernel of ``S = X Uᵀ / reg``, by row blocks, cached within a budget.

    Parameters
    ----------
    X : numpy.ndarray
        ``(N, d)`` image features (unit rows).
    U : numpy.ndarray
        ``(M, d)`` text features (unit rows).
    reg : float
        Entropic regularisation :math:`\\varepsilon`.
    block_rows : int, optional
        Rows per block; default: as many as fit :data:`BLOCK_BYTES`.
    cache_bytes : int
        Memory allowed for cached blocks; ``0`` recomputes every block at every pass.
    dtype : numpy dtype
        float32 (default) or float64 for the blocks and the matrix products.
    """

    def __init__(
        self,
        X: np.ndarray,
        U: np.ndarray,
        reg: float,
        *,
        block_rows: int | None = None,
        cache_bytes: int = 0,
        dtype: type = np.float32,
    ) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.X = np.ascontiguousarray(X, dtype=self.dtype)
        self.U = np.ascontiguousarray(U, dtype=self.dtype)
        self.reg = float(reg)
        self.n, self.m = self.X.shape[0], self.U.shape[0]
        item = self.dtype.itemsize
        if block_rows is None:
            block_rows = max(1, BLOCK_BYTES // max(1, self.m * item))
        block_rows = int(max(1, min(block_rows, self.n)))
        self.slices = [slice(i, min(i + block_rows, self.n)) for i in range(0, self.n, block_rows)]
        self.shift = np.zeros(self.n)  # s_i, valid once the block has been computed
        self._have_shift = np.zeros(len(self.slices), dtype=bool)
        self._cache: list[np.ndarray | None] = [None] * len(self.slices)
        self._cache_left = int(max(0, cache_bytes))
        self._work: np.ndarray | None = None
        self._floor = float(np.log(np.finfo(self.dtype).tiny))
        # row sums below this fall back to exact float64 (their terms may have underflowed)
        self._tiny_sum = float(np.finfo(self.dtype).tiny) * 2**24
        self._group_span = 0.5 * -self._floor
        self.n_computed = 0  # blocks computed from the features (GEMMs), for diagnostics
        self.compute_seconds = 0.0

    # ------------------------------------------------------------------ blocks
    @property
    def cached_bytes(self) -> int:
        """Memory held by cached blocks."""
        return sum(c.nbytes for c in self._cache if c is not None)

    def _work_buffer(self, rows: int) -> np.ndarray:
        if self._work is None or self._work.shape[0] < rows:
            self._work = np.empty((rows, self.m), dtype=self.dtype)
        return self._work[:rows]

    def _compute(self, k: int, out: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        sl = self.slices[k]
        np.matmul(self.X[sl], self.U.T, out=out)
        # subtract the row maximum before scaling: entries near it, which carry the mass,
        # keep the full relative precision of the similarities
        s = out.max(axis=1)
        out -= s[:, None]
        out *= self.dtype.type(1.0 / self.reg)
        # entries that would be subnormal are exactly zero: same sums, no slow arithmetic
        np.putmask(out, out < self._floor, -np.inf)
        np.exp(out, out=out)
        if not self._have_shift[k]:
            self.shift[sl] = s.astype(np.float64) / self.reg
            self._have_shift[k] = True
        self.n_computed += 1
        self.compute_seconds += time.perf_counter() - t0
        return out

    def block(self, k: int) -> np.ndarray:
        """Block ``k`` of the kernel (a cached array or the shared work buffer)."""
        cached = self._cache[k]
        if cached is not None:
            return cached
        sl = self.slices[k]
        rows = sl.stop - sl.start
        nbytes = rows * self.m * self.dtype.itemsize
        if nbytes <= self._cache_left:
            arr = self._compute(k, np.empty((rows, self.m), dtype=self.dtype))
            self._cache[k] = arr
            self._cache_left -= nbytes
            return arr
        return self._compute(k, self._work_buffer(rows))

    def blocks(self) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield ``(row_slice, K_block)`` for every block in order."""
        for k, sl in enumerate(self.slices):
            yield sl, self.block(k)

    def release(self) -> None:
        """Drop the cache and work buffer."""
        self._cache = [None] * len(self.slices)
        self._work = None

    # ------------------------------------------------------------------ exact fallbacks
    def _similarity64(self, rows: np.ndarray | slice, cols: np.ndarray | slice) -> np.ndarray:
        x = self.X[rows].astype(np.float64)
        u = self.U[cols].astype(np.float64)
        return (x @ u.T) / self.reg

    def exact_row_lse(self, rows: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """``logsumexp_j(beta_j + S_ij/reg)`` in float64 for a few rows."""
        return logsumexp(self._similarity64(rows, slice(None)) + beta[None, :], axis=1)

    def exact_col_lse(self, cols: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """``logsumexp_i(alpha_i + S_ij/reg)`` in float64 for a few columns."""
        out = np.empty(len(cols))
        step = max(1, (8 * 2**20) // max(1, self.n))
        for start in range(0, len(cols), step):
            c = cols[start : start + step]
            out[start : start + len(c)] = logsumexp(
                self._similarity64(slice(None), c) + alpha[:, None], axis=0
            )
        return out

    def _row_groups(self, t: np.ndarray) -> Iterator[tuple[slice | np.ndarray, float]]:
        """Rows of a block whose weights ``exp(t_i - shift)`` fit the block's dtype.

        Usually one group (all rows); rows whose log-weights span more than
        :attr:`_group_span` are split so that none underflows.
        """
        t_hat = float(t.max())
        if not np.isfinite(t_hat):
            return
        if float(t.min()) >= t_hat - self._group_span:
            yield slice(None), t_hat
            return
        level = np.floor((t_hat - t) / self._group_span)
        for g in np.unique(level):
            rows = np.flatnonzero(level == g)
            yield rows, float(t[rows].max())

    # ------------------------------------------------------------------ one pass
    def sweep(
        self, beta: np.ndarray, row_update: RowUpdate, *, columns: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        r"""One pass over all entries.

        For every block: :math:`\ell_i = \log\sum_j \exp(\beta_j + S_{ij}/\varepsilon)`,
        then ``alpha[sl] = row_update(l, sl)``; with ``columns`` also
        :math:`L_j = \log\sum_i \exp(\alpha_i + S_{ij}/\varepsilon)` over all rows.

        Returns
        -------
        alpha : numpy.ndarray
            ``(N,)`` float64 row potentials returned by ``row_update``.
        L : numpy.ndarray or None
            ``(M,)`` float64 column log-sums, or ``None`` without ``columns``.
        """
        beta = np.asarray(beta, dtype=np.float64)
        b_hat = float(beta.max())
        v = np.exp(beta - b_hat).astype(self.dtype)
        alpha = np.empty(self.n)
        acc = np.zeros(self.m)
        c = -np.inf
        for sl, K in self.blocks():
            r = (K @ v).astype(np.float64)
            with np.errstate(divide="ignore"):
                lse = self.shift[sl] + b_hat + np.log(r)
            bad = ~(r > self._tiny_sum)
            if bad.any():
                idx = np.flatnonzero(bad)
                lse[idx] = self.exact_row_lse(idx + sl.start, beta)
            alpha[sl] = row_update(lse, sl)
            if not columns:
                continue
            t = alpha[sl] + self.shift[sl]
            for rows, t_hat in self._row_groups(t):
                w = np.exp(t[rows] - t_hat).astype(self.dtype)
                Kr = K if isinstance(rows, slice) else K[rows]
                col = (w @ Kr).astype(np.float64)
                if t_hat > c:
                    acc *= np.exp(c - t_hat)
                    c = t_hat
                    acc += col
                else:
                    acc += col * np.exp(t_hat - c)
        if not columns:
            return alpha, None
        with np.errstate(divide="ignore"):
            L = c + np.log(acc)
        bad = ~(acc > 0)
        if bad.any():
            L[bad] = self.exact_col_lse(np.flatnonzero(bad), alpha)
        return alpha, L

    # ------------------------------------------------------------------ features
    def transport_features(
        self, beta: np.ndarray, *, similarity_weighted: bool = True
    ) -> np.ndarray:
        r"""Rows :math:`\operatorname{normalize}(\sum_j T_{ij} S_{ij} u_j)` for the plan
        :math:`T_{ij} \propto \exp(\beta_j + S_{ij}/\varepsilon)` (rows of any scale).

        Row scalings of ``T`` cancel in the normalisation, so only ``beta`` matters.
        With ``similarity_weighted=False`` the weights are ``T_ij`` alone.
        """
        beta = np.asarray(beta, dtype=np.float64)
        b = (beta - float(beta.max())).astype(self.dtype)
        out = np.empty((self.n, self.U.shape[1]), dtype=np.float32)
        tiny = np.finfo(self.dtype).tiny
        bufs: list[np.ndarray] = []
        for sl, K in self.blocks():
            rows = sl.stop - sl.start
            if not bufs or bufs[0].shape[0] < rows:
                bufs = [np.empty((rows, self.m), dtype=self.dtype) for _ in range(2)]
            logk, P = bufs[0][:rows], bufs[1][:rows]
            # log-domain row normalisation: T_ij ∝ exp(log K_ij + beta_j - max_j(...))
            np.maximum(K, tiny, out=logk)
            np.log(logk, out=logk)
            np.add(logk, b, out=P)
            P -= P.max(axis=1, keepdims=True)
            np.exp(P, out=P)
            if similarity_weighted:
                logk += self.shift[sl, None].astype(self.dtype)  # = S_ij / reg
                logk *= P
                out[sl] = logk @ self.U
            else:
                out[sl] = P @ self.U
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.where(norms > 0, norms, 1.0)
        return out
