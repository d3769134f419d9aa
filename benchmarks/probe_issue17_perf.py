"""Reproductions of issue 17's items 9 and 8 (SphericalKMeans input types), at the
issue's sizes; exits 1 if any of them still fails.

Item 9: ``solve_ot(X, U, method, tol=...)`` at 2,000 × 800 float32 CLIP-like features,
for auto, chunked, semi_relaxed and partial (default rho 1, mass 0.9) at tol 1e-4 and
1e-6 (the issue's 7 failing cases are among these 8), must converge, report
``converged`` only when the returned plan, rebuilt densely in float64, meets every
constraint to ``tol``, and report that float64 error as ``marginal_error``. Item 8: bool
and string arrays given to ``SphericalKMeans`` are refused with the estimators' message.

Usage::

    python benchmarks/probe_issue17_perf.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_ot import clip_like  # noqa: E402

from kec.cluster import ClusteringInputError, SphericalKMeans  # noqa: E402
from kec.cluster.ot import plan_from_duals, solve_ot  # noqa: E402


def float64_error(X: np.ndarray, U: np.ndarray, res, method: str) -> float:
    """The error each solver documents, from the dense float64 plan."""
    T = plan_from_duals(X, U, res)
    n, m = T.shape
    a, b = np.full(n, 1 / n), np.full(m, 1 / m)
    row, col = T.sum(axis=1), T.sum(axis=0)
    if method in ("auto", "chunked"):
        return float(np.abs(row - a).sum() + np.abs(col - b).sum())
    if method == "semi_relaxed":
        target = b * np.exp(-res.reg * (res.log_v - np.log(b)))
        return float(np.abs(row - a).sum() + np.abs(col - target).sum())
    free = res.log_v < -1e-12
    capped = res.log_u < res.info.get("log_u_cap", -np.inf) - 1e-12  # (older kec: none)
    return float(abs(T.sum() - 0.9) + np.abs(col - b)[free].sum()
                 + np.maximum(col - b, 0)[~free].sum() + np.abs(row - a)[capped].sum()
                 + np.maximum(row - a, 0)[~capped].sum())


def main() -> int:
    X, U = clip_like(2000, 800, 512, seed=0)
    failures = 0
    cases = [(m, t) for m in ("auto", "chunked", "semi_relaxed", "partial")
             for t in (1e-4, 1e-6)]
    for method, tol in cases:
        res = solve_ot(X, U, method, tol=tol)
        measured = float64_error(X, U, res, method)
        honest = res.converged == (measured <= tol)
        same = abs(res.marginal_error - measured) <= 1.2e-7 + 1e-6 * measured
        ok = honest and same and res.converged
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} OT {method:12s} tol {tol:g}: converged "
              f"{res.converged}, marginal_error {res.marginal_error:.3g}, float64 error "
              f"{measured:.3g}, {res.n_iter} passes, dtype {res.info['dtype']}")
    for bad in (np.array([[True, False], [False, True], [True, True]]),
                np.array([["1.0", "0.0"], ["0.0", "1.0"], ["1", "1"]])):
        try:
            SphericalKMeans(2).fit(bad)
            ok = False
        except ClusteringInputError as exc:
            ok = "must be real numbers" in str(exc)
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} SphericalKMeans refuses {bad.dtype} features")
    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
