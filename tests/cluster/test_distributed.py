"""Row-sharded clustering on torch.distributed (kec.cluster.distributed).

The end-to-end tests start ``python -m torch.distributed.run --nproc-per-node 2`` (gloo,
CPU) on tests/cluster/dist_worker.py and compare with one process; the unit tests use a
one-process gloo group in this interpreter.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kec.cluster import ClusteringInputError
from kec.cluster.backend import get_backend
from kec.cluster.distributed import (
    LOCAL,
    RowGroup,
    block_of,
    current_rows,
    row_range,
    sharded,
    torchrun_env_missing,
)
from kec.cluster.ot import OTResult, plan_from_duals, solve_ot
from tests.cluster import dist_worker

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
ROOT = Path(__file__).resolve().parents[2]


def _gloo() -> bool:
    return dist.is_available() and dist.is_gloo_available()


needs_gloo = pytest.mark.skipif(not _gloo(), reason="torch.distributed with gloo is "
                                                    "not available")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Pretend(RowGroup):
    """Says it is one of two ranks, computes as one: for the refusal paths only."""

    world_size = 2


# --------------------------------------------------------------------------- one process
def test_local_is_the_identity():
    x = np.arange(6.0).reshape(3, 2)
    assert current_rows() is LOCAL and not LOCAL.distributed
    assert LOCAL.sum(x) is x and LOCAL.gather(x) is x and LOCAL.total(3) == 3
    assert LOCAL.offset(3) == 0
    np.testing.assert_array_equal(LOCAL.take(x, np.array([2, 0])), x[[2, 0]])
    assert get_backend(x).reduce_sum(x) is x


@given(st.integers(1, 10_000), st.integers(1, 16))
def test_row_ranges_cover_the_rows_once_in_order(n, world):
    ranges = [row_range(n, r, world) for r in range(world)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    sizes = [b - a for a, b in ranges]
    assert max(sizes) - min(sizes) <= 1


class _TwoRanks(RowGroup):
    def __init__(self, rank: int) -> None:
        self.rank, self.world_size = rank, 2


def test_each_rank_reads_only_its_block_of_a_sharded_set(tmp_path, monkeypatch):
    from kec.feature_shards import ShardedFeatureSet, save_feature_shards
    from kec.features import load_features

    X = np.arange(70, dtype=np.float32).reshape(35, 2)
    save_feature_shards(tmp_path / "s", X, ids=[str(i) for i in range(35)], kind="image",
                        encoder={"kind": "test"}, shard_rows=10)
    fs = load_features(tmp_path / "s")
    read: list[int] = []
    real = ShardedFeatureSet.shard_array
    monkeypatch.setattr(ShardedFeatureSet, "shard_array",
                        lambda self, i: read.append(i) or real(self, i))
    np.testing.assert_array_equal(block_of(fs, _TwoRanks(1)), X[17:35])
    assert sorted(set(read)) == [1, 2, 3]  # rows 17..34 live in shards 1, 2, 3
    np.testing.assert_array_equal(block_of(X, _TwoRanks(0)), X[:17])
    with pytest.raises(ClusteringInputError, match="at least one row"):
        block_of(X[:1], _TwoRanks(0))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.5, 1.0, -2.0, 3.25]), min_size=1, max_size=40),
       st.integers(1, 45))
def test_lowest_is_a_stable_argsort(values, m):
    v = np.array(values)
    np.testing.assert_array_equal(LOCAL.lowest(v, m), np.argsort(v, kind="stable")[:m])


@pytest.fixture
def one_rank_group(tmp_path):
    if not _gloo():
        pytest.skip("torch.distributed with gloo is not available")
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this interpreter")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_a_one_rank_group_reduces_to_the_same_values(one_rank_group):
    x = np.random.default_rng(0).standard_normal((5, 3))
    with sharded() as rows:
        assert current_rows() is rows and rows.world_size == 1 and not rows.distributed
        s = rows.sum(x)
        assert s is not x and s.dtype == x.dtype
        np.testing.assert_array_equal(s, x)
        np.testing.assert_array_equal(rows.gather(x[:2]), x[:2])
        np.testing.assert_array_equal(rows.take(x, np.array([4, 1])), x[[4, 1]])
        t = torch.arange(4, dtype=torch.float32)
        out = get_backend(t).reduce_sum(t)
        assert isinstance(out, torch.Tensor) and torch.equal(out, t) and out is not t
        assert rows.sum(3) == 3 and isinstance(rows.sum(2.5), float)
        assert rows.max(np.int64(7)) == 7 and rows.total(5) == 5 and rows.offset(5) == 0
        assert rows.n_reductions >= 4 and rows.bytes_reduced > 0
    assert current_rows() is LOCAL


def test_ot_in_a_one_rank_group_matches_one_process(one_rank_group):
    X, nouns, _, _ = dist_worker.problem()
    ref = solve_ot(X, nouns, "chunked")
    with sharded():
        got = solve_ot(X, nouns, "chunked")
    np.testing.assert_allclose(got.log_v, ref.log_v, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["sinkhorn", "partial"])
def test_single_process_ot_methods_are_refused_when_rows_are_split(method):
    X, nouns, _, _ = dist_worker.problem()
    with sharded(_Pretend()), pytest.raises(ClusteringInputError, match="one process"):
        solve_ot(X, nouns, method)


def test_faiss_engine_is_refused_when_rows_are_split():
    from kec.cluster.kmeans import SphericalKMeans

    X, *_ = dist_worker.problem()
    with sharded(_Pretend()), pytest.raises(ClusteringInputError, match="one process"):
        SphericalKMeans(5, engine="faiss").fit(X)


def test_torchrun_variables_are_checked():
    assert torchrun_env_missing({}) == ["RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                        "MASTER_PORT"]
    full = dict.fromkeys(["RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"],
                         "0")
    assert torchrun_env_missing(full) == []


# --------------------------------------------------------------------------- two processes
def torchrun(script: Path, *args: str, nproc: int = 2, timeout: float = 120
             ) -> subprocess.CompletedProcess[str]:
    """``python -m torch.distributed.run --nproc-per-node nproc script args`` (gloo)."""
    env = {k: v for k, v in os.environ.items() if k not in
           ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
           "--master-addr=127.0.0.1", f"--master-port={_free_port()}", str(script), *args]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    if not _gloo():
        pytest.skip("torch.distributed with gloo is not available")
    out = tmp_path_factory.mktemp("dist") / "out.npz"
    proc = torchrun(Path(dist_worker.__file__), str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as f:
        got = {k: f[k] for k in f.files}
    return got, dist_worker.compute(LOCAL)


@needs_gloo
@pytest.mark.parametrize("method", [*dist_worker.METHODS, "kmeans-torch"])
def test_two_ranks_give_the_labels_of_one_process(two_ranks, method):
    got, ref = two_ranks
    assert int(got["world_size"]) == 2
    np.testing.assert_array_equal(got[f"labels:{method}"], ref[f"labels:{method}"])
    if f"names:{method}" in ref:  # knowledge methods: the same names and sizes
        np.testing.assert_array_equal(got[f"names:{method}"], ref[f"names:{method}"])
        np.testing.assert_array_equal(got[f"sizes:{method}"], ref[f"sizes:{method}"])
        assert str(got[f"guard:{method}"]) == str(ref[f"guard:{method}"])
    if method == "kmeans-torch":  # the objective is a mean over every rank's rows
        assert float(got["objective:kmeans-torch"]) == pytest.approx(
            float(ref["objective:kmeans-torch"]), rel=1e-6)


@needs_gloo
def test_two_ranks_take_the_guards_nuisance_path_as_one_process(two_ranks):
    got, ref = two_ranks
    assert json.loads(str(ref["guard:nuisance"]))["mode"] == "nuisance"
    assert str(got["guard:nuisance"]) == str(ref["guard:nuisance"])
    np.testing.assert_array_equal(got["labels:nuisance"], ref["labels:nuisance"])


@needs_gloo
def test_two_ranks_measure_the_guards_spread_over_all_rows(two_ranks):
    got, ref = two_ranks
    assert 0.0 < float(ref["data_spread"]) < 1.0  # the runs disagree on noise
    assert float(got["data_spread"]) == pytest.approx(float(ref["data_spread"]), abs=1e-12)


@needs_gloo
@pytest.mark.parametrize("method", dist_worker.OT_METHODS)
def test_two_ranks_give_the_plan_of_one_process(two_ranks, method):
    got, ref = two_ranks
    X, nouns, _, _ = dist_worker.problem()

    def plan(r):
        return plan_from_duals(X, nouns, OTResult(
            log_u=r[f"log_u:{method}"], log_v=r[f"log_v:{method}"], reg=0.01,
            method=method, n_iter=0, converged=True, marginal_error=0.0))

    P, Q = plan(got), plan(ref)
    assert float(ref[f"error:{method}"]) < 1e-6 and float(got[f"error:{method}"]) < 1e-6
    # the plan itself: within 1e-9 of its entries' total (1) in L1
    assert np.abs(P - Q).sum() < 1e-9
    np.testing.assert_allclose(got[f"log_v:{method}"], ref[f"log_v:{method}"], atol=1e-8)
