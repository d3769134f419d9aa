"""Row-sharded clustering on one machine: 1 process against 2 under ``torchrun`` (gloo).

Writes ``--n`` synthetic unit rows of dimension ``--dim`` (``--k`` blobs on the sphere)
as a sharded feature set, and ``--m`` text rows, then for each world size in
``--world`` starts ``python -m torch.distributed.run --nproc-per-node R`` on this file
(``--worker``). Every rank reads only its block of rows (memory-mapped shards), and runs,
inside :func:`kec.cluster.distributed.sharded`:

- ``kmeans``: :class:`kec.SphericalKMeans` (``--k`` clusters, ``n_init=1``, numpy);
- ``ot``: :func:`kec.cluster.ot.solve_and_transport` (balanced, ``chunked``, the
  semi-dual by L-BFGS) between the rows and the ``--m`` texts.

Recorded per stage and rank: wall seconds (after the group is up and the rows are read),
peak resident memory of the process (``ru_maxrss``, torch included) and the growth of
it during the stage, all-reduce calls and bytes, and the labels' agreement with the
1-process run. Each rank gets ``cores / R`` BLAS threads (``OMP_NUM_THREADS``), so 1 and
2 processes use the same cores. The machine is shared with other sessions: the
1-minute load average is recorded before and after each run.

    .venv/bin/python benchmarks/bench_distributed.py --n 100000 --dim 256 --k 100 --m 1000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_data(folder: Path, n: int, dim: int, k: int, m: int, spread: float = 1.0,
              seed: int = 0) -> None:
    """``n`` rows in ``k`` blobs (noise ``spread``) as a sharded set (shards of 16,384
    rows) and ``m`` texts."""
    from kec.feature_shards import ShardWriter
    from kec.features import save_features

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    enc = {"kind": "bench", "model": "blobs", "pretrained": None, "dim": dim}
    with ShardWriter(folder / "images", kind="image", encoder=enc,
                     shard_rows=16384) as writer:
        for start in range(0, n, 16384):
            rows = min(16384, n - start)
            y = rng.integers(k, size=rows)
            x = centres[y] + spread * rng.standard_normal((rows, dim)).astype(np.float32) \
                / np.sqrt(dim)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            writer.add(x, [f"i{start + i}" for i in range(rows)])
        writer.close()
    t = centres[rng.integers(k, size=m)] + rng.standard_normal((m, dim)).astype(
        np.float32) / np.sqrt(dim)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    save_features(folder / "texts.safetensors", t, ids=[f"t{j}" for j in range(m)],
                  kind="text", encoder=enc)


def worker(folder: Path, k: int, out: Path) -> None:
    """One rank: read its rows, run the stages, write ``rank-R.json`` (and labels)."""
    from kec.cluster.distributed import block_of, init_from_env, sharded, shutdown
    from kec.cluster.kmeans import SphericalKMeans
    from kec.cluster.ot import solve_and_transport
    from kec.features import load_features

    rows = init_from_env()
    record: dict[str, Any] = {"rank": rows.rank, "world_size": rows.world_size,
                              "rss_start_mib": round(_rss_mib(), 1)}
    try:
        with sharded(rows):
            t = time.perf_counter()
            X = block_of(load_features(folder / "images", kind="image"), rows)
            U = load_features(folder / "texts.safetensors").features
            record.update(rows_held=int(X.shape[0]), read_s=round(time.perf_counter() - t, 3),
                          rss_read_mib=round(_rss_mib(), 1))
            stages: dict[str, Any] = {}
            for name in ("kmeans", "ot"):
                rss0, red0, byt0 = _rss_mib(), rows.n_reductions, rows.bytes_reduced
                t = time.perf_counter()
                if name == "kmeans":
                    km = SphericalKMeans(k, n_init=1, random_state=0).fit(X)
                    labels, extra = km.labels_, {"n_iter": km.n_iter_,
                                                 "objective": km.objective_}
                else:
                    _, res = solve_and_transport(X, U, "chunked")
                    labels = None
                    extra = {"n_iter": res.n_iter, "marginal_error": res.marginal_error,
                             "converged": res.converged}
                wall = time.perf_counter() - t
                stages[name] = {"wall_s": round(wall, 3),
                                "rss_peak_mib": round(_rss_mib(), 1),
                                "rss_growth_mib": round(_rss_mib() - rss0, 1),
                                "all_reduces": rows.n_reductions - red0,
                                "bytes_all_reduced": rows.bytes_reduced - byt0, **extra}
                if labels is not None:
                    full = rows.gather(labels)
                    if rows.rank == 0:
                        np.save(out / f"labels-{rows.world_size}.npy", full)
            record["stages"] = stages
    finally:
        shutdown()
    (out / f"rank-{record['world_size']}-{record['rank']}.json").write_text(
        json.dumps(record, indent=1))


def _load1() -> float:
    return round(os.getloadavg()[0], 2)


def run(world: int, folder: Path, k: int, out: Path, cores: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(max(1, cores // world)),
               OPENBLAS_NUM_THREADS=str(max(1, cores // world)), CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={world}",
           "--master-addr=127.0.0.1", "--master-port=29561", __file__, "--worker",
           "--folder", str(folder), "--k", str(k), "--out", str(out)]
    before = _load1()
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    wall = time.perf_counter() - t
    ranks = [json.loads((out / f"rank-{world}-{r}.json").read_text()) for r in range(world)]
    return {"world_size": world, "command_wall_s": round(wall, 2), "load_before": before,
            "load_after": _load1(), "ranks": ranks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--m", type=int, default=1000)
    ap.add_argument("--spread", type=float, default=1.0, help="blob noise (default 1)")
    ap.add_argument("--world", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path, default=None, help="write the record here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.folder, args.k, args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        make_data(folder, args.n, args.dim, args.k, args.m, args.spread)
        data_s = round(time.perf_counter() - t, 1)
        runs = [run(w, folder, args.k, folder, args.cores) for w in args.world]
        labels = {w: np.load(folder / f"labels-{w}.npy") for w in args.world}
        base = labels[args.world[0]]
        from sklearn.metrics import adjusted_rand_score

        for r in runs:  # against the first world size's labels
            got = labels[r["world_size"]]
            r["kmeans_labels_equal_to_first"] = bool(np.array_equal(got, base))
            r["kmeans_labels_share_equal"] = round(float(np.mean(got == base)), 6)
            r["kmeans_ari_to_first"] = round(float(adjusted_rand_score(base, got)), 6)
        record = {"n": args.n, "dim": args.dim, "k": args.k, "m": args.m,
                  "spread": args.spread,
                  "cores": args.cores, "cpu_count": os.cpu_count(),
                  "data_s": data_s, "runs": runs}
    text = json.dumps(record, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
