"""The numpy/torch backend: same results on both, dtype and device handling, lazy torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kec.cluster import ClusteringInputError
from kec.cluster.backend import (
    NumpyBackend,
    TorchBackend,
    as_backend_array,
    dtype_name,
    get_backend,
    is_torch,
    resolve_device,
)

NX = NumpyBackend()
TX = TorchBackend()

finite = st.floats(-50, 50, allow_nan=False, width=64)
matrices = arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 7)), elements=finite)


def both(fn, x, **kw):
    a = fn(NX, x, **kw)
    b = fn(TX, torch.from_numpy(x), **kw)
    return np.asarray(a), TX.to_numpy(b) if is_torch(b) else np.asarray(b)


def test_importing_kec_cluster_does_not_import_torch():
    code = ("import sys, kec.cluster, kec.cluster.backend, kec.cluster.ot; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_get_backend_picks_by_type():
    x = np.zeros(3)
    assert isinstance(get_backend(x), NumpyBackend)
    assert isinstance(get_backend(x, None), NumpyBackend)
    assert isinstance(get_backend(x, torch.zeros(2)), TorchBackend)
    assert get_backend(torch.zeros(1)) is get_backend(torch.ones(2))


@settings(max_examples=40, deadline=None)
@given(matrices, st.sampled_from([None, 0, 1]), st.booleans())
def test_reductions_agree(x, axis, keepdims):
    for op in ("logsumexp", "max", "min", "sum", "mean", "norm"):
        a, b = both(lambda nx, v, op=op: getattr(nx, op)(v, axis=axis, keepdims=keepdims), x)
        assert a.shape == b.shape, op
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=op)


@settings(max_examples=30, deadline=None)
@given(matrices)
def test_logsumexp_is_log_of_sum_of_exp(x):
    # the law it must satisfy, on values where the naive formula is exact enough
    np.testing.assert_allclose(NX.logsumexp(x, axis=1), np.log(np.exp(x).sum(axis=1)),
                               rtol=1e-12, atol=1e-12)
    big = x + 1000.0  # the naive form overflows, the stabilised one shifts exactly
    np.testing.assert_allclose(NX.logsumexp(big, axis=1), NX.logsumexp(x, axis=1) + 1000.0,
                               rtol=1e-12)
    with np.errstate(over="ignore"):
        assert np.isinf(np.log(np.exp(big).sum(axis=1))).all()
    np.testing.assert_allclose(TX.to_numpy(TX.logsumexp(torch.from_numpy(big), axis=1)),
                               NX.logsumexp(x, axis=1) + 1000.0, rtol=1e-12)


def test_logsumexp_of_all_minus_inf_is_minus_inf():
    x = np.full((2, 3), -np.inf)
    assert np.all(NX.logsumexp(x, axis=1) == -np.inf)
    assert torch.all(TX.logsumexp(torch.from_numpy(x), axis=1) == -torch.inf)


@settings(max_examples=30, deadline=None)
@given(matrices)
def test_elementwise_agree(x):
    for fn in (lambda nx, v: nx.exp(v / 50), lambda nx, v: nx.log(nx.abs(v) + 1),
               lambda nx, v: nx.sqrt(nx.abs(v)), lambda nx, v: nx.clip(v, -1.0, 2.0),
               lambda nx, v: nx.maximum(v, 0.5), lambda nx, v: nx.minimum(v, 0.5),
               lambda nx, v: nx.where(v > 0, v, 0.0), lambda nx, v: nx.matmul(v, v.T),
               lambda nx, v: nx.concatenate([v, v], axis=1), lambda nx, v: nx.argmax(v, axis=1),
               lambda nx, v: nx.isfinite(v), lambda nx, v: nx.flatnonzero(v > 0)):
        a, b = both(fn, x)
        np.testing.assert_allclose(a, b, rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 9)),
              elements=finite, unique=True), st.integers(1, 12))
def test_topk_sorted_descending_and_matches_torch(x, k):
    vals, idx = NX.topk(x, k, axis=1)
    kk = min(k, x.shape[1])
    assert vals.shape == (x.shape[0], kk)
    np.testing.assert_array_equal(vals, -np.sort(-x, axis=1)[:, :kk])
    np.testing.assert_array_equal(np.take_along_axis(x, idx, axis=1), vals)
    tv, ti = TX.topk(torch.from_numpy(x), k, axis=1)
    np.testing.assert_array_equal(tv.numpy(), vals)
    np.testing.assert_array_equal(ti.numpy(), idx)


def test_creation_dtype_and_device():
    z = TX.zeros((2, 3), dtype="bfloat16")
    assert z.dtype == torch.bfloat16 and str(z.device) == "cpu"
    f = TX.full(4, 2.5, like=torch.zeros(1, dtype=torch.float32))
    assert f.dtype == torch.float32 and f.tolist() == [2.5] * 4
    assert NX.full(3, 1.5, dtype="float32").dtype == np.float32
    assert NX.zeros(2).dtype == np.float64
    with pytest.raises(ClusteringInputError, match="bfloat16"):
        NX.zeros(2, dtype="bfloat16")


def test_dtype_names():
    assert dtype_name("bf16") == "bfloat16"
    assert dtype_name(np.float32) == "float32"
    assert dtype_name(torch.float16) == "float16"
    with pytest.raises(ClusteringInputError):
        dtype_name("int8")


def test_round_trip_and_bfloat16_to_numpy():
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    t = TX.from_numpy(x, dtype="bfloat16")
    assert t.dtype == torch.bfloat16
    back = TX.to_numpy(t)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, x, atol=1e-2)  # bf16 keeps 8 bits of mantissa
    assert NX.asarray(t).dtype == np.float32
    np.testing.assert_array_equal(TX.to_numpy(TX.from_numpy(x)), x)


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("AUTO") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ClusteringInputError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ClusteringInputError, match="CUDA"):
            resolve_device("cuda")


def test_as_backend_array():
    x = np.ones((2, 2), dtype=np.float64)
    a = as_backend_array(x, "cpu", "float32")
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    t = as_backend_array(torch.from_numpy(x), "cpu", "float32")
    assert is_torch(t) and t.dtype == torch.float32
    assert isinstance(as_backend_array(x), np.ndarray)
    with pytest.raises(ClusteringInputError):
        NX.asarray(x, device="tpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_arrays():
    t = as_backend_array(np.ones(3), "cuda", "float32")
    assert t.is_cuda and get_backend(t).device(t).startswith("cuda")
