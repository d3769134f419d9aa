r"""Row blocks of the stabilised Gibbs kernel between image and text features.

The engine behind the streamed OT solvers in :mod:`kec.cluster.ot`, written once over
:mod:`kec.cluster.backend` so it runs on numpy arrays and on torch tensors (CPU or CUDA).
For ``S = X Uᵀ`` (cosine similarities of unit rows) and regularisation
:math:`\varepsilon` it provides

.. math::  K_{ij} = \exp(S_{ij}/\varepsilon - s_i), \qquad s_i = \max_j S_{ij}/\varepsilon,

on a GPU computed as ``X (U/ε)ᵀ - s`` (the GEMM reads the text features pre-scaled),

one block of rows at a time, so every entry lies in ``(0, 1]`` and the full ``N×M``
matrix never exists in float64. Blocks are kept in memory (in ``dtype``, float32 by
default) while they fit ``cache_bytes``; the others are recomputed from the features
(one GEMM per block) at every pass, so results are identical whether or not a block is
cached. With ``matmul_dtype="bfloat16"`` (torch) the GEMM reads 16-bit copies of the
features and sums the products in float32 (the kernel then is that of the rounded
features); everything after it stays in ``dtype``.

One :meth:`KernelBlocks.sweep` is one pass over all entries: it computes the row
log-sum-exps for the current column potentials, lets the caller turn them into row
potentials, and accumulates the column log-sum-exps for those new row potentials. With
the kernel factored this way, a pass is two matrix-vector products per block (plus the
GEMM and one ``exp`` for blocks that are not cached); the potentials themselves stay in
float64 log domain (on the features' device).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from kec.cluster.backend import Backend, dtype_name, get_backend

BLOCK_BYTES = 8 * 2**20
"""Default size of one row block of the kernel on the CPU (8 MiB).

Small enough that a block read by the row product is still in the CPU cache when the
column product reads it again, which halves the memory traffic of a pass; large enough
for an efficient GEMM when the block has to be recomputed."""

GPU_BLOCK_BYTES = 512 * 2**20
"""Default block size on a GPU (512 MiB): few kernel launches and host syncs per pass."""

RowUpdate = Callable[[Any, slice], Any]

SPLIT_BF16 = ("bfloat16x3", "bf16x3")
"""``matmul_dtype`` names of the split-bfloat16 GEMM (see :func:`_split3`)."""


def _split3(nx: Backend, A: Any, parts: tuple[int, int, int]) -> Any:
    r"""``[A_{p_1} | A_{p_2} | A_{p_3}]`` in bfloat16, with :math:`A_0` = bf16(A) and
    :math:`A_1` = bf16(A - A_0) (torch only).

    With ``X`` split as ``(0, 0, 1)`` and ``U`` as ``(0, 1, 0)`` one bfloat16 GEMM of
    inner size ``3d`` (tensor cores, float32 sums) gives
    :math:`X_0U_0^\top + X_0U_1^\top + X_1U_0^\top`: the float32 product up to the
    dropped :math:`X_1U_1^\top` term, about :math:`2^{-16}` relative (16 mantissa bits
    against float32's 24, bfloat16's 8), at a fraction of a float32 GEMM's cost.
    """
    if nx.name != "torch":
        raise ValueError("matmul_dtype=bfloat16x3 needs torch tensors (numpy has no bfloat16)")
    wide = nx.asarray(A, dtype="float32")
    hi = nx.astype(wide, "bfloat16")
    lo = nx.astype(wide - nx.astype(hi, "float32"), "bfloat16")
    pieces = (hi, lo)
    return nx.concatenate([pieces[p] for p in parts], axis=1)

_FINFO = {"float32": np.finfo(np.float32), "float64": np.finfo(np.float64)}
STORED_MARGIN = 47.0
"""Stored blocks serve the float64 check while ``beta`` spans less than the dtype's
exponent range (87.3 in float32) minus this margin (so 40.3 in float32)."""
STORED_BETA_SPAN = 87.3 - STORED_MARGIN
_F64_SPAN = 0.5 * -float(np.log(np.finfo(np.float64).tiny))
"""Log-weights spanning more than this are split into groups in float64 sums."""


def _over_ranks(nx: Backend, c: float, acc: Any) -> tuple[float, Any]:
    r"""Column sums :math:`e^{c}\,\mathrm{acc}` over every rank's rows
    (:mod:`kec.cluster.distributed`): the largest scale :math:`\hat c = \max_r c_r`, then
    :math:`\sum_r e^{c_r - \hat c}\,\mathrm{acc}_r` (one all-reduce of ``M`` floats).
    ``(c, acc)`` unchanged in one process."""
    rows = nx.rows
    if not rows.distributed:
        return c, acc
    top = rows.max(float(c))
    if not np.isfinite(top):
        return c, acc
    scale = float(np.exp(c - top)) if np.isfinite(c) else 0.0
    return top, rows.sum(acc * scale)


def _lse_over_ranks(nx: Backend, lse: Any) -> Any:
    """Elementwise log-sum-exp of ``lse`` over the ranks (``lse`` in one process)."""
    rows = nx.rows
    if not rows.distributed:
        return lse
    top = rows.max(lse)
    safe = nx.where(nx.isfinite(top), top, 0.0)
    return safe + nx.log(rows.sum(nx.exp(lse - safe)))


class KernelBlocks:
    """Stabilised kernel of ``S = X Uᵀ / reg``, by row blocks, cached within a budget.

    Parameters
    ----------
    X : numpy.ndarray or torch.Tensor
        ``(N, d)`` image features (unit rows).
    U : numpy.ndarray or torch.Tensor
        ``(M, d)`` text features (unit rows), same backend and device as ``X``.
    reg : float
        Entropic regularisation :math:`\\varepsilon`.
    block_rows : int, optional
        Rows per block; default: as many as fit :data:`BLOCK_BYTES` (CPU) or
        :data:`GPU_BLOCK_BYTES` (CUDA).
    cache_bytes : int
        Memory allowed for cached blocks; ``0`` recomputes every block at every pass.
    dtype : str or dtype
        ``"float32"`` (default) or ``"float64"`` for the blocks and the matrix-vector
        products.
    matmul_dtype : str or dtype, optional
        Dtype of the features in the GEMM that makes a block: ``None`` (= ``dtype``),
        ``"bfloat16"`` / ``"float16"`` (torch only; products summed in float32), or
        ``"bfloat16x3"`` (torch only): hi/lo bfloat16 splits, close to a float32 GEMM
        (see :func:`_split3`).
    """

    def __init__(
        self,
        X: Any,
        U: Any,
        reg: float,
        *,
        block_rows: int | None = None,
        cache_bytes: int = 0,
        dtype: object = "float32",
        matmul_dtype: object = None,
    ) -> None:
        nx = get_backend(X, U)
        self.nx: Backend = nx
        name = dtype_name(dtype)
        if name not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        self.dtype_name = name
        self.dtype = nx.dtype(name)
        split = isinstance(matmul_dtype, str) and matmul_dtype.lower() in SPLIT_BF16
        mm = ("bfloat16" if split else
              name if matmul_dtype is None else dtype_name(matmul_dtype))
        if mm not in ("float32", "float64", "bfloat16", "float16"):
            raise ValueError(f"matmul_dtype must be a float dtype, got {matmul_dtype}")
        if mm in ("bfloat16", "float16") and nx.name != "torch":
            raise ValueError(f"matmul_dtype={matmul_dtype} needs torch tensors "
                             f"(numpy has no {mm} GEMM)")
        self.matmul_dtype_name = "bfloat16x3" if split else mm
        self.reg = float(reg)
        # a float64 GEMM into float32 blocks casts each row block of X when it is computed
        # (no float64 copy of all of X); the block is finished in float64 and rounded once
        self._wide = mm == "float64" and name == "float32"
        self.exact = mm == "float64"  # blocks: the float64 kernel, rounded once to dtype
        # the features themselves (float32), kept for the float64 check of a split GEMM
        self._features = nx.asarray(X, dtype="float32") if split else None
        if split:
            self.X = _split3(nx, X, (0, 0, 1))
        else:
            self.X = nx.asarray(X, dtype=name if self._wide else mm)
        self.U = nx.asarray(U, dtype=name, like=self.X)  # full precision, for features
        self.device = nx.device(self.X)
        # On a GPU (or with a GEMM in another precision) the GEMM reads U / reg and yields
        # S / reg with the row maximum subtracted from a stored shift: two elementwise
        # passes per block fewer. On the CPU in one precision the caller's U is used as it
        # is (no copy) and the maximum is found again at every computation.
        self._prescaled = self.device.startswith("cuda") or mm != name
        if self._prescaled:
            wide = "float64" if mm == "float64" else "float32"
            Us = nx.asarray(U, dtype=wide, like=self.X) * (1.0 / self.reg)
            Us = _split3(nx, Us, (0, 1, 0)) if split else nx.astype(Us, mm)
        else:
            Us = nx.asarray(U, dtype=mm, like=self.X)
        # the problem whose plan is measured in float64 (:meth:`plan_sums`): that of the
        # rounded features for a 16-bit GEMM, else that of the features themselves
        self._rounded = mm in ("bfloat16", "float16") and not split
        if nx.name == "numpy":
            self.X = np.ascontiguousarray(self.X)
            self.U = np.ascontiguousarray(self.U)
            self.Us = np.ascontiguousarray(Us)
        else:
            self.X = self.X.contiguous()
            self.U = self.U.contiguous()
            self.Us = Us.contiguous()
        self.Ut = self.Us.T
        # the GPU has no subnormal slow path: only the CPU flushes tiny entries to zero
        self._flush = not self.device.startswith("cuda")
        self.n, self.m = int(self.X.shape[0]), int(self.U.shape[0])
        item = 8 if name == "float64" else 4
        if block_rows is None:
            budget = GPU_BLOCK_BYTES if self.device.startswith("cuda") else BLOCK_BYTES
            block_rows = max(1, budget // max(1, self.m * item))
        block_rows = int(max(1, min(block_rows, self.n)))
        self.slices = [slice(i, min(i + block_rows, self.n)) for i in range(0, self.n, block_rows)]
        self.shift = nx.zeros(self.n, dtype="float64", device=self.device)  # s_i
        self._have_shift = [False] * len(self.slices)
        self._cache: list[Any | None] = [None] * len(self.slices)
        self._cache_left = int(max(0, cache_bytes))
        self._itemsize = item
        self._work: Any | None = None
        self._wide_work: Any | None = None
        finfo = _FINFO[name]
        self._floor = float(np.log(finfo.tiny))
        # row sums below this fall back to exact float64 (their terms may have underflowed)
        self._tiny_sum = float(finfo.tiny) * 2**24
        self._tiny = float(finfo.tiny)
        self._group_span = 0.5 * -self._floor
        self.n_computed = 0  # blocks computed from the features (GEMMs), for diagnostics
        self.compute_seconds = 0.0
        self.n_exact_rows = 0  # rows / columns that took the exact float64 path
        self.n_exact_cols = 0
        self.n_split_blocks = 0  # blocks whose rows were split into weight groups

    # ------------------------------------------------------------------ helpers
    def vector(self, x: Any) -> Any:
        """``x`` as a float64 vector of this kernel's backend and device."""
        return self.nx.asarray(x, dtype="float64", device=self.device)

    def host(self, x: Any) -> np.ndarray:
        """A backend vector as a float64 numpy array."""
        return np.asarray(self.nx.to_numpy(x), dtype=np.float64)

    # ------------------------------------------------------------------ blocks
    @property
    def cached_bytes(self) -> int:
        """Memory held by cached blocks."""
        return sum(int(c.shape[0]) * self.m * self._itemsize for c in self._cache
                   if c is not None)

    def _work_buffer(self, rows: int) -> Any:
        if self._work is None or self._work.shape[0] < rows:
            self._work = None
            self._work = self.nx.empty((rows, self.m), dtype=self.dtype_name,
                                       device=self.device)
        return self._work[:rows]

    def _wide_buffer(self, rows: int) -> Any:
        if self._wide_work is None or self._wide_work.shape[0] < rows:
            self._wide_work = None
            self._wide_work = self.nx.empty((rows, self.m), dtype="float64",
                                            device=self.device)
        return self._wide_work[:rows]

    def _compute(self, k: int, out: Any) -> Any:
        nx = self.nx
        t0 = time.perf_counter()
        sl = self.slices[k]
        # a float64 GEMM into float32 blocks: the block is finished in float64 and rounded
        # once, so every stored entry is the float64 kernel to 2**-24 relative
        buf = self._wide_buffer(sl.stop - sl.start) if self._wide else out
        if self._wide:
            nx.matmul(nx.astype(self.X[sl], "float64"), self.Ut, out=buf)
        elif self.matmul_dtype_name == self.dtype_name:
            nx.matmul(self.X[sl], self.Ut, out=buf)
        else:
            nx.matmul_fp32(self.X[sl], self.Ut, out=buf)
        first = not self._have_shift[k]
        if self._prescaled:
            # buf = S / reg; the row maximum is found once and reused (exactly: the shift
            # holds the maximum as computed), so a recomputed block equals a cached one
            s = nx.max(buf, axis=1) if first else nx.astype(self.shift[sl], nx.dtype_of(buf))
            buf -= s[:, None]
            if first:
                self.shift[sl] = nx.astype(s, "float64")
        else:
            # buf = S; subtract the row maximum before scaling: entries near it, which
            # carry the mass, keep the full relative precision of the similarities
            s = nx.max(buf, axis=1)
            buf -= s[:, None]
            buf *= 1.0 / self.reg
            if first:
                self.shift[sl] = nx.astype(s, "float64") / self.reg
        self._have_shift[k] = True
        if self._flush:
            # entries that would be subnormal are exactly zero: same sums, no slow arithmetic
            nx.putmask(buf, buf < self._floor, -np.inf)
        nx.exp(buf, out=buf)
        if self._wide:
            out[...] = buf
        self.n_computed += 1
        self.compute_seconds += time.perf_counter() - t0
        return out

    def block(self, k: int) -> Any:
        """Block ``k`` of the kernel (a cached array or the shared work buffer)."""
        cached = self._cache[k]
        if cached is not None:
            return cached
        sl = self.slices[k]
        rows = sl.stop - sl.start
        nbytes = rows * self.m * self._itemsize
        if nbytes <= self._cache_left:
            arr = self._compute(k, self.nx.empty((rows, self.m), dtype=self.dtype_name,
                                                 device=self.device))
            self._cache[k] = arr
            self._cache_left -= nbytes
            return arr
        return self._compute(k, self._work_buffer(rows))

    def blocks(self) -> Iterator[tuple[slice, Any]]:
        """Yield ``(row_slice, K_block)`` for every block in order."""
        for k, sl in enumerate(self.slices):
            yield sl, self.block(k)

    def release(self) -> None:
        """Drop the cache and work buffer."""
        self._cache = [None] * len(self.slices)
        self._work = None
        self._wide_work = None

    # ------------------------------------------------------------------ exact fallbacks
    def _similarity64(self, rows: Any, cols: Any) -> Any:
        nx = self.nx
        x = nx.astype(self.X[rows], "float64")
        u = nx.astype(self.Us[cols], "float64")
        return nx.matmul(x, u.T) if self._prescaled else nx.matmul(x, u.T) / self.reg

    def exact_row_lse(self, rows: Any, beta: Any) -> Any:
        """``logsumexp_j(beta_j + S_ij/reg)`` in float64 for a few rows."""
        return self.nx.logsumexp(self._similarity64(rows, slice(None)) + beta[None, :], axis=1)

    def exact_col_lse(self, cols: Any, alpha: Any) -> Any:
        """``logsumexp_i(alpha_i + S_ij/reg)`` in float64 for a few columns."""
        nx = self.nx
        out = nx.empty(len(cols), dtype="float64", device=self.device)
        step = max(1, (8 * 2**20) // max(1, self.n))
        for start in range(0, len(cols), step):
            c = cols[start : start + step]
            out[start : start + len(c)] = nx.logsumexp(
                self._similarity64(slice(None), c) + alpha[:, None], axis=0
            )
        return out

    def _row_groups(self, t: Any, span: float | None = None) -> Iterator[tuple[Any, float]]:
        """Rows of a block whose weights ``exp(t_i - shift)`` fit the block's dtype.

        Usually one group (all rows); rows whose log-weights span more than ``span``
        (default :attr:`_group_span`, half the dtype's exponent range) are split so that
        none underflows.
        """
        nx = self.nx
        span = self._group_span if span is None else span
        t_hat = float(nx.max(t))
        if not np.isfinite(t_hat):
            return
        if float(nx.min(t)) >= t_hat - span:
            yield slice(None), t_hat
            return
        self.n_split_blocks += 1
        th = self.host(t)
        level = np.floor((t_hat - th) / span)
        for g in np.unique(level[np.isfinite(level)]):
            rows = np.flatnonzero(level == g)
            idx = rows if nx.name == "numpy" else nx.asarray(rows, device=self.device)
            yield idx, float(th[rows].max())

    def _add_columns(self, acc: Any, c: float, K: Any, t: Any, dtype: str,
                     span: float | None = None) -> float:
        r"""Add :math:`\sum_i e^{t_i} K_{ij}` to ``acc`` (float64, scaled by :math:`e^{-c}`).

        Rows are weighted in ``dtype`` by groups whose log-weights fit it; ``acc`` is
        rescaled in place when a larger ``t`` comes. Returns the new scale ``c``.
        """
        nx = self.nx
        for rows, t_hat in self._row_groups(t, span=span):
            w = nx.astype(nx.exp(t[rows] - t_hat), dtype)
            col = nx.astype(nx.matmul(w, K if isinstance(rows, slice) else K[rows]),
                            "float64")
            if t_hat > c:
                acc *= float(np.exp(c - t_hat))
                c = t_hat
                acc += col
            else:
                acc += col * float(np.exp(t_hat - c))
        return c

    # ------------------------------------------------------------------ one pass
    def sweep(
        self, beta: Any, row_update: RowUpdate, *, columns: bool = True
    ) -> tuple[Any, Any | None]:
        r"""One pass over all entries.

        For every block: :math:`\ell_i = \log\sum_j \exp(\beta_j + S_{ij}/\varepsilon)`,
        then ``alpha[sl] = row_update(l, sl)``; with ``columns`` also
        :math:`L_j = \log\sum_i \exp(\alpha_i + S_{ij}/\varepsilon)` over all rows.

        Parameters
        ----------
        beta : array
            ``(M,)`` column potentials (numpy or this backend; moved to the device).

        Returns
        -------
        alpha : array
            ``(N,)`` float64 row potentials returned by ``row_update`` (backend array).
        L : array or None
            ``(M,)`` float64 column log-sums, or ``None`` without ``columns``.
        """
        with np.errstate(divide="ignore"):  # log(0) marks rows that take the exact path
            return self._sweep(beta, row_update, columns)

    def _sweep(self, beta: Any, row_update: RowUpdate, columns: bool
               ) -> tuple[Any, Any | None]:
        nx = self.nx
        beta = self.vector(beta)
        b_hat = float(nx.max(beta))
        v = nx.astype(nx.exp(beta - b_hat), self.dtype_name)
        alpha = nx.empty(self.n, dtype="float64", device=self.device)
        acc = nx.zeros(self.m, dtype="float64", device=self.device)
        c = -np.inf
        for sl, K in self.blocks():
            r = nx.astype(nx.matmul(K, v), "float64")
            lse = self.shift[sl] + b_hat + nx.log(nx.maximum(r, 0.0))
            bad = ~(r > self._tiny_sum)
            if nx.any(bad):
                idx = nx.flatnonzero(bad)
                self.n_exact_rows += int(idx.shape[0])
                lse[idx] = self.exact_row_lse(idx + sl.start, beta)
            alpha[sl] = row_update(lse, sl)
            if not columns:
                continue
            c = self._add_columns(acc, c, K, alpha[sl] + self.shift[sl], self.dtype_name)
        if not columns:
            return alpha, None
        c, acc = _over_ranks(nx, c, acc)
        L = c + nx.log(nx.maximum(acc, 0.0))
        bad = ~(acc > 0)
        if nx.any(bad):
            idx = nx.flatnonzero(bad)
            self.n_exact_cols += int(idx.shape[0])
            L[idx] = _lse_over_ranks(nx, self.exact_col_lse(idx, alpha))
        return alpha, L

    # ------------------------------------------------------------------ float64 check
    def _block64(self, k: int, stored: bool) -> Any:
        r"""Block ``k`` in float64: :math:`\exp(S_{ij}/\varepsilon - s_i)` with ``S`` the
        float64 product of the features (of the rounded features for a 16-bit GEMM).

        ``stored``: the stored block, widened (for a float64 GEMM); otherwise the block
        is recomputed by a float64 GEMM.
        """
        nx = self.nx
        sl = self.slices[k]
        if stored:
            return nx.astype(self.block(k), "float64")
        if self._rounded:  # the problem of the rounded features: X and U / reg as stored
            S = nx.matmul(nx.astype(self.X[sl], "float64"), nx.astype(self.Us, "float64").T)
        else:
            src = self.X if self._features is None else self._features
            S = nx.matmul(nx.astype(src[sl], "float64"), nx.astype(self.U, "float64").T)
            S *= 1.0 / self.reg
        S -= self.shift[sl][:, None]
        return nx.exp(S, out=S)

    def plan_sums(self, alpha: Any, beta: Any) -> tuple[Any, Any]:
        r"""Row and column sums of :math:`T_{ij} = \exp(\alpha_i + \beta_j +
        S_{ij}/\varepsilon)` in float64, in one pass over the blocks.

        Every product and sum is float64. With a float64 GEMM (:attr:`exact`) the
        entries are the stored blocks, each the float64 kernel rounded once to ``dtype``
        (relative error at most :math:`2^{-24}` in float32), so the sums are those of the
        float64 plan to within :math:`2^{-24}` of their value, as long as ``beta`` spans
        less than :data:`STORED_BETA_SPAN` (then an entry flushed to zero, below
        :math:`10^{-38}` of its row's largest, carries less than :math:`e^{-47}` of that
        entry's mass). Otherwise every block is recomputed from the features by a float64
        GEMM (not cached).

        Returns
        -------
        rows, cols : array
            ``(N,)`` and ``(M,)`` float64 backend vectors.
        """
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            return self._plan_sums(self.vector(alpha), self.vector(beta))

    def _plan_sums(self, alpha: Any, beta: Any) -> tuple[Any, Any]:
        nx = self.nx
        b_hat = float(nx.max(beta))
        v = nx.exp(beta - b_hat)
        stored = self.exact and float(nx.max(beta) - nx.min(beta)) < (
            -self._floor - STORED_MARGIN)
        rows = nx.empty(self.n, dtype="float64", device=self.device)
        acc = nx.zeros(self.m, dtype="float64", device=self.device)
        c = -np.inf
        for k, sl in enumerate(self.slices):
            K = self._block64(k, stored)
            t = alpha[sl] + self.shift[sl]
            rows[sl] = nx.exp(t + b_hat) * nx.matmul(K, v)
            c = self._add_columns(acc, c, K, t, "float64", span=_F64_SPAN)
        c, acc = _over_ranks(nx, c, acc)
        cols = nx.exp(beta + c + nx.log(acc))
        return rows, cols

    # ------------------------------------------------------------------ features
    def transport_features(
        self, beta: Any, *, similarity_weighted: bool = True
    ) -> Any:
        r"""Rows :math:`\operatorname{normalize}(\sum_j T_{ij} S_{ij} u_j)` for the plan
        :math:`T_{ij} \propto \exp(\beta_j + S_{ij}/\varepsilon)` (rows of any scale).

        Row scalings of ``T`` cancel in the normalisation, so only ``beta`` matters.
        With ``similarity_weighted=False`` the weights are ``T_ij`` alone. Returns float32
        rows on this kernel's backend and device.
        """
        nx = self.nx
        beta = self.vector(beta)
        b = nx.astype(beta - float(nx.max(beta)), self.dtype_name)
        out = nx.empty((self.n, int(self.U.shape[1])), dtype="float32", device=self.device)
        Ud = self.U
        bufs: list[Any] = []
        for sl, K in self.blocks():
            rows = sl.stop - sl.start
            if not bufs or bufs[0].shape[0] < rows:
                bufs = []
                bufs = [nx.empty((rows, self.m), dtype=self.dtype_name, device=self.device)
                        for _ in range(2)]
            logk, P = bufs[0][:rows], bufs[1][:rows]
            # log-domain row normalisation: T_ij ∝ exp(log K_ij + beta_j - max_j(...))
            nx.clip(K, self._tiny, None, out=logk)
            nx.log(logk, out=logk)
            P[...] = logk + b
            P -= nx.max(P, axis=1, keepdims=True)
            nx.exp(P, out=P)
            if similarity_weighted:
                logk += nx.astype(self.shift[sl], self.dtype_name)[:, None]  # = S_ij / reg
                logk *= P
                out[sl] = nx.astype(nx.matmul(logk, Ud), "float32")
            else:
                out[sl] = nx.astype(nx.matmul(P, Ud), "float32")
        norms = nx.norm(out, axis=1, keepdims=True)
        out /= nx.where(norms > 0, norms, 1.0)
        return out
