"""Spherical k-means: kec's SphericalKMeans against faiss-cpu, at equal restarts and iterations.

Each configuration runs in a fresh subprocess (so peak memory is its own), on the same
CLIP-like data (a shared mean direction, as CLIP image features have, plus cluster
structure and noise), interleaved over ``--repeats`` rounds; the median wall time and
the median process CPU time (all threads) of the fit are reported: on shared, loaded
cores the CPU time is the steadier of the two.
The objective is the spherical one, :math:`\\sum_i \\max_k x_i \\cdot c_k` (sum of the cosine
of every point to its closest returned centre), computed the same way for every engine.

faiss runs ``faiss.Kmeans(d, k, niter=iters, nredo=restarts, spherical=True,
max_points_per_centroid=max(256, n // k + 1))`` (random seeds; faiss 1.15 stops a restart
early once its objective no longer improves, ``early_stop_threshold=0``); kec runs
``SphericalKMeans(k, n_init=restarts, max_iter=iters, tol=0.0)``: greedy k-means++ seeds
from a subsample and at most ``iters`` Lloyd iterations per restart (it stops when no
label changes). Every process is pinned to ``--threads`` threads: OMP/OpenBLAS/MKL
environment variables before numpy starts, then threadpoolctl, ``faiss.omp_set_num_threads``
and ``torch.set_num_threads`` when torch is loaded.

Usage::

    python benchmarks/bench_kmeans.py                       # 10,000 x 512, K=100, 10 restarts
    python benchmarks/bench_kmeans.py --n 50000 --k 1000 --n-init 1
    python benchmarks/bench_kmeans.py --device cuda --n 1281167 --k 4267 --n-init 1 \\
        --engines kec                                       # on a GPU

``gpu_kmeans_check(n, d, k, device)`` times kec on a GPU at ImageNet scale for
``benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def clip_like(n: int, d: int, n_classes: int, seed: int = 0) -> np.ndarray:
    """Unit rows with a common direction (mean cosine ~0.45), classes and noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    mu = rng.standard_normal(d).astype(np.float32)
    mu /= np.linalg.norm(mu)
    y = rng.integers(n_classes, size=n)
    X = mu + 0.6 * centres[y]
    X += 0.9 * rng.standard_normal((n, d), dtype=np.float32) / np.sqrt(d)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32)


def spherical_objective(X: np.ndarray, C: np.ndarray, block: int = 65536) -> float:
    """:math:`\\sum_i \\max_k x_i \\cdot c_k / \\|c_k\\|` in float64."""
    C = C / np.linalg.norm(C, axis=1, keepdims=True)
    total = 0.0
    for s in range(0, X.shape[0], block):
        total += float((X[s : s + block] @ C.T).max(axis=1).sum(dtype=np.float64))
    return total


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pin_threads(threads: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def run_one(engine: str, args: argparse.Namespace) -> dict[str, object]:
    """One fit in this process: time, objective, memory."""
    _pin_threads(args.threads)
    X = clip_like(args.n, args.d, args.classes, seed=args.seed)
    rss0 = _rss_mib()
    if engine == "faiss":
        import faiss

        faiss.omp_set_num_threads(args.threads)
        t0, c0 = time.perf_counter(), time.process_time()
        km = faiss.Kmeans(args.d, args.k, niter=args.iters, nredo=args.n_init, spherical=True,
                          seed=args.seed + 1,
                          max_points_per_centroid=max(256, args.n // args.k + 1))
        km.train(X)
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        # iterations of the run faiss kept (its early stop); with restarts, -1 (unknown)
        C, iters = np.asarray(km.centroids), len(km.obj) if args.n_init == 1 else -1
    else:
        sys.path.insert(0, str(ROOT))
        from kec.cluster.kmeans import SphericalKMeans

        est = SphericalKMeans(args.k, n_init=args.n_init, max_iter=args.iters, tol=0.0,
                              random_state=args.seed, device=args.device,
                              engine="faiss" if engine == "kec-faiss" else "kec")
        if args.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats()
        t0, c0 = time.perf_counter(), time.process_time()
        est.fit(X)
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        C, iters = est.cluster_centers_, est.n_iter_
    out = {"engine": engine, "seconds": secs, "cpu_seconds": cpu,
           "objective": spherical_objective(X, C),
           "iterations_last_restart": iters, "peak_rss_mib": _rss_mib(),
           "fit_rss_increase_mib": _rss_mib() - rss0}
    if args.device.startswith("cuda") and engine == "kec":
        import torch

        out["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def gpu_kmeans_check(n: int = 1_281_167, d: int = 512, k: int = 4_267, device: str = "cuda",
                     n_init: int = 1, iters: int = 20, seed: int = 0,
                     matmul_dtype: str | None = None) -> dict[str, object]:
    """kec's spherical k-means on a GPU at ImageNet-1K train scale (for gpu_check.py).

    Returns time (also without the k-means++ seeding), objective and peak GPU memory.
    """
    import torch

    sys.path.insert(0, str(ROOT))
    from kec.cluster.kmeans import SphericalKMeans

    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    X_np = clip_like(n, d, max(k // 3, 2), seed=seed)
    X = torch.from_numpy(X_np).to(device)
    SphericalKMeans(8, n_init=1, max_iter=2, device=device).fit(X[:10_000])  # warm-up
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    est = SphericalKMeans(k, n_init=n_init, max_iter=iters, tol=0.0, random_state=seed,
                          device=device, matmul_dtype=matmul_dtype).fit(X)
    sync()
    secs = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    t0 = time.perf_counter()
    SphericalKMeans(k, n_init=1, max_iter=1, tol=0.0, random_state=seed, device=device,
                    init=est.cluster_centers_, matmul_dtype=matmul_dtype).fit(X)
    sync()
    per_iter = time.perf_counter() - t0
    t0 = time.perf_counter()  # what a caller with a numpy array and device="auto" sees
    SphericalKMeans(k, n_init=n_init, max_iter=iters, tol=0.0, random_state=seed,
                    device=device, matmul_dtype=matmul_dtype).fit(X_np if cuda else X)
    numpy_secs = time.perf_counter() - t0
    return {"n": n, "d": d, "k": k, "n_init": n_init, "max_iter": iters,
            "matmul_dtype": matmul_dtype or "float32", "seconds": round(secs, 3),
            "numpy_input_seconds": round(numpy_secs, 3),
            "init_plus_one_iteration_seconds": round(per_iter, 3),
            "iterations": est.n_iter_, "mean_cosine": round(est.objective_, 5),
            "peak_gpu_gib": round(peak, 2),
            "device": torch.cuda.get_device_name() if cuda else "cpu"}


def gpu_agreement(device: str = "cuda", n: int = 20_000, k: int = 100) -> dict[str, object]:
    """Same seeds on numpy (CPU) and on ``device``: objectives and label agreement."""
    sys.path.insert(0, str(ROOT))
    from kec.cluster.kmeans import SphericalKMeans
    from kec.cluster.metrics import cluster_accuracy

    X = clip_like(n, 512, 150, seed=3)
    out: dict[str, object] = {}
    for name, dev in (("numpy", "cpu"), ("torch", device)):
        t0 = time.perf_counter()
        est = SphericalKMeans(k, n_init=2, max_iter=30, random_state=0, device=dev).fit(X)
        out[name] = {"seconds": round(time.perf_counter() - t0, 3),
                     "mean_cosine": est.objective_, "iterations": est.n_iter_,
                     "device": est.device_}
        out[name + "_labels"] = est.labels_
    out["label_agreement_acc"] = cluster_accuracy(out.pop("numpy_labels"),
                                                  out.pop("torch_labels"))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--classes", type=int, default=150, help="true classes in the data")
    ap.add_argument("--n-init", type=int, default=10)
    ap.add_argument("--iters", type=int, default=20, help="max iterations per restart")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--engines", default="faiss,kec,kec-faiss")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--gpu-check", action="store_true",
                    help="numpy/GPU agreement, then kec at --n x --d with --k on --device")
    args = ap.parse_args(argv)
    if args.gpu_check:
        print(json.dumps(gpu_agreement(args.device)), flush=True)
        for md in (None, "bfloat16"):
            print(json.dumps(gpu_kmeans_check(args.n, args.d, args.k, args.device, args.n_init,
                                              args.iters, matmul_dtype=md)), flush=True)
        return
    if args.child:
        print(json.dumps(run_one(args.child, args)))
        return
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    engines = args.engines.split(",")
    runs: dict[str, list[dict[str, object]]] = {e: [] for e in engines}
    print(f"spherical k-means, N={args.n} d={args.d} K={args.k} restarts={args.n_init} "
          f"iterations<={args.iters}, {args.threads} threads, device={args.device}, "
          f"load average {os.getloadavg()[0]:.1f}")
    for _ in range(args.repeats):
        for e in engines:  # interleaved, so load changes hit every engine alike
            cmd = [sys.executable, __file__, "--child", e] + [
                a for a in (argv if argv is not None else sys.argv[1:])]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            runs[e].append(json.loads(out.stdout.strip().splitlines()[-1]))
    ref = statistics.median(r["seconds"] for r in runs[engines[0]])
    ref_cpu = statistics.median(r["cpu_seconds"] for r in runs[engines[0]])
    print(f"{'engine':<10} {'median s':>9} {'min s':>7} {'vs ' + engines[0]:>9} "
          f"{'CPU s':>7} {'CPU vs':>7} {'objective':>11} {'iters':>6} {'peak RSS MiB':>13} "
          f"{'points*restarts/s':>18}")
    for e in engines:
        secs = [r["seconds"] for r in runs[e]]
        med = statistics.median(secs)
        cpu = statistics.median(r["cpu_seconds"] for r in runs[e])
        last = runs[e][-1]
        extra = f"  peak GPU {last['peak_gpu_gib']:.2f} GiB" if "peak_gpu_gib" in last else ""
        print(f"{e:<10} {med:9.2f} {min(secs):7.2f} {med / ref:8.2f}x {cpu:7.2f} "
              f"{cpu / ref_cpu:6.2f}x {last['objective']:11.1f} "
              f"{last['iterations_last_restart']:6d} {last['peak_rss_mib']:13.0f} "
              f"{args.n * args.n_init / med:18.0f}{extra}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
