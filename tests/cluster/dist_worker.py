"""Run by ``python -m torch.distributed.run --nproc-per-node R`` in
tests/cluster/test_distributed.py: every rank clusters its rows of the same small problem
inside :func:`kec.cluster.distributed.sharded`; rank 0 writes what the ranks computed
(labels gathered in row order, OT potentials) to an ``.npz`` file.

Usage: ``dist_worker.py OUT.npz``. Also importable: :func:`problem` and :func:`compute`
give the single-process reference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kec.cluster.distributed import RowGroup, row_range
from kec.cluster.methods import run_method
from kec.cluster.ot import solve_ot
from tests.cluster.helpers import random_unit, toy_world, unit

NAMES = ["apple", "boat", "cloud", "drum", "eagle"]
METHODS = ("kmeans", "cae", "kec", "kec+cae")
OT_METHODS = ("chunked", "semi_relaxed")


def problem() -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    """300 items in 5 clusters (d = 16), nouns, captions and aligned toy knowledge."""
    X, _, nouns, captions, kf = toy_world(NAMES, 60, spread=0.6, seed=7)
    return X, nouns, captions, kf


def compute(rows: RowGroup) -> dict[str, np.ndarray]:
    """Labels of every method and OT potentials, for this rank's rows (gathered)."""
    X, nouns, captions, kf = problem()
    start, stop = row_range(X.shape[0], rows.rank, rows.world_size)
    Xr = X[start:stop]
    out: dict[str, np.ndarray] = {}
    for name in METHODS:
        extra = {"ot_method": "chunked"} if name in ("cae", "kec+cae") else {}
        res = run_method(name, Xr, 5, nouns=nouns, captions=captions, knowledge=kf,
                         random_state=0, **extra)
        out[f"labels:{name}"] = rows.gather(res.labels)
        if res.clusters is not None:
            out[f"sizes:{name}"] = np.array([c["size"] for c in res.clusters])
            out[f"names:{name}"] = np.array([str(c["name"]) for c in res.clusters])
            out[f"guard:{name}"] = np.array(json.dumps(res.info.get("guard"), sort_keys=True))
    import torch  # the torch path of k-means (a CPU tensor stays torch)

    from kec.cluster.kmeans import SphericalKMeans

    km = SphericalKMeans(5, random_state=0, n_init=3).fit(torch.as_tensor(Xr))
    out["labels:kmeans-torch"] = rows.gather(km.labels_)
    out["objective:kmeans-torch"] = np.array(km.objective_)
    # the guard's spread of k-means runs on structureless rows: NMI over every rank's rows
    from kec.cluster.guard import data_spread

    noise = random_unit(X.shape[0], 16, seed=3)[start:stop]
    p_x = SphericalKMeans(5, random_state=0, n_init=1).fit(noise).labels_
    out["data_spread"] = np.array(data_spread(noise, p_x, 5, n_runs=2, random_state=1,
                                              n_init=1))
    # the guard's nuisance mode: residual means, its k-means and the fused Lloyd
    from kec.cluster.guard import guarded_cluster
    from tests.cluster.test_guard import _nuisance_blobs

    Xn, y, _, classes = _nuisance_blobs()
    c = unit(classes[y] + 0.8 * np.random.default_rng(1).standard_normal((y.size, 48)) / 7)
    a, b = row_range(Xn.shape[0], rows.rank, rows.world_size)
    labels, _, dec = guarded_cluster(Xn[a:b], c[a:b], None, 4)
    out["labels:nuisance"] = rows.gather(labels)
    out["guard:nuisance"] = np.array(json.dumps(dec.info, sort_keys=True))
    for method in OT_METHODS:
        res = solve_ot(Xr, nouns, method, tol=1e-7, max_iter=5000, dtype="float64")
        out[f"log_u:{method}"] = rows.gather(res.log_u)
        out[f"log_v:{method}"] = np.asarray(res.log_v)
        out[f"error:{method}"] = np.array(res.marginal_error)
    return out


def main(path: str) -> None:
    from kec.cluster.distributed import init_from_env, sharded, shutdown

    group = init_from_env()
    try:
        with sharded(group) as rows:
            out = compute(rows)
            out["world_size"] = np.array(rows.world_size)
        if rows.rank == 0:
            np.savez(path, **out)
    finally:
        shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
