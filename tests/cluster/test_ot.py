"""Entropic OT solvers: agreement with POT, marginals, closed forms, features, errors."""

from __future__ import annotations

import warnings

import numpy as np
import ot
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kec.cluster import ClusteringInputError
from kec.cluster.ot import (
    partial,
    plan_from_duals,
    semi_relaxed,
    sinkhorn_log,
    sinkhorn_log_chunked,
    solve_and_transport,
    solve_ot,
    transport_features,
)
from tests.cluster.helpers import blobs, random_unit, unit


@pytest.fixture(scope="module")
def problem():
    X, _, _ = blobs(40, 5, d=24, seed=1)  # 200 images
    U = random_unit(90, 24, seed=2)
    C = 1.0 - X.astype(np.float64) @ U.astype(np.float64).T
    return X, U, C


def pot_plan(C, reg, **kw):
    n, m = C.shape
    return ot.sinkhorn(np.full(n, 1 / n), np.full(m, 1 / m), C, reg, method="sinkhorn_log",
                       numItermax=200_000, stopThr=1e-13, **kw)


def test_two_by_two_closed_form():
    # S = I, C = 1 - I: T = [[p, 1/2 - p], [1/2 - p, p]], (p / (1/2 - p))^2 = exp(2 / reg)
    X = U = np.eye(2, dtype=np.float32)
    reg = 0.5
    r = np.exp(2 / (2 * reg))
    p = 0.5 * r / (1 + r)
    res = sinkhorn_log_chunked(X, U, reg=reg, tol=1e-12, dtype=np.float64)
    np.testing.assert_allclose(plan_from_duals(X, U, res), [[p, 0.5 - p], [0.5 - p, p]],
                               atol=1e-10)
    dense = sinkhorn_log(1 - np.eye(2), reg=reg, tol=1e-12)
    np.testing.assert_allclose(dense.plan, [[p, 0.5 - p], [0.5 - p, p]], atol=1e-10)


def test_dense_matches_pot(problem):
    _X, _U, C = problem
    res = sinkhorn_log(C, reg=0.02, tol=1e-12, max_iter=100_000)
    n, m = C.shape
    assert res.converged
    assert np.abs(res.plan - pot_plan(C, 0.02)).max() * n * m < 1e-6
    np.testing.assert_allclose(res.plan.sum(axis=1), 1 / n, rtol=1e-12)


@pytest.mark.parametrize("solver", ["lbfgs", "sinkhorn"])
@pytest.mark.parametrize("block_rows,cache_bytes", [(None, 2**30), (37, 0), (64, 50_000)])
def test_chunked_float64_matches_pot(problem, solver, block_rows, cache_bytes):
    X, U, C = problem
    n, m = C.shape
    res = sinkhorn_log_chunked(X, U, reg=0.02, tol=1e-11, max_iter=50_000, solver=solver,
                               block_rows=block_rows, cache_bytes=cache_bytes,
                               dtype=np.float64)
    assert res.converged and res.plan is None
    T = plan_from_duals(X, U, res)
    # max abs difference relative to the uniform plan entry 1/(NM)
    assert np.abs(T - pot_plan(C, 0.02)).max() * n * m < 1e-4
    np.testing.assert_allclose(T.sum(axis=1), 1 / n, rtol=1e-9)


def test_chunked_float32_matches_pot(problem):
    X, U, C = problem
    n, _ = C.shape
    res = sinkhorn_log_chunked(X, U, reg=0.02, tol=1e-6)
    T = plan_from_duals(X, U, res)
    Tp = pot_plan(C, 0.02)
    # float32 similarities: compare the per-image distributions N·T (entries in [0, 1])
    assert np.abs(T - Tp).max() * n < 1e-4
    assert res.info["dtype"] == "float32"


def test_lbfgs_needs_fewer_passes_than_sinkhorn(problem):
    X, U, _ = problem
    fast = sinkhorn_log_chunked(X, U, reg=0.02, tol=1e-8, dtype=np.float64)
    slow = sinkhorn_log_chunked(X, U, reg=0.02, tol=1e-8, dtype=np.float64, solver="sinkhorn")
    assert fast.converged and slow.converged
    assert fast.n_iter < slow.n_iter


def test_cached_and_streamed_blocks_give_identical_results(problem):
    X, U, _ = problem
    a = sinkhorn_log_chunked(X, U, block_rows=50, cache_bytes=2**30)
    b = sinkhorn_log_chunked(X, U, block_rows=50, cache_bytes=0)
    np.testing.assert_array_equal(a.log_v, b.log_v)
    assert a.info["cached_bytes"] > 0 and b.info["cached_bytes"] == 0
    assert b.info["block_computations"] == 4 * b.n_iter  # 4 blocks recomputed every pass


def test_max_iter_reports_not_converged(problem):
    X, U, _ = problem
    res = sinkhorn_log_chunked(X, U, reg=0.005, max_iter=3, tol=1e-12)
    assert not res.converged and res.n_iter == 3


def test_underflowing_kernel_uses_exact_fallback(monkeypatch):
    # column 1 is far from both images (gaps 2.0 and 1.8 >> 87 * reg): every float32
    # kernel entry of it underflows, yet it must receive half of the mass
    from kec.cluster._kernel import KernelBlocks

    calls = []
    original = KernelBlocks.exact_col_lse

    def spy(self, cols, alpha):
        calls.append(cols.tolist())
        return original(self, cols, alpha)

    monkeypatch.setattr(KernelBlocks, "exact_col_lse", spy)
    X = unit(np.array([[1.0, 0.0], [0.9, np.sqrt(1 - 0.81)]]))
    U = unit(np.array([[1.0, 0.0], [-1.0, 0.0]]))
    res = sinkhorn_log_chunked(X, U, reg=0.01, tol=1e-9)
    T = plan_from_duals(X, U, res)
    assert calls and calls[0] == [1]
    # 2x2 with uniform marginals: T = [[p, 1/2-p], [1/2-p, p]], p/(1/2-p) = e^{D/(2 reg)},
    # D = C12 + C21 - C11 - C22 = 2 + 0.1 - 0 - 1.9
    r = np.exp(0.2 / (2 * 0.01))
    p = 0.5 * r / (1 + r)
    np.testing.assert_allclose(T, [[p, 0.5 - p], [0.5 - p, p]], rtol=1e-3, atol=1e-12)


def test_semi_relaxed_matches_pot(problem):
    X, U, C = problem
    n, m = C.shape
    Tp = ot.unbalanced.sinkhorn_knopp_unbalanced(
        np.full(n, 1 / n), np.full(m, 1 / m), C, 0.02, (float("inf"), 0.5),
        numItermax=100_000, stopThr=1e-14)
    res = semi_relaxed(X, U, reg=0.02, rho=0.5, tol=1e-12, dtype=np.float64)
    T = plan_from_duals(X, U, res)
    assert np.abs(T - Tp).max() * n * m < 1e-4
    np.testing.assert_allclose(T.sum(axis=1), 1 / n, rtol=1e-9)


def test_semi_relaxed_interpolates_softmax_and_balanced(problem):
    X, U, _ = problem
    balanced = plan_from_duals(X, U, sinkhorn_log_chunked(X, U, tol=1e-7, dtype=np.float64))
    strong = plan_from_duals(X, U, semi_relaxed(X, U, rho=1e3, tol=1e-10, dtype=np.float64))
    weak = plan_from_duals(X, U, semi_relaxed(X, U, rho=1e-4, tol=1e-10, dtype=np.float64))
    logits = (X.astype(np.float64) @ U.T.astype(np.float64)) / 0.01
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True) * X.shape[0]
    assert np.abs(strong - balanced).max() < np.abs(weak - balanced).max()
    assert np.abs(weak - softmax).max() * X.shape[0] < 1e-2


def test_partial_matches_pot(problem):
    X, U, C = problem
    n, m = C.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Tp = ot.partial.entropic_partial_wasserstein(
            np.full(n, 1 / n), np.full(m, 1 / m), C, 0.02, m=0.7, numItermax=5000,
            stopThr=1e-300)
    res = partial(X, U, reg=0.02, mass=0.7, tol=1e-13, max_iter=5000, dtype=np.float64)
    T = plan_from_duals(X, U, res)
    assert np.abs(T - Tp).max() * n * m < 1e-4
    assert T.sum() == pytest.approx(0.7, rel=1e-9)
    assert res.info["constraint_violation"] < 1e-6


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 20), m=st.integers(1, 20), d=st.integers(2, 6),
       reg=st.floats(0.05, 1.0), seed=st.integers(0, 2**31 - 1), uniform=st.booleans())
def test_chunked_marginals_property(n, m, d, reg, seed, uniform):
    rng = np.random.default_rng(seed)
    X, U = random_unit(n, d, seed), random_unit(m, d, seed + 1)
    a = None if uniform else rng.uniform(0.1, 1.0, n)
    b = None if uniform else rng.uniform(0.1, 1.0, m)
    if not uniform:
        a, b = a / a.sum(), b / b.sum()
    res = sinkhorn_log_chunked(X, U, a, b, reg=reg, tol=1e-7, max_iter=5000,
                               block_rows=int(rng.integers(1, n + 1)), dtype=np.float64)
    T = plan_from_duals(X, U, res)
    a = np.full(n, 1 / n) if a is None else a
    b = np.full(m, 1 / m) if b is None else b
    assert res.converged
    np.testing.assert_allclose(T.sum(axis=1), a, rtol=1e-8, atol=1e-12)
    assert np.abs(T.sum(axis=0) - b).sum() <= 1e-7 * 1.0001
    assert (T >= 0).all()


@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 15), m=st.integers(2, 15), mass=st.floats(0.2, 1.0),
       rho=st.floats(0.05, 5.0), seed=st.integers(0, 2**31 - 1))
def test_relaxed_problems_respect_their_constraints(n, m, mass, rho, seed):
    X, U = random_unit(n, 4, seed), random_unit(m, 4, seed + 1)
    T = plan_from_duals(X, U, semi_relaxed(X, U, reg=0.1, rho=rho, tol=1e-10,
                                           dtype=np.float64))
    np.testing.assert_allclose(T.sum(axis=1), 1 / n, rtol=1e-8)
    res = partial(X, U, reg=0.1, mass=mass, tol=1e-11, max_iter=20_000, dtype=np.float64)
    T = plan_from_duals(X, U, res)
    assert T.sum() == pytest.approx(mass, rel=1e-8)
    assert (T.sum(axis=1) <= 1 / n + 1e-6).all()
    assert (T.sum(axis=0) <= 1 / m + 1e-6).all()


def test_solve_ot_dispatch(problem):
    X, U, _C = problem
    assert solve_ot(X, U).method == "sinkhorn"  # 18,000 entries: dense
    assert solve_ot(X, U, "chunked").method == "chunked"
    assert solve_ot(X, U, "semi_relaxed", rho=2.0).info["rho"] == 2.0
    assert solve_ot(X, U, "partial", mass=0.5).info["mass"] == 0.5
    with pytest.raises(ClusteringInputError, match="unknown OT method"):
        solve_ot(X, U, "emd")


def test_transport_features_formula(problem):
    X, U, _ = problem
    res = sinkhorn_log_chunked(X, U, tol=1e-8, dtype=np.float64)
    T = plan_from_duals(X, U, res)
    S = X.astype(np.float64) @ U.T.astype(np.float64)
    expected = unit((T * S) @ U.astype(np.float64))
    np.testing.assert_allclose(transport_features(X, U, res), expected, atol=1e-5)
    np.testing.assert_allclose(transport_features(X, U, T), expected, atol=1e-5)
    plain = unit(T @ U.astype(np.float64))
    np.testing.assert_allclose(transport_features(X, U, res, similarity_weighted=False),
                               plain, atol=1e-5)
    feats, res2 = solve_and_transport(X, U, "chunked", tol=1e-8, dtype=np.float64,
                                      block_rows=33)
    np.testing.assert_allclose(feats, transport_features(X, U, res2), atol=1e-5)
    feats_dense, _ = solve_and_transport(X, U, "sinkhorn", tol=1e-10)
    np.testing.assert_allclose(feats_dense, expected, atol=1e-4)


@pytest.mark.parametrize("bad,match", [
    (lambda X, U: (X[:, :5], U), "dimension mismatch"),
    (lambda X, U: (np.where(np.arange(X.shape[0])[:, None] == 3, np.nan, X), U), "NaN"),
    (lambda X, U: (X[0], U), "2-D"),
    (lambda X, U: (X[:0], U), "empty"),
])
def test_bad_features(problem, bad, match):
    X, U, _ = problem
    with pytest.raises(ClusteringInputError, match=match):
        sinkhorn_log_chunked(*bad(X, U))


def test_bad_parameters(problem):
    X, U, _C = problem
    with pytest.raises(ClusteringInputError, match="reg"):
        sinkhorn_log_chunked(X, U, reg=0)
    with pytest.raises(ClusteringInputError, match="equal masses"):
        sinkhorn_log_chunked(X, U, a=np.full(X.shape[0], 1.0))
    with pytest.raises(ClusteringInputError, match="> 0"):
        sinkhorn_log_chunked(X, U, b=np.zeros(U.shape[0]))
    with pytest.raises(ClusteringInputError, match="exceeds"):
        partial(X, U, mass=1.5)
    with pytest.raises(ClusteringInputError, match="solver"):
        sinkhorn_log_chunked(X, U, solver="newton")
    with pytest.raises(ClusteringInputError, match="NaN"):
        sinkhorn_log(np.full((2, 2), np.nan))
    with pytest.raises(ClusteringInputError, match="plan has shape"):
        transport_features(X, U, np.ones((2, 2)))


def test_potentials_spanning_more_than_float32_range():
    # one text is far from every image: its column potential ends far above the others,
    # so per-row weights span > 1e38; rows are grouped so none underflows
    X = unit(np.array([[1.0, 0.0, 0.1], [0.95, 0.3, 0.0], [0.9, -0.4, 0.1], [1, 0.2, 0.2]]))
    U = unit(np.array([[1.0, 0.0, 0.0], [0.9, 0.4, 0.0], [-1.0, 0.0, 0.05], [0.9, -0.3, 0.3]]))
    res = sinkhorn_log_chunked(X, U, reg=0.004, tol=2e-5, max_iter=20_000)
    T = plan_from_duals(X, U, res)
    assert res.converged  # float32 kernel entries S/reg ~ 250: precision floor ~ 1e-6
    assert np.ptp(res.log_v) > 300
    np.testing.assert_allclose(T.sum(axis=0), 0.25, atol=2e-5)
    ref = sinkhorn_log(1 - X.astype(np.float64) @ U.T.astype(np.float64), reg=0.004,
                       tol=1e-12, max_iter=200_000)
    assert np.abs(T - ref.plan).max() * 4 < 1e-4
