"""SphericalKMeans: recovery, determinism, empty clusters, objective, errors, scikit-learn
compatibility, and the torch path (CPU torch here, CUDA where a GPU is present)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import check_estimator

from kec.cluster import ClusteringInputError, SphericalKMeans, cluster_accuracy
from kec.cluster import kmeans as km_mod
from kec.cluster._checks import MAX_ABS_FEATURE
from kec.cluster.kmeans import (
    _assign,
    _kmeans_plusplus,
    _kmeans_plusplus_indices,
    _lloyd,
    _update_centres,
    auto_n_init,
)
from kec.errors import KecError
from tests.cluster.helpers import blobs, random_unit, unit

HAS_CUDA = torch.cuda.is_available()


def test_recovers_separated_clusters():
    X, y, _ = blobs(30, 6, seed=3)
    km = SphericalKMeans(6, random_state=0).fit(X)
    assert cluster_accuracy(y, km.labels_) == 1.0
    assert km.cluster_centers_.shape == (6, 16)
    np.testing.assert_allclose(np.linalg.norm(km.cluster_centers_, axis=1), 1, rtol=1e-5)
    # each centre is the normalised mean of its members
    for c in range(6):
        np.testing.assert_allclose(km.cluster_centers_[c], unit(X[km.labels_ == c].mean(0)),
                                   atol=1e-5)
    assert km.objective_ == pytest.approx(float(np.mean(
        (X * km.cluster_centers_[km.labels_]).sum(1))), rel=1e-6)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    np.testing.assert_array_equal(km.fit_predict(X), km.labels_)


def test_converges_to_a_fixed_point_from_random_seeds():
    """With tol=0, fitting stops only when labels are stable: centres are the normalised
    means of their members and every point is with its most similar centre."""
    X, _, _ = blobs(40, 6, d=8, spread=1.0, seed=21)
    km = SphericalKMeans(6, n_init=1, init="random", tol=0.0, max_iter=500,
                         random_state=1).fit(X)
    assert 1 < km.n_iter_ < 500
    for c in np.unique(km.labels_):
        np.testing.assert_allclose(km.cluster_centers_[c], unit(X[km.labels_ == c].sum(0)),
                                   atol=1e-5)
    np.testing.assert_array_equal((X @ km.cluster_centers_.T).argmax(1), km.labels_)


def test_scale_invariant_and_deterministic():
    X, _, _ = blobs(20, 4, seed=5)
    a = SphericalKMeans(4, random_state=7).fit_predict(X)
    b = SphericalKMeans(4, random_state=7).fit_predict(X * 3.5)
    np.testing.assert_array_equal(a, b)


def test_hand_example_two_directions():
    X = unit(np.array([[1, 0.1], [1, -0.1], [0.1, 1], [-0.1, 1]], dtype=float))
    km = SphericalKMeans(2, init=np.array([[1.0, 0.0], [0.0, 1.0]])).fit(X)
    np.testing.assert_array_equal(km.labels_, [0, 0, 1, 1])
    np.testing.assert_allclose(km.cluster_centers_, [[1, 0], [0, 1]], atol=1e-6)
    assert km.n_init_ == 1
    # 1 - cos near 0.005 from float32 cosines: relative error ~1e-5
    assert km.inertia_ == pytest.approx(4 * (1 - 1 / np.sqrt(1.01)), rel=1e-4)


def test_empty_cluster_takes_the_farthest_point():
    X = unit(np.array([[1, 0], [0.99, 0.14], [0, 1], [-0.6, -0.8]], dtype=float))
    labels = np.array([0, 0, 0, 0])
    best = (X * X[0]).sum(axis=1)
    C, n_empty = _update_centres(X, labels, best, 2)
    assert n_empty == 1
    np.testing.assert_allclose(C[1], X[3], atol=1e-6)  # lowest similarity to its centre
    # through fit: two identical seeds leave one cluster empty at first
    km = SphericalKMeans(3, init=np.array([[1.0, 0], [1.0, 0], [0, 1.0]])).fit(X)
    assert len(np.unique(km.labels_)) == 3
    assert km.n_empty_reassigned_ >= 1


def test_k_equals_n_and_k_one():
    X = random_unit(7, 5, seed=1)
    assert sorted(SphericalKMeans(7, random_state=0).fit_predict(X)) == list(range(7))
    assert set(SphericalKMeans(1, random_state=0).fit_predict(X)) == {0}


def test_better_than_or_equal_to_random_seeding_objective():
    X, _, _ = blobs(25, 8, spread=0.6, seed=2)
    pp = SphericalKMeans(8, n_init=5, random_state=0).fit(X)
    rnd = SphericalKMeans(8, n_init=1, init="random", random_state=0).fit(X)
    assert pp.objective_ >= rnd.objective_ - 1e-6


def test_init_size_subsample_still_recovers():
    X, y, _ = blobs(30, 5, seed=4)
    km = SphericalKMeans(5, init_size=20, random_state=0).fit(X)
    assert cluster_accuracy(y, km.labels_) == 1.0


def test_auto_n_init():
    assert auto_n_init(10_000, 10, 512) == 10
    assert auto_n_init(50_000, 100, 512) == 3
    assert auto_n_init(50_000, 1000, 512) == 1
    assert auto_n_init(50_000, 1000, 512, "cuda") == 10
    assert auto_n_init(1_281_167, 4_267, 512, "cuda") == 1


@pytest.mark.parametrize("k,match", [(0, ">= 1"), (-2, ">= 1"), (11, "larger than"),
                                     (2.5, "integer"), (True, "integer")])
def test_bad_n_clusters(k, match):
    with pytest.raises(ClusteringInputError, match=match):
        SphericalKMeans(k).fit(random_unit(10, 3))


def test_bad_features():
    X = random_unit(10, 3)
    X[4, 1] = np.nan
    with pytest.raises(ClusteringInputError, match="NaN"):
        SphericalKMeans(2).fit(X)
    X[4] = np.inf
    with pytest.raises(ClusteringInputError, match="NaN or infinite"):
        SphericalKMeans(2).fit(X)
    with pytest.raises(ClusteringInputError, match="2D array"):
        SphericalKMeans(2).fit(np.ones(5))
    with pytest.raises(ClusteringInputError, match="zero"):
        SphericalKMeans(2).fit(np.zeros((4, 3)))
    with pytest.raises(TypeError, match="parse data"):
        from scipy import sparse

        SphericalKMeans(2).fit(sparse.random(10, 3, density=0.5, format="csr"))


@pytest.mark.parametrize("bad", [
    np.array([[True, False], [False, True], [True, True]]),
    np.array([["1.0", "0.0"], ["0.0", "1.0"], ["1", "1"]]),
    np.array([["1.0", 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=object),
    np.array([[True, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=object),
    [["1.0", "0.0"], ["0.0", "1.0"], ["1", "1"]],
])
def test_bool_and_string_features_are_refused_as_by_the_estimators(bad):
    # issue 17.8: scikit-learn's check would convert them to floats
    from kec.cluster._checks import as_features

    with pytest.raises(ClusteringInputError, match="must be real numbers") as km:
        SphericalKMeans(2).fit(bad)
    with pytest.raises(ClusteringInputError, match="must be real numbers") as shared:
        as_features(bad)
    assert str(km.value) == str(shared.value)
    km_fit = SphericalKMeans(2, random_state=0).fit(random_unit(6, 2))
    with pytest.raises(ClusteringInputError, match="must be real numbers"):
        km_fit.predict(bad)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True])
def test_a_bad_random_state_is_refused_naming_it(seed):
    # issue 17 item 2: numpy raised "expected non-negative integer" from default_rng
    with pytest.raises(ClusteringInputError, match=r"random_state must be .*got"):
        SphericalKMeans(2, random_state=seed).fit(random_unit(6, 2))


def test_object_arrays_of_numbers_are_read():
    # scikit-learn's convention (check_dtype_object): numbers stored as objects are numbers
    X = random_unit(6, 2)
    km = SphericalKMeans(2, random_state=0).fit(X.astype(object))
    np.testing.assert_array_equal(km.labels_, SphericalKMeans(2, random_state=0).fit_predict(X))


def test_ragged_rows_are_refused_in_one_line():
    with pytest.raises(ClusteringInputError):
        SphericalKMeans(2).fit([[1.0, 0.0], [0.5]])


def test_zero_rows_join_cluster_zero_with_a_warning():
    X, _, _ = blobs(10, 3, seed=8)
    Xz = np.vstack([X[:5], np.zeros((2, X.shape[1]), np.float32), X[5:]])
    with pytest.warns(UserWarning, match="2 row\\(s\\) are zero"):
        km = SphericalKMeans(3, random_state=0).fit(Xz)
    assert km.labels_[5] == km.labels_[6] == 0
    ref = SphericalKMeans(3, random_state=0).fit(X)
    np.testing.assert_array_equal(np.delete(km.labels_, [5, 6]), ref.labels_)
    # zeros count as cosine 0 in the mean
    assert km.objective_ == pytest.approx(ref.objective_ * 30 / 32, rel=1e-6)
    np.testing.assert_array_equal(km.predict(np.zeros((1, X.shape[1]))), [0])


def test_huge_finite_values_are_refused_or_clustered():
    X, y, _ = blobs(10, 3, seed=9)
    km = SphericalKMeans(3, random_state=0).fit(X * np.float32(MAX_ABS_FEATURE))
    assert np.isfinite(km.cluster_centers_).all()
    assert cluster_accuracy(y, km.labels_) == 1.0
    for big in (X.astype(np.float64) * 1e300, np.full((6, 4), 3e38, dtype=np.float32)):
        with pytest.raises(ClusteringInputError, match="beyond"):
            SphericalKMeans(2, random_state=0).fit(big)
        with pytest.raises(ClusteringInputError, match="beyond"):
            km.predict(big[:, :16] if big.shape[1] >= 16 else np.resize(big, (6, 16)))


def test_bad_parameters_and_predict_errors():
    X = random_unit(10, 3)
    with pytest.raises(ClusteringInputError, match="init"):
        SphericalKMeans(2, init="kmeans||").fit(X)
    with pytest.raises(ClusteringInputError, match="shape"):
        SphericalKMeans(2, init=np.ones((3, 3))).fit(X)
    with pytest.raises(ClusteringInputError, match="n_init"):
        SphericalKMeans(2, n_init=0).fit(X)
    with pytest.raises(ClusteringInputError, match="max_iter"):
        SphericalKMeans(2, max_iter=0).fit(X)
    with pytest.raises(ClusteringInputError, match="tol"):
        SphericalKMeans(2, tol=-1.0).fit(X)
    with pytest.raises(ClusteringInputError, match="init_size"):
        SphericalKMeans(2, init_size=0).fit(X)
    with pytest.raises(ClusteringInputError, match="engine"):
        SphericalKMeans(2, engine="sklearn").fit(X)
    with pytest.raises(ClusteringInputError, match="device"):
        SphericalKMeans(2, device="tpu").fit(X)
    with pytest.raises(ClusteringInputError, match="n_samples=1"):
        SphericalKMeans(2).fit(X[:1])
    with pytest.raises(NotFittedError, match="not fitted"):
        SphericalKMeans(2).predict(X)
    with pytest.raises(KecError, match="not fitted"):
        SphericalKMeans(2).predict(X)
    km = SphericalKMeans(2, random_state=0).fit(X)
    with pytest.raises(ClusteringInputError, match="X has 5 features, but SphericalKMeans is "
                                                   "expecting 3"):
        km.predict(random_unit(4, 5))
    assert km.set_params(n_clusters=3).get_params()["n_clusters"] == 3


@pytest.mark.skipif(HAS_CUDA, reason="checks the error without a GPU")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ClusteringInputError, match="CUDA"):
        SphericalKMeans(2, device="cuda").fit(random_unit(10, 3))
    assert SphericalKMeans(2, device="auto", random_state=0).fit(random_unit(10, 3)).device_ \
        == "cpu"


# --------------------------------------------------------------------------- scikit-learn
def test_check_estimator_passes():
    """The whole scikit-learn estimator suite, no expected failures."""
    check_estimator(SphericalKMeans())


def test_clone_keeps_params_and_refits_identically():
    X, _, _ = blobs(15, 3, seed=1)
    est = SphericalKMeans(3, n_init=2, max_iter=7, init_size=30, random_state=4, tol=0.0)
    twin = clone(est)
    assert twin.get_params() == est.get_params() and not hasattr(twin, "labels_")
    np.testing.assert_array_equal(twin.fit_predict(X), est.fit_predict(X))


# --------------------------------------------------------------------------- laws
@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 40), d=st.integers(2, 6), data=st.data())
def test_fit_laws(n, d, data):
    """Labels are the argmax of the returned centres, centres are unit, objective is the
    mean cosine, and Lloyd never lowers the objective below its seeds'."""
    k = data.draw(st.integers(1, n))
    seed = data.draw(st.integers(0, 2**16))
    X = random_unit(n, d, seed=seed)
    km = SphericalKMeans(k, n_init=1, random_state=seed).fit(X)
    assert km.labels_.min() >= 0 and km.labels_.max() < k
    np.testing.assert_allclose(np.linalg.norm(km.cluster_centers_, axis=1), 1, rtol=1e-5)
    sims = X @ km.cluster_centers_.T
    np.testing.assert_allclose(sims[np.arange(n), km.labels_], sims.max(axis=1), atol=1e-6)
    assert km.objective_ == pytest.approx(float(sims.max(axis=1).mean()), abs=1e-5)
    seeds = _kmeans_plusplus(X, k, np.random.default_rng(seed))
    from_seeds = SphericalKMeans(k, init=seeds).fit(X)
    assert from_seeds.objective_ >= float((X @ seeds.T).max(axis=1).mean()) - 1e-5


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), iters=st.integers(1, 6))
def test_lloyd_objective_never_decreases(seed, iters):
    X, _, _ = blobs(8, 5, spread=0.9, seed=seed % 50)
    C0 = X[np.random.default_rng(seed).choice(len(X), 5, replace=False)]
    a = _lloyd(X, C0, iters, 0.0)[2]
    b = _lloyd(X, C0, iters + 1, 0.0)[2]
    assert b >= a - 1e-6


# --------------------------------------------------------------------------- torch path
def test_torch_cpu_matches_numpy_on_separable_data():
    X, _, _ = blobs(40, 6, d=24, seed=11)
    a = SphericalKMeans(6, n_init=3, random_state=5).fit(X)
    b = SphericalKMeans(6, n_init=3, random_state=5).fit(torch.from_numpy(X))
    assert b.device_ == "cpu" and isinstance(b.labels_, np.ndarray)
    assert cluster_accuracy(a.labels_, b.labels_) == 1.0  # same partition
    assert b.objective_ == pytest.approx(a.objective_, abs=1e-5)
    np.testing.assert_array_equal(b.predict(torch.from_numpy(X)), b.labels_)
    np.testing.assert_array_equal(b.predict(X), b.labels_)


def test_torch_cpu_matches_numpy_on_overlapping_data():
    X, _, _ = blobs(60, 10, d=32, spread=1.2, seed=12)
    a = SphericalKMeans(10, n_init=2, random_state=3).fit(X)
    b = SphericalKMeans(10, n_init=2, random_state=3).fit(torch.from_numpy(X))
    assert b.objective_ == pytest.approx(a.objective_, rel=1e-3)


def test_torch_seeding_and_update_agree_with_numpy():
    X = random_unit(300, 8, seed=2)
    Xt = torch.from_numpy(X)
    Cn = _kmeans_plusplus(X, 12, np.random.default_rng(0))
    Ct = _kmeans_plusplus(Xt, 12, np.random.default_rng(0))
    np.testing.assert_allclose(Ct.numpy(), Cn, atol=1e-6)  # the same 12 points
    ln, bn = _assign(X, Cn)
    lt, bt = _assign(Xt, Ct)
    np.testing.assert_array_equal(lt.numpy(), ln)
    np.testing.assert_allclose(bt.numpy(), bn, atol=1e-6)
    # an empty cluster on both paths takes the least similar point
    labels = np.zeros(300, dtype=np.int64)
    Cn2, en = _update_centres(X, labels, bn, 2)
    Ct2, et = _update_centres(Xt, torch.from_numpy(labels), bt, 2)
    assert en == et == 1
    np.testing.assert_allclose(Ct2.numpy(), Cn2, atol=1e-5)
    np.testing.assert_allclose(Cn2[1], X[np.argmin(bn)], atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_blocked_assignment_equals_one_block(backend):
    X = random_unit(257, 16, seed=3)
    C = random_unit(9, 16, seed=4)
    if backend == "torch":
        X, C = torch.from_numpy(X), torch.from_numpy(C)
    whole = _assign(X, C, block_bytes=1 << 30)
    blocked = _assign(X, C, block_bytes=4 * 9 * 10)  # 10 rows per block
    for w, b in zip(whole, blocked):
        np.testing.assert_array_equal(np.asarray(w), np.asarray(b))


def test_torch_zero_rows_and_huge_values():
    X, _, _ = blobs(10, 3, seed=5)
    Xt = torch.from_numpy(np.vstack([X, np.zeros((1, X.shape[1]), np.float32)]) * 1e15)
    with pytest.warns(UserWarning, match="zero"):
        km = SphericalKMeans(3, random_state=0).fit(Xt)
    assert km.labels_[-1] == 0 and np.isfinite(km.cluster_centers_).all()
    bad = Xt.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ClusteringInputError, match="NaN"):
        SphericalKMeans(3).fit(bad)
    with pytest.raises(ClusteringInputError, match="beyond"):
        SphericalKMeans(3).fit(Xt * 1e20)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_16_bit_assignment_on_torch_cpu(dtype):
    X, _, _ = blobs(40, 5, d=32, seed=13)
    ref = SphericalKMeans(5, n_init=2, random_state=2).fit(X)
    km = SphericalKMeans(5, n_init=2, random_state=2, matmul_dtype=dtype).fit(
        torch.from_numpy(X))
    assert cluster_accuracy(ref.labels_, km.labels_) == 1.0
    # the reported labels and objective come from a float32 assignment
    sims = X @ km.cluster_centers_.T
    np.testing.assert_array_equal(km.labels_, sims.argmax(axis=1))
    assert km.objective_ == pytest.approx(float(sims.max(axis=1).mean()), abs=1e-6)
    with pytest.raises(ClusteringInputError, match="needs torch"):
        SphericalKMeans(5, matmul_dtype=dtype).fit(X)
    with pytest.raises(ClusteringInputError, match="matmul_dtype"):
        SphericalKMeans(5, matmul_dtype="int8").fit(X)


def test_16_bit_products_are_summed_in_float32():
    X = torch.from_numpy(random_unit(50, 300, seed=1))
    C = torch.from_numpy(random_unit(4, 300, seed=2))
    _, best = _assign(X, C, XL=X.to(torch.bfloat16))
    exact = (X.to(torch.bfloat16).float() @ C.to(torch.bfloat16).float().T).max(dim=1)
    assert best.dtype == torch.float32
    torch.testing.assert_close(best, exact.values, rtol=0, atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_seeding_with_coinciding_points_gives_distinct_seeds(backend):
    X = np.repeat(random_unit(3, 4, seed=6), 5, axis=0)  # 3 directions, 5 copies each
    Xb = torch.from_numpy(X) if backend == "torch" else X
    idx = _kmeans_plusplus_indices(Xb, 6, np.random.default_rng(0))
    assert len(set(idx.tolist())) == 6  # distinct points, though only 3 distinct values
    assert len({tuple(np.round(c, 5)) for c in X[idx]}) == 3  # every direction is seeded
    km = SphericalKMeans(6, n_init=1, random_state=0).fit(Xb)
    assert km.labels_.max() < 6 and np.isfinite(km.cluster_centers_).all()


def test_module_does_not_import_torch_for_numpy_fits():
    import subprocess
    import sys

    code = ("import sys; import numpy as np; from kec.cluster.kmeans import SphericalKMeans;"
            "SphericalKMeans(2, random_state=0).fit(np.eye(4) + 0.1);"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_cuda_matches_numpy():
    X, _, _ = blobs(200, 10, d=64, seed=6)
    a = SphericalKMeans(10, n_init=2, random_state=1).fit(X)
    b = SphericalKMeans(10, n_init=2, random_state=1, device="cuda").fit(X)
    assert b.device_.startswith("cuda")
    assert cluster_accuracy(a.labels_, b.labels_) == 1.0
    assert b.objective_ == pytest.approx(a.objective_, abs=1e-4)
    c = SphericalKMeans(10, n_init=2, random_state=1, device="cuda",
                        matmul_dtype="bfloat16").fit(torch.from_numpy(X).cuda())
    assert cluster_accuracy(a.labels_, c.labels_) == 1.0
    assert c.objective_ == pytest.approx(a.objective_, abs=1e-4)
    np.testing.assert_array_equal(c.predict(X), c.labels_)


def test_engine_faiss_when_installed():
    pytest.importorskip("faiss")
    X, y, _ = blobs(30, 4, d=16, seed=7)
    km = SphericalKMeans(4, n_init=3, max_iter=10, engine="faiss", random_state=0).fit(X)
    assert cluster_accuracy(y, km.labels_) == 1.0
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    assert km.n_iter_ == 10 and km.n_init_ == 3


def test_engine_faiss_missing_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("no faiss")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(KecError, match="kec\\[faiss\\]"):
        SphericalKMeans(2, engine="faiss").fit(random_unit(10, 3))
    assert km_mod.ENGINES == ("kec", "faiss")


# --------------------------------------------------------------------------- issue 17.11
def _plain_lloyd(X, C0, iters, tol=0.0):
    with pytest.MonkeyPatch.context() as m:
        m.setattr(km_mod, "BOUND_MAX_BYTES", 0)  # every row assigned at every iteration
        return _lloyd(X, C0, iters, tol)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(2, 25), dup=st.booleans())
def test_bounded_lloyd_equals_full_assignment(seed, k, dup):
    """Rows skipped by the bounds keep the label a full assignment gives them."""
    X, _, _ = blobs(40, 8, d=16, seed=seed % 1000)
    C0 = _kmeans_plusplus(X, k, np.random.default_rng(seed))
    if dup:  # two identical seeds: one cluster starts empty
        C0[1] = C0[0]
    fast = _lloyd(X, C0, 30, 0.0)
    slow = _plain_lloyd(X, C0, 30)
    np.testing.assert_array_equal(fast[1], slow[1])
    np.testing.assert_allclose(fast[0], slow[0], atol=1e-5)
    assert fast[2] == pytest.approx(slow[2], abs=1e-6)
    assert fast[3:] == slow[3:]
    # and the labels are the argmax over the returned centres
    np.testing.assert_array_equal(fast[1], (X @ fast[0].T).argmax(axis=1))


def test_bounded_lloyd_skips_rows(monkeypatch):
    X = random_unit(3000, 16, seed=2)  # no cluster structure: many Lloyd iterations
    C0 = _kmeans_plusplus(X, 20, np.random.default_rng(1))
    rows = []
    original = km_mod._top2_rows

    def spy(X_, C_, idx):
        rows.append(X_.shape[0] if idx is None else idx.size)
        return original(X_, C_, idx)

    monkeypatch.setattr(km_mod, "_top2_rows", spy)
    _, _, _, n_iter, _ = _lloyd(X, C0, 50, 0.0)
    assert n_iter >= 5 and len(rows) == n_iter + 1
    assert sum(rows) < 0.7 * X.shape[0] * len(rows)  # most later rows skipped
    assert _lloyd(X, C0, 50, 0.0)[2] == pytest.approx(_plain_lloyd(X, C0, 50)[2], abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(sims=st.lists(st.floats(-1.0, 1.0, width=32), min_size=1, max_size=50))
def test_float32_angle_bounds_stay_on_the_safe_side(sims):
    """Padded float32 arccos brackets the exact angle, as the bounds in Lloyd need."""
    s = np.array(sims, dtype=np.float32)
    exact = np.arccos(s.astype(np.float64))
    assert np.all(km_mod._angles(s, km_mod.ANGLE_PAD).astype(np.float64) >= exact)
    assert np.all(km_mod._angles(s, -km_mod.ANGLE_PAD).astype(np.float64) <= exact)


def test_top2_rows_in_small_blocks_matches_one_product(monkeypatch):
    """Rows gathered block by block into the reused buffer give the product's answers."""
    X = random_unit(50, 8, seed=4)
    C = random_unit(12, 8, seed=5)
    rows = np.array([3, 7, 8, 20, 21, 22, 40, 49, 0])
    monkeypatch.setattr(km_mod, "TOP2_BLOCK_ROWS", 4)  # 3 blocks, the last one short
    lab, best, upper = km_mod._top2_rows(X, C, rows)
    S = X[rows] @ C.T
    np.testing.assert_array_equal(lab, S.argmax(axis=1))
    np.testing.assert_allclose(best, S.max(axis=1), rtol=1e-6)
    S[np.arange(rows.size), lab] = -np.inf
    G = -(-12 // km_mod.BOUND_GROUP)
    expected = np.stack([S[:, g::G].max(axis=1) for g in range(G)], axis=1)
    np.testing.assert_allclose(upper, expected, rtol=1e-6)


def test_restarts_seeded_together_get_their_own_seeds():
    X = random_unit(300, 8, seed=5)
    batch = km_mod._kmeans_plusplus_batch(X, 7, [np.random.default_rng(s) for s in (1, 2, 3)])
    alone = [_kmeans_plusplus_indices(X, 7, np.random.default_rng(s)) for s in (1, 2, 3)]
    for a, b in zip(batch, alone):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(batch[0], batch[1])
