r"""Entropic optimal transport between images and texts (docs/methods.md §3.2 and §4).

Every solver here aligns ``N`` image features ``X`` with ``M`` text features ``U``
(unit rows) under the cost :math:`C = 1 - S`, :math:`S = X U^\top`, and solves

.. math::

    T^\star = \arg\min_{T \ge 0} \; \langle T, C \rangle
        + \varepsilon\, \mathrm{KL}(T \,\|\, \mathbf a \mathbf b^\top)
        \quad \text{s.t. marginal constraints,}

with uniform marginals :math:`a_i = 1/N`, :math:`b_j = 1/M` by default (CAE's choice:
the column constraint stops a few texts from taking all the mass). Results are returned
as dual potentials, :math:`T_{ij} = \exp(\log u_i + \log v_j - C_{ij}/\varepsilon)`
(:class:`OTResult`), so the plan never has to exist at scale.

==================  ==========================================================
function            problem
==================  ==========================================================
``sinkhorn_log``    balanced, dense cost matrix, log-domain Sinkhorn (reference)
``sinkhorn_log_chunked``  balanced, streamed by row blocks from the features
``semi_relaxed``    rows exact, columns relaxed by :math:`\rho\,\mathrm{KL}`
``partial``         transport only a mass fraction ``mass``
``solve_ot``        dispatcher, ``method="auto"|"sinkhorn"|"chunked"|...``
``transport_features``  CAE's :math:`x^u_i = \mathrm{normalize}(\sum_j T_{ij} S_{ij} u_j)`
==================  ==========================================================

**One engine for numpy and torch.** The streamed solvers run over
:mod:`kec.cluster.backend`: numpy arrays in, numpy out (today's CPU path); torch tensors
in, torch tensors out, on their device. ``device="cuda"`` moves numpy inputs to the GPU
and brings the results back as numpy. The optimiser (L-BFGS on an ``M``-dimensional
semi-dual) runs on the host in float64; every evaluation is one pass over the kernel on
the device, and only ``M`` numbers cross per pass.

**Convergence is reported for the returned plan.** ``marginal_error`` is the L1 norm of
the violation of every condition the problem imposes (rows and columns), measured at
the returned potentials in one float64 pass over the plan (streamed by blocks,
:meth:`kec.cluster._kernel.KernelBlocks.plan_sums`); ``converged`` is
``marginal_error <= tol``. The solver's own float32 estimate only decides when to
check (``info["solver_error"]``). Nothing stops on step size: a solver that runs out of
``max_iter`` passes says ``converged=False``. Each kernel dtype has a floor below which
``tol`` is not reachable (:data:`DTYPE_FLOOR`: 1e-5 for float32 blocks, 1e-12 for
float64); ``dtype=None`` picks float64 below the float32 floor.

Defaults are kec's choices, not published values (docs/methods.md marks ε and the number of
iterations open): ``reg=0.01`` is CLIP's learned logit scale (100), the temperature at
which CLIP cosines behave like calibrated logits; a softer ε makes every row of the plan
nearly uniform over the texts. ``tol=1e-4`` is 0.01 % of the transported mass.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from kec.cluster._checks import ClusteringInputError, as_features, check_positive, same_dim
from kec.cluster._kernel import KernelBlocks
from kec.cluster.backend import (
    Backend,
    dtype_name,
    get_backend,
    is_torch,
    resolve_device,
    to_host,
    torch_backend,
)
from kec.cluster.distributed import current_rows

DEFAULT_REG = 0.01
DEFAULT_TOL = 1e-4
DEFAULT_MAX_ITER = 1000
DEFAULT_DENSE_MAX_ITER = 10_000
DEFAULT_CACHE_BYTES = 4 * 2**30
GPU_CACHE_BYTES = 24 * 2**30
GPU_MATMUL_DTYPE = "bfloat16x3"
"""GEMM precision on a CUDA device when ``matmul_dtype`` is None (and dtype float32).

Split bfloat16 (:func:`kec.cluster._kernel._split3`): tensor-core speed, similarities
within about 1e-6 of float32 (measured: max abs error 1.1e-6 against 2e-7 for a
float32 GEMM, transported features at cosine 0.9999998 to the float32 ones). GPUs
without bfloat16 tensor cores (compute capability below 8.0) use float32."""
AUTO_DENSE_MAX_ENTRIES = 0
"""``auto`` uses the dense Sinkhorn up to this many entries: none, because L-BFGS on the
semi-dual converged in fewer passes and less time at every size measured, 100 × 50 up
(``python benchmarks/bench_ot.py auto``)."""
METHODS = ("auto", "sinkhorn", "chunked", "semi_relaxed", "partial")
LBFGS_MEMORY = 10
FALLBACK_STEPS = 10
DTYPE_FLOOR = {"float32": 1e-5, "float64": 1e-12}
"""Smallest ``tol`` each kernel dtype is meant for (L1 error, in units of the mass).

float32 blocks hold the float64 kernel rounded once (relative error at most
:math:`2^{-24} \approx 6\times10^{-8}` per entry, so the plan's float64 sums are those
of the float64 plan to :math:`1.2\times10^{-7}` of the mass), but the solver's float32
matrix-vector products put noise of order 1e-7 to 1e-6 into its gradient: at
``tol=1e-6`` a float32 solve of 2,000 × 800 CLIP-like features at reg 0.01 ran out of
1,000 passes at 1.1e-6. ``dtype=None`` (the default) uses float32 blocks for ``tol`` at
or above the float32 floor and float64 below it (135 passes to 1e-6 there); a ``tol``
below the floor of an explicit ``dtype`` gives a :class:`UserWarning`. Either way the
error is measured honestly: ``converged=False`` when it is not met."""
MEASURE_ROUNDS = 3
"""Float64 checks per solve: when the check finds the error above ``tol`` although the
solver's own estimate was below it, the solver goes on to a tighter estimate, at most
this many times in all."""


@dataclass
class OTResult:
    """Solution of an entropic OT problem, as dual potentials.

    The plan is :math:`T_{ij} = \\exp(\\log u_i + \\log v_j - C_{ij}/\\varepsilon)`
    with :math:`C = 1 - X U^\\top`.

    Attributes
    ----------
    log_u, log_v : numpy.ndarray or torch.Tensor
        ``(N,)`` and ``(M,)`` float64 log scalings (torch tensors on the inputs' device
        when the inputs were tensors).
    reg : float
        The regularisation :math:`\\varepsilon`.
    method : str
        Which solver produced it.
    n_iter : int
        Solver passes over the ``N×M`` entries (Sinkhorn iterations, L-BFGS
        evaluations); the float64 checks of the streamed solvers are counted in
        ``info["check_passes"]``.
    converged : bool
        ``marginal_error <= tol``.
    marginal_error : float
        L1 violation of the problem's conditions by the returned plan (see each solver),
        every constraint included, rows too, measured in float64.
    plan : numpy.ndarray or None
        Dense ``(N, M)`` plan, only from the dense solver.
    seconds : float
        Wall time of the solve.
    info : dict
        Solver details (device, dtypes, cache size, number of GEMM block computations...).
    """

    log_u: Any
    log_v: Any
    reg: float
    method: str
    n_iter: int
    converged: bool
    marginal_error: float
    plan: Any = None
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


class _Stop(Exception):
    """Raised inside the L-BFGS objective to stop it (converged or out of budget)."""


# --------------------------------------------------------------------------- inputs
def _marginal(w: Any, n: int, name: str, rows: bool = False) -> np.ndarray:
    """Weights of ``n`` points; default uniform. ``rows``: the points are item rows,
    perhaps split over processes (:mod:`kec.cluster.distributed`): uniform is ``1/N``
    with ``N`` the rows of every rank."""
    if w is None:
        return np.full(n, 1.0 / (current_rows().total(n) if rows else n))
    w = to_host(w).astype(np.float64).reshape(-1)
    if w.shape[0] != n:
        raise ClusteringInputError(f"{name} has {w.shape[0]} weights for {n} points")
    if not np.isfinite(w).all() or (w <= 0).any():
        raise ClusteringInputError(
            f"{name} must be finite and > 0 (drop zero-weight points before solving)"
        )
    return w


def _balanced_marginals(a: Any, b: Any, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    a = _marginal(a, n, "a", rows=True)
    b = _marginal(b, m, "b")
    mass_a = current_rows().sum(float(a.sum()))
    if abs(mass_a - b.sum()) > 1e-6 * max(mass_a, b.sum()):
        raise ClusteringInputError(
            f"balanced OT needs equal masses, got sum(a)={mass_a:.6g}, sum(b)={b.sum():.6g}"
        )
    return a, b


def _check_iter(max_iter: int, tol: float) -> None:
    if int(max_iter) < 1:
        raise ClusteringInputError(f"max_iter must be >= 1, got {max_iter}")
    if not tol > 0:
        raise ClusteringInputError(f"tol must be > 0, got {tol}")


def _torch_features(x: Any, name: str) -> Any:
    if x.ndim != 2:
        raise ClusteringInputError(f"{name} must be a 2-D (n, d) array, got shape "
                                   f"{tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ClusteringInputError(f"{name} is empty (shape {tuple(x.shape)})")
    if x.is_complex() or x.dtype == torch_backend().torch.bool:
        raise ClusteringInputError(f"{name} must be real numbers, got dtype {x.dtype}")
    x = x.detach().float().contiguous()
    finite = x.isfinite().all(dim=1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten()
        raise ClusteringInputError(
            f"{name}: {int(bad.numel())} row(s) contain NaN or infinite values "
            f"(first rows: {bad[:5].tolist()})"
        )
    return x


def _pair(X: Any, U: Any, device: str | None = None) -> tuple[Any, Any, bool]:
    """Validated float32 features on the compute device; and whether to return numpy."""
    to_numpy = not (is_torch(X) or is_torch(U))
    dev = None if device is None else resolve_device(device)
    if to_numpy and (dev is None or dev == "cpu"):
        X = as_features(X, "image features")
        U = as_features(U, "text features")
        same_dim(X, U, "image features", "text features")
        return X, U, True
    tb = torch_backend()
    if dev is None:
        dev = tb.device(X) if is_torch(X) else tb.device(U)
    X = _torch_features(tb.asarray(X if is_torch(X) else as_features(X, "image features"),
                                   device=dev), "image features")
    U = _torch_features(tb.asarray(U if is_torch(U) else as_features(U, "text features"),
                                   device=dev), "text features")
    same_dim(X, U, "image features", "text features")
    return X, U, to_numpy


def _default_cache(device: str) -> int:
    if not device.startswith("cuda"):
        return DEFAULT_CACHE_BYTES
    torch = torch_backend().torch
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(min(GPU_CACHE_BYTES, 0.5 * free))


def _gpu_matmul_dtype(device: str) -> str | None:
    """The GEMM precision used on ``device`` when the caller names none."""
    if not device.startswith("cuda"):
        return None
    torch = torch_backend().torch
    # bfloat16 tensor cores: compute capability 8.0 (Ampere) and later; on older GPUs
    # bfloat16 is emulated and the 3d-wide split GEMM would be slower than float32
    major, _minor = torch.cuda.get_device_capability(torch.device(device))
    return GPU_MATMUL_DTYPE if major >= 8 else None


def _block_dtype(dtype: object, tol: float | None) -> str:
    """The kernel's dtype: ``dtype``, or for ``None`` float64 below the float32 floor.

    Warns when an explicit ``dtype`` cannot reach ``tol`` (:data:`DTYPE_FLOOR`).
    """
    if dtype is None:
        return "float64" if tol is not None and tol < DTYPE_FLOOR["float32"] else "float32"
    name = dtype_name(dtype)
    floor = DTYPE_FLOOR.get(name)
    if tol is not None and floor is not None and tol < floor:
        warnings.warn(
            f"tol={tol:g} is below the {name} floor ({floor:g}): the solve will likely end "
            f"with converged=False; use dtype='float64' (or dtype=None)",
            UserWarning, stacklevel=4,
        )
    return name


def _kernel(X: Any, U: Any, reg: float, block_rows: int | None, cache_bytes: int | None,
            dtype: object, matmul_dtype: object, tol: float | None = None) -> KernelBlocks:
    nx = get_backend(X)
    device = nx.device(X)
    if cache_bytes is None:
        cache_bytes = _default_cache(device)
    dtype = _block_dtype(dtype, tol)
    if matmul_dtype is None and dtype == "float32":
        # CPU: a float64 GEMM, so the float32 blocks hold the float64 kernel (the float32
        # GEMM's rounding, ~3e-8 in S, is 3e-6 in the kernel at reg 0.01: a floor of
        # ~4e-6 in the plan's L1 error); GPU: split bfloat16 (tensor cores) or float32
        matmul_dtype = _gpu_matmul_dtype(device) if device.startswith("cuda") else "float64"
    try:
        return KernelBlocks(X, U, reg, block_rows=block_rows, cache_bytes=int(cache_bytes),
                            dtype=dtype, matmul_dtype=matmul_dtype)
    except ValueError as exc:
        raise ClusteringInputError(str(exc)) from exc


def _out(x: Any, to_numpy: bool) -> Any:
    return to_host(x) if to_numpy else x


# --------------------------------------------------------------------------- dense
def sinkhorn_log(
    C: Any,
    a: Any = None,
    b: Any = None,
    reg: float = DEFAULT_REG,
    *,
    max_iter: int = DEFAULT_DENSE_MAX_ITER,
    tol: float = DEFAULT_TOL,
) -> OTResult:
    r"""Balanced entropic OT on a dense cost matrix, Sinkhorn in the log domain.

    Solves (docs/methods.md §3.2)

    .. math::

        \min_{T\mathbf 1 = \mathbf a,\; T^\top \mathbf 1 = \mathbf b}
        \langle T, C\rangle + \varepsilon\,\mathrm{KL}(T\,\|\,\mathbf a\mathbf b^\top)

    by alternating, in float64 (Cuturi 2013; log domain as in Peyré & Cuturi 2019,
    "Computational Optimal Transport", §4.4),

    .. math::

        f_i = \log a_i - \operatorname{LSE}_j(g_j - C_{ij}/\varepsilon), \qquad
        g_j = \log b_j - \operatorname{LSE}_i(f_i - C_{ij}/\varepsilon),

    rows first, and returns :math:`T_{ij} = \exp(f_i + g_j - C_{ij}/\varepsilon)` for
    the last ``(f, g)``: the last update is a row update, so the plan's rows sum to
    ``a``. This is the reference solver (the fixed point of POT's
    ``ot.sinkhorn(..., method="sinkhorn_log")``). It holds ``N×M`` float64 arrays and
    needs thousands of iterations at small ε on CLIP-like data; prefer
    :func:`sinkhorn_log_chunked`, which ``solve_ot("auto")`` uses.

    Parameters
    ----------
    C : numpy.ndarray or torch.Tensor
        ``(N, M)`` cost matrix (for kec, ``1 - X Uᵀ``); a tensor keeps its device.
    a, b : array, optional
        Positive marginals of equal mass; default uniform ``1/N`` and ``1/M``.
    reg : float
        :math:`\varepsilon`; default 0.01 (kec's choice, see the module docstring).
    max_iter : int
        Maximum Sinkhorn iterations.
    tol : float
        Stop when ``marginal_error <= tol``.

    Returns
    -------
    OTResult
        With ``plan`` filled in (same backend as ``C``). ``marginal_error`` is
        :math:`\|T\mathbf 1 - \mathbf a\|_1 + \|T^\top\mathbf 1 - \mathbf b\|_1` of that plan.
    """
    t0 = time.perf_counter()
    nx = get_backend(C)
    C = nx.asarray(C, dtype="float64")
    if C.ndim != 2 or C.shape[0] == 0 or C.shape[1] == 0:
        raise ClusteringInputError(
            f"cost matrix must be a non-empty 2-D array, got {tuple(C.shape)}")
    if not bool(nx.isfinite(C).all()):
        raise ClusteringInputError("cost matrix contains NaN or infinite values")
    reg = check_positive(reg, "reg")
    _check_iter(max_iter, tol)
    n, m = int(C.shape[0]), int(C.shape[1])
    a_h, b_h = _balanced_marginals(a, b, n, m)
    a_, b_ = nx.asarray(a_h, like=C), nx.asarray(b_h, like=C)
    la, lb = nx.log(a_), nx.log(b_)
    W = C / -reg
    g = nx.zeros(m, like=C)
    f = nx.zeros(n, like=C)
    err = np.inf
    it = 0
    for it in range(1, int(max_iter) + 1):
        f = la - nx.logsumexp(W + g[None, :], axis=1)
        L = nx.logsumexp(W + f[:, None], axis=0)
        # the plan (f, g) has exact rows; its column error:
        err = float(nx.sum(nx.abs(nx.exp(g + L) - b_)))
        if err <= tol:
            break
        if it < max_iter:
            g = lb - L
    plan = nx.exp(W + f[:, None] + g[None, :])
    err = float(nx.sum(nx.abs(nx.sum(plan, axis=1) - a_))
                + nx.sum(nx.abs(nx.sum(plan, axis=0) - b_)))
    return OTResult(
        log_u=f, log_v=g, reg=reg, method="sinkhorn", n_iter=it, converged=err <= tol,
        marginal_error=err, plan=plan, seconds=time.perf_counter() - t0,
        info={"device": nx.device(C), "backend": nx.name},
    )


# --------------------------------------------------------------------------- semi-duals
@dataclass
class _Eval:
    """One pass: objective value, gradient (host), error, and what the result needs."""

    value: float
    grad: np.ndarray
    err: float
    x: np.ndarray
    alpha: Any
    L: Any


@dataclass
class _Check:
    """The float64 check of a plan: its error and its row and column sums (host)."""

    err: float
    rows: np.ndarray
    cols: np.ndarray
    passes: int = 1


class _SemiDual:
    """A convex function of the column potentials, one kernel pass per evaluation.

    ``x`` holds ``beta`` (and, for partial OT, one more variable). Subclasses give the
    row update, the value and gradient from the pass, and a fixed-point step used when
    L-BFGS stalls on float32 noise.
    """

    bounds: list[tuple[float | None, float | None]] | None = None

    def __init__(self, kern: KernelBlocks, a: np.ndarray, b: np.ndarray) -> None:
        self.kern = kern
        self.nx: Backend = kern.nx
        self.a_h, self.b_h = a, b
        self.la_h, self.lb_h = np.log(a), np.log(b)
        self.a = kern.vector(a)
        self.la = kern.vector(self.la_h)

    def beta(self, x: np.ndarray) -> np.ndarray:
        return x[: self.kern.m]

    def row_update(self, x: np.ndarray) -> Callable[[Any, slice], Any]:
        la = self.la
        return lambda lse, sl: la[sl] - lse

    def evaluate(self, x: np.ndarray) -> _Eval:
        kern = self.kern
        beta = self.beta(x)
        alpha, L = kern.sweep(beta, self.row_update(x))
        col = np.exp(beta + kern.host(L))
        return self.finish(x, alpha, L, col)

    def finish(self, x: np.ndarray, alpha: Any, L: Any, col: np.ndarray) -> _Eval:
        raise NotImplementedError

    def step(self, e: _Eval) -> np.ndarray:
        raise NotImplementedError

    def measure(self, e: _Eval) -> _Check:
        """The error of the plan of ``e``, from its float64 row and column sums (one pass)."""
        rows, cols = self.kern.plan_sums(e.alpha, self.beta(e.x))
        rows, cols = self.kern.host(rows), self.kern.host(cols)
        return _Check(self.kkt_error(e, rows, cols), rows, cols)

    def kkt_error(self, e: _Eval, rows: np.ndarray, cols: np.ndarray) -> float:
        """L1 violation of the problem's conditions by a plan with these sums."""
        raise NotImplementedError

    def row_lse_term(self, alpha: Any) -> float:
        """:math:`\\sum_i a_i \\ell_i` with :math:`\\ell_i = \\log a_i - \\alpha_i`, over
        every rank's rows."""
        return self.nx.reduce_sum(float(self.nx.sum(self.a * (self.la - alpha))))

    def row_error(self, rows: np.ndarray, target: np.ndarray) -> float:
        """:math:`\\|r - a\\|_1` over every rank's rows."""
        return self.nx.reduce_sum(float(np.abs(rows - target).sum()))


class _Balanced(_SemiDual):
    r"""Balanced semi-dual, minimised:
    :math:`F(\beta) = \sum_i a_i \operatorname{LSE}_j(\beta_j + S_{ij}/\varepsilon)
    - \langle b, \beta\rangle`, gradient :math:`T^\top\mathbf 1 - b`."""

    def finish(self, x: np.ndarray, alpha: Any, L: Any, col: np.ndarray) -> _Eval:
        grad = col - self.b_h
        value = self.row_lse_term(alpha) - float(self.b_h @ x)
        return _Eval(value, grad, float(np.abs(grad).sum()), x, alpha, L)

    def step(self, e: _Eval) -> np.ndarray:
        return self.lb_h - self.kern.host(e.L)  # Sinkhorn column update

    def kkt_error(self, e: _Eval, rows: np.ndarray, cols: np.ndarray) -> float:
        return self.row_error(rows, self.a_h) + float(np.abs(cols - self.b_h).sum())


class _SemiRelaxed(_SemiDual):
    r"""Semi-relaxed semi-dual, minimised:
    :math:`F(\beta) = \sum_i a_i \operatorname{LSE}_j(\beta_j + S_{ij}/\varepsilon)
    + \tfrac{\rho}{\varepsilon}\sum_j b_j e^{-\varepsilon(\beta_j - \log b_j)/\rho}`,
    gradient :math:`T^\top\mathbf 1 - c^\star(\beta)`."""

    def __init__(self, kern: KernelBlocks, a: np.ndarray, b: np.ndarray, rho: float) -> None:
        super().__init__(kern, a, b)
        self.rho = rho
        self.k = kern.reg / rho

    def finish(self, x: np.ndarray, alpha: Any, L: Any, col: np.ndarray) -> _Eval:
        target = self.b_h * np.exp(-self.k * (x - self.lb_h))
        grad = col - target
        value = self.row_lse_term(alpha) + float(target.sum()) / self.k
        return _Eval(value, grad, float(np.abs(grad).sum()), x, alpha, L)

    def step(self, e: _Eval) -> np.ndarray:
        phi = self.rho / (self.rho + self.kern.reg)
        return self.lb_h - phi * self.kern.host(e.L)  # generalised Sinkhorn update

    def kkt_error(self, e: _Eval, rows: np.ndarray, cols: np.ndarray) -> float:
        target = self.b_h * np.exp(-self.k * (e.x - self.lb_h))
        return self.row_error(rows, self.a_h) + float(np.abs(cols - target).sum())


class _Partial(_SemiDual):
    r"""Partial-OT dual with the row multipliers eliminated, minimised over
    ``x = (beta, theta)`` with :math:`\beta \le 0`:
    :math:`G = \mathbf 1^\top T\mathbf 1 + \sum_i a_i(\theta + \ell_i - \log a_i)_+
    - \langle b, \beta\rangle - \theta m`, :math:`\alpha_i = \min(\theta,
    \log a_i - \ell_i)`; gradient :math:`(T^\top\mathbf 1 - b,\ \mathbf 1^\top T
    \mathbf 1 - m)`."""

    def __init__(self, kern: KernelBlocks, a: np.ndarray, b: np.ndarray, mass: float) -> None:
        super().__init__(kern, a, b)
        self.mass = mass
        self.bounds = [(None, 0.0)] * kern.m + [(None, None)]
        self._excess = 0.0

    def row_update(self, x: np.ndarray) -> Callable[[Any, slice], Any]:
        nx, la, a = self.nx, self.la, self.a
        theta = float(x[-1])
        self._excess = 0.0

        def update(lse: Any, sl: slice) -> Any:
            # rows that would exceed a_i are capped (their multiplier p_i > 0)
            over = theta + lse - la[sl]
            self._excess += float(nx.sum(a[sl] * nx.maximum(over, 0.0)))
            return nx.minimum(la[sl] - lse, theta)

        return update

    def finish(self, x: np.ndarray, alpha: Any, L: Any, col: np.ndarray) -> _Eval:
        beta, theta = x[:-1], float(x[-1])
        total = float(col.sum())
        g_beta = col - self.b_h
        grad = np.append(g_beta, total - self.mass)
        value = total + self._excess - float(self.b_h @ beta) - theta * self.mass
        free = beta < -1e-12
        err = (abs(total - self.mass) + float(np.abs(g_beta[free]).sum())
               + float(np.maximum(g_beta[~free], 0.0).sum()))
        return _Eval(value, grad, err, x, alpha, L)

    def kkt_error(self, e: _Eval, rows: np.ndarray, cols: np.ndarray) -> float:
        # mass; columns: equality where the multiplier is active (beta < 0), else <= b;
        # rows: equality where capped (alpha < theta: multiplier p_i > 0), else <= a
        beta, theta = e.x[:-1], float(e.x[-1])
        free = beta < -1e-12
        capped = self.kern.host(e.alpha) < theta - 1e-12
        g_col, g_row = cols - self.b_h, rows - self.a_h
        return float(abs(cols.sum() - self.mass)
                     + np.abs(g_col[free]).sum() + np.maximum(g_col[~free], 0.0).sum()
                     + np.abs(g_row[capped]).sum() + np.maximum(g_row[~capped], 0.0).sum())

    def violation(self, rows: np.ndarray, cols: np.ndarray) -> float:
        r""":math:`|\mathbf 1^\top T\mathbf 1 - m| + \sum(T\mathbf 1 - a)_+ +
        \sum(T^\top\mathbf 1 - b)_+`."""
        return float(abs(cols.sum() - self.mass) + np.maximum(rows - self.a_h, 0).sum()
                     + np.maximum(cols - self.b_h, 0).sum())

    def step(self, e: _Eval) -> np.ndarray:
        L = self.kern.host(e.L)
        beta = np.minimum(self.lb_h - L, 0.0)  # exact minimisation over beta
        total = float(np.exp(beta + L).sum())
        return np.append(beta, e.x[-1] + np.log(self.mass) - np.log(total))


_CONTROLLER: Any = None


def _blas_limits() -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Context managers: BLAS on one thread (L-BFGS's own vector work), and as before.

    scipy's L-BFGS-B does ``O(M·memory)`` BLAS level-1/2 work per step; on several
    threads that work is dominated by waking them (measured: 66 steps at M = 20,000 took
    6 s with 2 busy threads, 0.26 s with one). The kernel passes inside the objective get
    the threads back.
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext, contextlib.nullcontext
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    controller = _CONTROLLER
    blas = [c for c in controller.info() if c.get("user_api") == "blas"]
    if not blas:
        return contextlib.nullcontext, contextlib.nullcontext
    before = max(int(c.get("num_threads", 1)) for c in blas)
    if before <= 1:  # already one thread: nothing to switch (each switch costs ~0.1 ms)
        return contextlib.nullcontext, contextlib.nullcontext
    return (lambda: controller.limit(limits=1, user_api="blas"),
            lambda: controller.limit(limits=before, user_api="blas"))


def _minimise(problem: _SemiDual, x0: np.ndarray, *, tol: float, max_iter: int,
              solver: str, passes: int = 0) -> tuple[_Eval, _Check, int]:
    """L-BFGS(-B) on the semi-dual, stopping only on the error or the pass budget.

    The solver's own error (of its ``dtype`` passes) drives it down to a target, first
    ``tol``; then one float64 pass measures the plan (:meth:`_SemiDual.measure`). If
    that error is above ``tol`` while the solver's was below its target, the target is
    lowered by the ratio and the solver goes on (:data:`MEASURE_ROUNDS` checks at most).
    When L-BFGS stops on its own (a failed line search: float32 noise in the gradient
    near the optimum), :data:`FALLBACK_STEPS` fixed-point steps follow from the last
    point, then L-BFGS starts again from the best. Returns the evaluation with the
    smallest error, its float64 check and the number of solver passes (the checks are
    counted in ``check.passes``).
    """
    state: dict[str, Any] = {"n": passes, "best": None, "last": None, "target": tol,
                             "checks": 0}

    def evaluate(x: np.ndarray) -> _Eval:
        e = problem.evaluate(np.array(x, dtype=np.float64))
        state["n"] += 1
        state["last"] = e
        if state["best"] is None or e.err < state["best"].err:
            state["best"] = e
        return e

    def done() -> bool:
        best = state["best"]
        return (best is not None and best.err <= state["target"]) or state["n"] >= max_iter

    one_thread, all_threads = _blas_limits()

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        with all_threads():
            e = evaluate(x)
        if done():
            raise _Stop
        return e.value, e.grad

    evaluate(x0)
    check = None
    for _ in range(MEASURE_ROUNDS):
        while not done():
            if solver == "lbfgs":
                try:
                    with one_thread():
                        minimize(objective, state["best"].x, jac=True, method="L-BFGS-B",
                                 bounds=problem.bounds,
                                 options={"maxcor": LBFGS_MEMORY, "maxiter": max_iter,
                                          "maxfun": max_iter, "ftol": 0.0, "gtol": 0.0})
                except _Stop:
                    break
            for _ in range(FALLBACK_STEPS if solver == "lbfgs" else max_iter):
                if done():
                    break
                evaluate(problem.step(state["last"]))
        best = state["best"]
        check = problem.measure(best)
        check.passes = state["checks"] = state["checks"] + 1
        if check.err <= tol or best.err > state["target"] or state["n"] >= max_iter:
            break
        # the float64 error is above tol though the solver's own met its target: aim lower
        state["target"] = best.err * min(0.5, tol / check.err)
    assert check is not None
    return state["best"], check, int(state["n"])


def _result(kern: KernelBlocks, e: _Eval, check: _Check, method: str, n_iter: int,
            tol: float, t0: float, to_numpy: bool, **info: Any) -> OTResult:
    # internally T_ij = exp(alpha_i + beta_j + S_ij/reg); -C/reg = S/reg - 1/reg
    info.update(solver_error=float(e.err), check_passes=check.passes,
                blocks=len(kern.slices), cached_bytes=kern.cached_bytes,
                block_computations=kern.n_computed, dtype=kern.dtype_name,
                matmul_dtype=kern.matmul_dtype_name, device=kern.device,
                backend=kern.nx.name, kernel_seconds=round(kern.compute_seconds, 3),
                exact_rows=kern.n_exact_rows, exact_cols=kern.n_exact_cols,
                split_blocks=kern.n_split_blocks)
    log_v = kern.vector(e.x[: kern.m])
    log_u = e.alpha + 1.0 / kern.reg
    if kern.device.startswith("cuda"):
        kern.nx.synchronize(log_u)
    return OTResult(
        log_u=_out(log_u, to_numpy), log_v=_out(log_v, to_numpy), reg=kern.reg,
        method=method, n_iter=n_iter, converged=bool(check.err <= tol),
        marginal_error=float(check.err), seconds=time.perf_counter() - t0, info=info,
    )


_STREAM_DOC = """
    Parameters
    ----------
    X, U : numpy.ndarray or torch.Tensor
        ``(N, d)`` image and ``(M, d)`` text features, unit rows.
    a, b : array, optional
        Positive marginals; default uniform.
    reg : float
        :math:`\\varepsilon` (default 0.01, kec's choice).
    max_iter : int
        Maximum solver passes over the ``N×M`` entries (default 1000); the float64
        checks (one, at most :data:`MEASURE_ROUNDS`) come on top.
    tol : float
        Target ``marginal_error`` (default 1e-4), measured in float64.
    solver : {"lbfgs", "sinkhorn"}
        ``"lbfgs"`` (default): L-BFGS on the semi-dual, fixed-point steps when it
        stalls; ``"sinkhorn"``: the fixed-point iteration alone.
    block_rows : int, optional
        Rows per block (default: 8 MiB blocks on the CPU, 512 MiB on a GPU).
    cache_bytes : int, optional
        Memory for cached kernel blocks (default 4 GiB on the CPU: 50,000 × 20,000
        fits in float32; on a GPU half the free memory, at most 24 GiB); blocks beyond
        it are recomputed by GEMM at every pass.
    dtype : {None, "float32", "float64"}
        Kernel blocks and matrix-vector products. ``None`` (default): float32 for
        ``tol >= 1e-5`` (the float32 floor, :data:`DTYPE_FLOOR`), float64 below; float64
        doubles the memory of the cache.
    matmul_dtype : {None, "float64", "float32", "bfloat16x3", "bfloat16", "float16"}
        The GEMM that makes a block. ``None``: on the CPU float64 (the float32 blocks
        then hold the float64 kernel, rounded once; a float32 GEMM's rounding alone
        leaves an L1 floor of ~4e-6 at reg 0.01, growing as 1/reg), on a CUDA device
        :data:`GPU_MATMUL_DTYPE`. ``"float32"``: half the GEMM time where blocks are
        recomputed at every pass. Torch only: ``"bfloat16"``/``"float16"`` read 16-bit
        features and sum in float32; the solve is then exact for the rounded features,
        and ``marginal_error`` is measured for them. ``"bfloat16x3"`` splits each feature
        into two bfloat16 parts, close to float32. Whatever the GEMM, ``marginal_error``
        comes from a float64 product (one GEMM per block for the check, unless the GEMM
        was float64).
    device : {None, "auto", "cpu", "cuda"}
        Where to compute. ``None`` follows the inputs; numpy inputs on a GPU come back
        as numpy.
"""


def _stream_setup(X: Any, U: Any, reg: float, max_iter: int, tol: float, solver: str,
                  device: str | None) -> tuple[Any, Any, float, bool]:
    X, U, to_numpy = _pair(X, U, device)
    reg = check_positive(reg, "reg")
    _check_iter(max_iter, tol)
    if solver not in ("lbfgs", "sinkhorn"):
        raise ClusteringInputError(f"solver must be 'lbfgs' or 'sinkhorn', got {solver!r}")
    return X, U, reg, to_numpy


def sinkhorn_log_chunked(
    X: Any,
    U: Any,
    a: Any = None,
    b: Any = None,
    reg: float = DEFAULT_REG,
    *,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    solver: str = "lbfgs",
    block_rows: int | None = None,
    cache_bytes: int | None = None,
    dtype: object = None,
    matmul_dtype: object = None,
    device: str | None = None,
    _kernel_out: list[KernelBlocks] | None = None,
) -> OTResult:
    r"""Balanced entropic OT between features, streamed by row blocks.

    Same problem as :func:`sinkhorn_log` with :math:`C = 1 - XU^\top` (docs/methods.md §3.2),
    but the cost is never formed: row blocks of the stabilised kernel
    :math:`K_{ij} = \exp(S_{ij}/\varepsilon - \max_j S_{ij}/\varepsilon)` are computed
    from the features by matrix products (:class:`kec.cluster._kernel.KernelBlocks`),
    cached while they fit ``cache_bytes`` and recomputed otherwise; potentials stay in
    float64 log domain.

    The default solver minimises the semi-dual (Cuturi & Peyré 2016, "A smoothed dual
    approach for variational Wasserstein problems"; Blondel et al. 2018) in the column
    log-scalings :math:`\beta_j = \log v_j`

    .. math::

        F(\beta) = \sum_i a_i \operatorname{LSE}_j\big(\beta_j + S_{ij}/\varepsilon\big)
            - \langle \mathbf b, \beta\rangle,
        \qquad \nabla F = T^\top\mathbf 1 - \mathbf b,

    with L-BFGS (scipy's L-BFGS-B, memory 10), where every evaluation is one pass that
    sets the rows exactly, :math:`\log u_i = \log a_i - \operatorname{LSE}_j(\beta_j -
    C_{ij}/\varepsilon)`. ``solver="sinkhorn"`` instead iterates
    :math:`\beta_j \leftarrow \log b_j - \operatorname{LSE}_i(\log u_i -
    C_{ij}/\varepsilon)` (log-domain Sinkhorn); these steps are also the fallback when
    L-BFGS stalls. ``marginal_error`` is
    :math:`\|T\mathbf 1 - \mathbf a\|_1 + \|T^\top\mathbf 1 - \mathbf b\|_1` of the
    returned plan, in float64 (the rows, set exactly in the solver's float32 pass, are
    off by ~1e-7 in float64).
    """
    t0 = time.perf_counter()
    X, U, reg, to_numpy = _stream_setup(X, U, reg, max_iter, tol, solver, device)
    a, b = _balanced_marginals(a, b, X.shape[0], U.shape[0])
    kern = _kernel(X, U, reg, block_rows, cache_bytes, dtype, matmul_dtype, tol)
    e, check, n = _minimise(_Balanced(kern, a, b), np.zeros(kern.m), tol=tol,
                            max_iter=int(max_iter), solver=solver)
    if _kernel_out is not None:
        _kernel_out.append(kern)
    return _result(kern, e, check, "chunked", n, tol, t0, to_numpy, solver=solver)


sinkhorn_log_chunked.__doc__ = (sinkhorn_log_chunked.__doc__ or "") + _STREAM_DOC + """
    Returns
    -------
    OTResult
        ``plan`` is ``None``; use :func:`transport_features` or :func:`plan_from_duals`.

    Notes
    -----
    Memory: ``cache_bytes`` plus two blocks plus the features. One pass over a cached
    block is two matrix-vector products; over an uncached block a GEMM (``2·d`` flops per
    entry) and one ``exp`` per entry.

    Accuracy: ``tol=1e-4`` leaves per-image transport weights :math:`N T_{ij}` within
    about 2e-3 of the exact plan, far below what moves a cluster. float32 blocks reach
    ``tol >= 1e-5``; ``dtype=None`` switches to float64 blocks below that.
"""


def semi_relaxed(
    X: Any,
    U: Any,
    a: Any = None,
    b: Any = None,
    reg: float = DEFAULT_REG,
    rho: float = 1.0,
    *,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    solver: str = "lbfgs",
    block_rows: int | None = None,
    cache_bytes: int | None = None,
    dtype: object = None,
    matmul_dtype: object = None,
    device: str | None = None,
    _kernel_out: list[KernelBlocks] | None = None,
) -> OTResult:
    r"""Semi-relaxed entropic OT: every image sends its mass, texts may receive more or less.

    .. math::

        \min_{T\mathbf 1 = \mathbf a} \langle T, C\rangle
        + \varepsilon\,\mathrm{KL}(T\,\|\,\mathbf a\mathbf b^\top)
        + \rho\,\mathrm{KL}(T^\top\mathbf 1\,\|\,\mathbf b)

    (the objective POT calls ``reg_type="kl"`` in ``ot.sinkhorn_unbalanced`` with
    ``reg_m=(inf, rho)``). At the optimum the column log-scalings satisfy
    :math:`\beta_j = \log b_j - \tfrac{\rho}{\varepsilon}(\log c_j - \log b_j)` with
    :math:`c = T^\top\mathbf 1`, i.e. :math:`c_j = c^\star_j(\beta) = b_j
    e^{-\varepsilon(\beta_j - \log b_j)/\rho}`. The default solver minimises the convex
    semi-dual

    .. math::

        F(\beta) = \sum_i a_i \operatorname{LSE}_j(\beta_j + S_{ij}/\varepsilon)
        + \frac{\rho}{\varepsilon}\sum_j c^\star_j(\beta),
        \qquad \nabla F = T^\top\mathbf 1 - c^\star(\beta),

    by L-BFGS; ``solver="sinkhorn"`` iterates the generalised Sinkhorn update (Chizat et
    al. 2018, "Scaling algorithms for unbalanced optimal transport problems")
    :math:`\beta_j \leftarrow \log b_j - \tfrac{\rho}{\rho + \varepsilon}
    \operatorname{LSE}_i(\log u_i - C_{ij}/\varepsilon)`, with rows set exactly,
    :math:`\log u_i = \log a_i - \operatorname{LSE}_j(\beta_j - C_{ij}/\varepsilon)`.
    ``rho → ∞`` recovers balanced OT, ``rho → 0`` a per-image softmax. ``rho=1`` is kec's
    default, not a published value. ``marginal_error`` is :math:`\|T\mathbf 1 -
    \mathbf a\|_1 + \|T^\top\mathbf 1 - c^\star(\beta)\|_1` of the returned plan, in
    float64 (the rows' constraint and the columns' optimality condition, in units of
    mass).
    """
    t0 = time.perf_counter()
    X, U, reg, to_numpy = _stream_setup(X, U, reg, max_iter, tol, solver, device)
    rho = check_positive(rho, "rho")
    a = _marginal(a, X.shape[0], "a", rows=True)
    b = _marginal(b, U.shape[0], "b")
    kern = _kernel(X, U, reg, block_rows, cache_bytes, dtype, matmul_dtype, tol)
    e, check, n = _minimise(_SemiRelaxed(kern, a, b, rho), np.log(b), tol=tol,
                            max_iter=int(max_iter), solver=solver)
    if _kernel_out is not None:
        _kernel_out.append(kern)
    return _result(kern, e, check, "semi_relaxed", n, tol, t0, to_numpy, rho=rho,
                   solver=solver)


semi_relaxed.__doc__ = (semi_relaxed.__doc__ or "") + _STREAM_DOC + """    rho : float
        Strength of the column-marginal penalty (> 0; default 1).

    Returns
    -------
    OTResult
        ``plan`` is ``None``; use :func:`transport_features` or :func:`plan_from_duals`.
"""


def partial(
    X: Any,
    U: Any,
    a: Any = None,
    b: Any = None,
    reg: float = DEFAULT_REG,
    mass: float = 0.9,
    *,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    solver: str = "lbfgs",
    block_rows: int | None = None,
    cache_bytes: int | None = None,
    dtype: object = None,
    matmul_dtype: object = None,
    device: str | None = None,
    _kernel_out: list[KernelBlocks] | None = None,
) -> OTResult:
    r"""Entropic partial OT: transport only ``mass`` of the total, the easiest part.

    .. math::

        \min_{T \ge 0} \langle T, C\rangle + \varepsilon \sum_{ij} T_{ij}\log T_{ij}
        \quad\text{s.t.}\quad T\mathbf 1 \le \mathbf a,\;
        T^\top\mathbf 1 \le \mathbf b,\; \mathbf 1^\top T \mathbf 1 = m

    (the problem of POT's ``ot.partial.entropic_partial_wasserstein``, which solves it by
    Dykstra's KL projections, Benamou et al. 2015). Here its dual is solved directly: with
    multipliers :math:`p \ge 0` (rows), :math:`q \ge 0` (columns) and :math:`\lambda`
    (mass), :math:`T_{ij} = \exp((\lambda - p_i - q_j - C_{ij})/\varepsilon)`. The row
    multipliers have a closed form, :math:`\log u_i = \min(\theta, \log a_i -
    \operatorname{LSE}_j(\beta_j - C_{ij}/\varepsilon))` with :math:`\beta = -q/\varepsilon
    \le 0`, :math:`\theta = \lambda/\varepsilon`, and L-BFGS-B minimises the remaining
    convex function of :math:`(\beta, \theta)`

    .. math::

        G = \mathbf 1^\top T\mathbf 1 + \sum_i a_i\big(\theta + \ell_i - \log a_i\big)_+
        - \langle \mathbf b, \beta\rangle - m\theta,
        \quad \nabla_\beta G = T^\top\mathbf 1 - \mathbf b,\;
        \partial_\theta G = \mathbf 1^\top T\mathbf 1 - m

    (:math:`\ell_i = \operatorname{LSE}_j(\beta_j - C_{ij}/\varepsilon)`). Its fallback
    steps are the exact minimisation over :math:`\beta`, :math:`\beta_j \leftarrow
    \min(0, \log b_j - \operatorname{LSE}_i(\log u_i - C_{ij}/\varepsilon))`, and a
    rescaling of the mass. Images whose best texts are poor matches keep part of their
    mass untransported. ``mass=0.9`` is kec's default.

    ``marginal_error`` is the L1 violation of the KKT conditions by the returned plan,
    in float64: :math:`|\mathbf 1^\top T\mathbf 1 - m|`, plus :math:`|c_j - b_j|` for
    texts whose constraint is active (:math:`\beta_j < 0`) and :math:`(c_j - b_j)_+` for
    the others, plus the same for the rows with :math:`r = T\mathbf 1`:
    :math:`|r_i - a_i|` for capped rows (:math:`\log u_i < \theta`) and
    :math:`(r_i - a_i)_+` for the others. ``info["constraint_violation"]`` is
    :math:`|\mathbf 1^\top T\mathbf 1 - m| + \sum(T\mathbf 1 - a)_+ +
    \sum(T^\top\mathbf 1 - b)_+`; ``info["log_u_cap"]`` is the cap
    :math:`\theta + 1/\varepsilon` on ``log_u`` (rows below it are capped at ``a``).
    """
    t0 = time.perf_counter()
    X, U, reg, to_numpy = _stream_setup(X, U, reg, max_iter, tol, solver, device)
    mass = check_positive(mass, "mass")
    a = _marginal(a, X.shape[0], "a")
    b = _marginal(b, U.shape[0], "b")
    if mass > min(a.sum(), b.sum()) * (1 + 1e-12):
        raise ClusteringInputError(
            f"mass={mass} exceeds min(sum(a), sum(b)) = {min(a.sum(), b.sum()):.6g}"
        )
    kern = _kernel(X, U, reg, block_rows, cache_bytes, dtype, matmul_dtype, tol)
    problem = _Partial(kern, a, b, mass)
    # start: beta = 0 and theta such that the uncapped plan carries the mass
    lse0, _ = kern.sweep(np.zeros(kern.m), lambda lse, sl: lse, columns=False)
    theta0 = float(np.log(mass)) - float(kern.nx.logsumexp(lse0))
    e, check, n = _minimise(problem, np.append(np.zeros(kern.m), theta0), tol=tol,
                            max_iter=int(max_iter), solver=solver, passes=1)
    if _kernel_out is not None:
        _kernel_out.append(kern)
    return _result(kern, e, check, "partial", n, tol, t0, to_numpy, mass=mass, solver=solver,
                   constraint_violation=problem.violation(check.rows, check.cols),
                   log_u_cap=float(e.x[-1]) + 1.0 / kern.reg)


partial.__doc__ = (partial.__doc__ or "") + _STREAM_DOC + """    mass : float
        :math:`m`, at most ``min(sum(a), sum(b))`` (default 0.9).

    Returns
    -------
    OTResult
        ``plan`` is ``None``; use :func:`transport_features` or :func:`plan_from_duals`.
"""


# --------------------------------------------------------------------------- dispatch
def _similarity64(X: Any, U: Any) -> Any:
    nx = get_backend(X, U)
    return nx.matmul(nx.astype(X, "float64"), nx.astype(U, "float64").T)


def _resolve(method: str, n: int, m: int) -> str:
    if method not in METHODS:
        raise ClusteringInputError(f"unknown OT method {method!r}; choose from {METHODS}")
    if method == "auto":
        method = "sinkhorn" if n * m <= AUTO_DENSE_MAX_ENTRIES else "chunked"
    if method in ("sinkhorn", "partial") and current_rows().distributed:
        raise ClusteringInputError(
            f"OT method {method!r} runs in one process; with rows split over processes use "
            "'chunked' (auto) or 'semi_relaxed'")
    return method


def solve_ot(
    X: Any,
    U: Any,
    method: str = "auto",
    *,
    a: Any = None,
    b: Any = None,
    reg: float = DEFAULT_REG,
    device: str | None = None,
    **kwargs: Any,
) -> OTResult:
    r"""Entropic OT between image features ``X`` and text features ``U``, :math:`C = 1 - XU^\top`.

    Parameters
    ----------
    method : {"auto", "sinkhorn", "chunked", "semi_relaxed", "partial"}
        ``"auto"``: :func:`sinkhorn_log_chunked` (L-BFGS on the semi-dual), which
        converged faster than dense Sinkhorn at every size measured, 100 × 50 up.
    a, b, reg
        Marginals (default uniform) and :math:`\varepsilon`.
    device : {None, "auto", "cpu", "cuda"}
        Where to compute (``None``: where the inputs are). Results follow the inputs:
        numpy in, numpy out.
    **kwargs
        Passed to the solver (``max_iter``, ``tol``, ``rho``, ``mass``, ``cache_bytes``,
        ``matmul_dtype``...); the dense solver takes only ``max_iter`` and ``tol``.

    Returns
    -------
    OTResult
    """
    X, U, to_numpy = _pair(X, U, device)
    method = _resolve(method, current_rows().total(X.shape[0]), U.shape[0])
    if method == "sinkhorn":
        # streaming options (cache_bytes, block_rows, dtype, solver) do not apply
        dense = {k: v for k, v in kwargs.items() if k in ("max_iter", "tol")}
        res = sinkhorn_log(1.0 - _similarity64(X, U), a, b, reg, **dense)
        if to_numpy:
            res.log_u, res.log_v, res.plan = (_out(res.log_u, True), _out(res.log_v, True),
                                              _out(res.plan, True))
        return res
    solver = {"chunked": sinkhorn_log_chunked, "semi_relaxed": semi_relaxed,
              "partial": partial}[method]
    res = solver(X, U, a, b, reg, **kwargs)
    if to_numpy:
        res.log_u, res.log_v = _out(res.log_u, True), _out(res.log_v, True)
    return res


# --------------------------------------------------------------------------- features
def plan_from_duals(X: Any, U: Any, result: OTResult) -> Any:
    """Dense float64 plan :math:`\\exp(\\log u_i + \\log v_j - C_{ij}/\\varepsilon)`.

    For tests and small problems only (``N×M`` float64); same backend as ``X``.
    """
    X, U, to_numpy = _pair(X, U)
    nx = get_backend(X)
    C = 1.0 - _similarity64(X, U)
    lu = nx.asarray(to_host(result.log_u) if to_numpy else result.log_u, like=C)
    lv = nx.asarray(to_host(result.log_v) if to_numpy else result.log_v, like=C)
    return nx.exp(lu[:, None] + lv[None, :] - C / result.reg)


def transport_features(
    X: Any,
    U: Any,
    transport: OTResult | Any,
    *,
    similarity_weighted: bool = True,
    block_rows: int | None = None,
    dtype: object = "float32",
    matmul_dtype: object = None,
    device: str | None = None,
) -> Any:
    r"""CAE's transported text feature of every image (docs/methods.md §3.2).

    .. math::  x^u_i = \operatorname{normalize}\Big(\sum_j T_{ij} S_{ij} u_j\Big)

    Parameters
    ----------
    X, U : numpy.ndarray or torch.Tensor
        ``(N, d)`` images and ``(M, d)`` texts, unit rows.
    transport : OTResult or array
        A solver result (the plan is rebuilt block by block from ``log_v``; its row
        scalings cancel in the normalisation) or a dense ``(N, M)`` plan.
    similarity_weighted : bool
        ``True`` (CAE): weights :math:`T_{ij}S_{ij}`; ``False``: :math:`T_{ij}`.
    block_rows : int, optional
        Rows per block.
    dtype, matmul_dtype, device
        As in :func:`sinkhorn_log_chunked`.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(N, d)`` float32 unit rows (an image with all-zero weights gives a zero row);
        numpy for numpy inputs.
    """
    X, U, to_numpy = _pair(X, U, device)
    nx = get_backend(X)
    if isinstance(transport, OTResult):
        if (transport.log_v.shape[0] != U.shape[0]
                or transport.log_u.shape[0] != X.shape[0]):
            raise ClusteringInputError("the OT result does not match these features' shapes")
        kern = _kernel(X, U, transport.reg, block_rows, 0, dtype, matmul_dtype)
        beta = kern.vector(to_host(transport.log_v) if not is_torch(transport.log_v)
                           else transport.log_v)
        feats = kern.transport_features(beta, similarity_weighted=similarity_weighted)
        return _out(feats, to_numpy)
    plan = nx.asarray(transport if nx.name == "torch" or not is_torch(transport)
                      else to_host(transport), dtype="float64", device=nx.device(X))
    if tuple(plan.shape) != (X.shape[0], U.shape[0]):
        raise ClusteringInputError(
            f"plan has shape {tuple(plan.shape)}, expected {(X.shape[0], U.shape[0])}"
        )
    W = plan * _similarity64(X, U) if similarity_weighted else plan
    out = nx.matmul(W, nx.astype(U, "float64"))
    norms = nx.norm(out, axis=1, keepdims=True)
    out = out / nx.where(norms > 0, norms, 1.0)
    return _out(nx.astype(out, "float32"), to_numpy)


def solve_and_transport(
    X: Any,
    U: Any,
    method: str = "auto",
    *,
    similarity_weighted: bool = True,
    device: str | None = None,
    **kwargs: Any,
) -> tuple[Any, OTResult]:
    """:func:`solve_ot` then :func:`transport_features`, reusing the solver's cached kernel.

    Parameters
    ----------
    X : numpy.ndarray or torch.Tensor
        ``(N, d)`` items.
    U : numpy.ndarray or torch.Tensor
        ``(M, d)`` texts to transport onto them.
    method : str
        The solver, as in :func:`solve_ot` (``"auto"`` by size).
    similarity_weighted : bool
        As in :func:`transport_features`.
    device : str or None
        As in :func:`solve_ot`.
    **kwargs
        The solver's other keywords (``reg``, ``tol``, ``max_iter``...).

    Returns
    -------
    features : numpy.ndarray or torch.Tensor
        ``(N, d)`` float32 transported features (numpy for numpy inputs).
    result : OTResult
    """
    X, U, to_numpy = _pair(X, U, device)
    method = _resolve(method, current_rows().total(X.shape[0]), U.shape[0])
    if method == "sinkhorn":
        res = solve_ot(X, U, "sinkhorn", **kwargs)
        feats = transport_features(X, U, res.plan, similarity_weighted=similarity_weighted)
        if to_numpy:
            res.log_u, res.log_v, res.plan = (_out(res.log_u, True), _out(res.log_v, True),
                                              _out(res.plan, True))
        return _out(feats, to_numpy), res
    holder: list[KernelBlocks] = []
    solver = {"chunked": sinkhorn_log_chunked, "semi_relaxed": semi_relaxed,
              "partial": partial}[method]
    a, b = kwargs.pop("a", None), kwargs.pop("b", None)
    reg = kwargs.pop("reg", DEFAULT_REG)
    res = solver(X, U, a, b, reg, _kernel_out=holder, **kwargs)
    kern = holder[0]
    try:
        t0 = time.perf_counter()
        feats = kern.transport_features(kern.vector(res.log_v),
                                        similarity_weighted=similarity_weighted)
        kern.nx.synchronize(feats)
        res.info["transport_seconds"] = round(time.perf_counter() - t0, 3)
    finally:
        kern.release()
    if to_numpy:
        res.log_u, res.log_v = _out(res.log_u, True), _out(res.log_v, True)
    return _out(feats, to_numpy), res


__all__ = [
    "DEFAULT_REG",
    "DEFAULT_TOL",
    "METHODS",
    "OTResult",
    "dtype_name",
    "partial",
    "plan_from_duals",
    "semi_relaxed",
    "sinkhorn_log",
    "sinkhorn_log_chunked",
    "solve_and_transport",
    "solve_ot",
    "transport_features",
]
