"""Benchmark kec's entropic OT against its strongest CPU peers at equal L1 accuracy.

Sections (each a subcommand; ``all``, the default, runs the CPU ones)::

    python benchmarks/bench_ot.py auto      # dense Sinkhorn vs L-BFGS semi-dual, by size
    python benchmarks/bench_ot.py peers     # kec vs POT sinkhorn (f32, f64), POT semi-dual
    python benchmarks/bench_ot.py pot-mass  # mass of POT's stabilised plans (upstream bug)
    python benchmarks/bench_ot.py cpu       # this numpy path vs the previous one (git)
    python benchmarks/bench_ot.py gpu       # gpu_ot_check on CUDA: kec vs POT's torch backend

**Equal accuracy** (``peers``). The accuracy is the L1 error of every constraint, rows
plus columns, of the dense float64 plan each solver returns (kec's rebuilt from its
potentials). kec runs at ``tol`` = the target (its ``marginal_error`` is that same
float64 error). Every peer is stopped at its cheapest setting that reaches the target:
its ``stopThr`` is bracketed by factors of 10 and bisected in log10 (6 steps, a factor
10^(1/64)), keeping the largest value whose measured error is at or below the target.
Then kec and the peers run ``--repeats`` times, interleaved, each run in its own
process; the table gives medians. Every process is pinned to ``--threads`` BLAS/OpenMP
threads (environment variables before numpy starts, threadpoolctl and
``torch.set_num_threads`` after). Timed: from the float32 unit features to the solver's
output (POT: the cost matrix ``1 - X Uᵀ`` in its dtype, the kernel and the iterations;
kec: its kernel blocks, passes and float64 check).

Data are CLIP-like (as ``benchmarks/bench_cluster.py``): images around one mean
direction, texts around another at cosine 0.35 (the modality gap), both pulled towards
``k`` class prototypes.

The GPU check is :func:`gpu_ot_check`, importable by ``benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GIB = 2**30
BASELINE_COMMIT = "01637ef"
"""The last commit with the numpy-only OT (the ``cpu`` section's "previous path")."""


# --------------------------------------------------------------------------- data
def _unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def clip_like(n: int, m: int, d: int = 512, k: int | None = None,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """CLIP-like unit features: ``(N, d)`` images and ``(M, d)`` texts, float32.

    images = normalize(0.7 m_img + 0.45 p_class + 0.55 noise), texts the same around
    m_txt with cos(m_img, m_txt) = 0.35 (as ``bench_cluster.make_data``).
    """
    rng = np.random.default_rng(seed)
    k = k or max(2, min(1000, n // 50))
    m_img = _unit(rng.standard_normal(d))
    m_txt = _unit(0.35 * m_img + math.sqrt(1 - 0.35**2) * _unit(rng.standard_normal(d)))
    protos = _unit(rng.standard_normal((k, d)))

    def around(mean: np.ndarray, count: int) -> np.ndarray:
        out = np.empty((count, d), dtype=np.float32)
        for s in range(0, count, 50_000):
            c = rng.integers(0, k, min(50_000, count - s))
            out[s : s + c.size] = _unit(0.7 * mean + 0.45 * protos[c]
                                        + 0.55 * _unit(rng.standard_normal((c.size, d))))
        return out

    return around(m_img, n), around(m_txt, m)


def l1_error(T: np.ndarray, a: np.ndarray | None = None, b: np.ndarray | None = None) -> float:
    """``|T1 - a|_1 + |T'1 - b|_1`` of a dense plan (uniform marginals by default)."""
    n, m = T.shape
    a = np.full(n, 1 / n) if a is None else a
    b = np.full(m, 1 / m) if b is None else b
    return float(np.abs(T.sum(1) - a).sum() + np.abs(T.sum(0) - b).sum())


def maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _run_child(section: str, **kw: Any) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "child", "--child", section,
           "--params", json.dumps(kw)]
    env = dict(os.environ)
    if "threads" in kw:  # pinned before numpy starts its pool, and again in the child
        t = str(kw["threads"])
        env.update(OMP_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t, MKL_NUM_THREADS=t)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["failed"]
        return {"error": tail[0]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- auto
def child_auto(p: dict[str, Any]) -> dict[str, Any]:
    """One solver at one size: seconds, passes, converged, measured L1 error."""
    from kec.cluster.ot import plan_from_duals, sinkhorn_log, sinkhorn_log_chunked

    X, U = clip_like(p["n"], p["m"], p["d"], seed=p.get("seed", 0))
    t0 = time.perf_counter()
    if p["solver"] == "dense":
        C = 1.0 - X.astype(np.float64) @ U.astype(np.float64).T
        res = sinkhorn_log(C, reg=p["reg"], tol=p["tol"], max_iter=p["max_iter"])
        T = res.plan
    else:
        res = sinkhorn_log_chunked(X, U, reg=p["reg"], tol=p["tol"], solver=p["solver"],
                                   max_iter=p["max_iter"])
        T = None
    seconds = time.perf_counter() - t0
    if T is None:
        T = plan_from_duals(X, U, res)
    return {"seconds": seconds, "n_iter": res.n_iter, "converged": res.converged,
            "reported": res.marginal_error, "measured_l1": l1_error(T)}


def section_auto(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [(100, 50), (500, 200), (2000, 800), (5000, 2000)]
    rows = []
    print(f"\n== auto: which solver converges fastest (reg {args.reg}, tol {args.tol:g}, "
          f"d {args.d}) ==")
    print(f"{'N x M':>12s} {'solver':>16s} {'seconds':>8s} {'passes':>7s} {'conv':>5s} "
          f"{'L1 (measured)':>14s}")
    for n, m in sizes:
        if n * m > args.max_entries:
            continue
        for solver, max_iter in (("dense", 50_000), ("sinkhorn", 50_000), ("lbfgs", 1000)):
            if solver == "dense" and n * m > 4_000_000:
                continue
            r = _run_child("auto", n=n, m=m, d=args.d, reg=args.reg, tol=args.tol,
                           solver=solver, max_iter=max_iter)
            rows.append({"n": n, "m": m, "solver": solver} | r)
            if "error" in r:
                print(f"{n:>5d}x{m:<6d} {solver:>16s} FAILED {r['error']}")
                continue
            label = {"dense": "dense Sinkhorn", "sinkhorn": "streamed Sinkhorn",
                     "lbfgs": "L-BFGS semi-dual"}[solver]
            print(f"{n:>5d}x{m:<6d} {label:>16s} {r['seconds']:8.2f} {r['n_iter']:7d} "
                  f"{r['converged']!s:>5s} {r['measured_l1']:14.1e}", flush=True)
    return {"auto": rows}


# --------------------------------------------------------------------------- peers
PEERS = {
    "pot_sinkhorn_f32": "ot.sinkhorn(a, b, M, reg, method='sinkhorn', stopThr=s), "
                        "float32 a, b, M = 1 - X @ U.T",
    "pot_sinkhorn_f64": "ot.sinkhorn(a, b, M, reg, method='sinkhorn', stopThr=s), float64",
    "pot_semi_dual": "ot.smooth.smooth_ot_semi_dual(a, b, M, reg, reg_type='kl', "
                     "stopThr=s), float64 (scipy L-BFGS-B)",
}
"""The strongest CPU peers found by the peer check of issue 17 (POT 0.9.7). POT's
``sinkhorn_log`` is 30-40x slower than its ``sinkhorn`` here; ``sinkhorn_stabilized`` and
``sinkhorn_epsilon_scaling`` return a plan of mass 1/(NM) at this size (see
``python benchmarks/bench_ot.py pot-mass``)."""


POT_MAX_ITER = 50_000
"""Sinkhorn iterations a peer may use (about 30 s at 2,000 × 800 on one thread)."""


def _pin_threads(threads: int) -> None:
    """One BLAS/OpenMP pool size for everything in this process (numpy, scipy, torch)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    if "torch" in sys.modules:  # POT imports torch when it is installed
        sys.modules["torch"].set_num_threads(threads)


def child_peer(p: dict[str, Any]) -> dict[str, Any]:
    """One solve from the features: kec at ``tol`` or a peer at ``setting``.

    Timed: everything from the float32 unit features to the solver's output (POT: the
    cost matrix, its kernel and the iterations; kec: its kernel blocks and passes, the
    float64 check included). Not timed: the L1 error of every constraint, measured on
    the dense float64 plan (kec: rebuilt from its potentials; POT: the plan it returns,
    summed in float64).
    """
    _pin_threads(p["threads"])
    X, U = clip_like(p["n"], p["m"], p["d"], seed=p.get("seed", 0))
    n, m = X.shape[0], U.shape[0]
    reg, solver = p["reg"], p["solver"]
    if solver == "kec":
        from kec.cluster.ot import plan_from_duals, solve_ot

        solve_ot(X[:64], U[:32], tol=p["setting"])  # warm-up (imports, first BLAS call)
        t0 = time.perf_counter()
        res = solve_ot(X, U, "auto", reg=reg, tol=p["setting"])
        seconds = time.perf_counter() - t0
        T = plan_from_duals(X, U, res)
        return {"seconds": seconds, "n_iter": res.n_iter, "l1": l1_error(T),
                "reported": res.marginal_error, "converged": res.converged,
                "dtype": res.info["dtype"], "mass": float(T.sum())}
    import ot

    _pin_threads(p["threads"])  # again: importing POT may have started torch's pool
    warnings.simplefilter("ignore")
    dt = np.float32 if solver == "pot_sinkhorn_f32" else np.float64
    t0 = time.perf_counter()
    Xd, Ud = X.astype(dt, copy=False), U.astype(dt, copy=False)
    M = 1.0 - Xd @ Ud.T
    a, b = np.full(n, 1 / n, dtype=dt), np.full(m, 1 / m, dtype=dt)
    if solver == "pot_semi_dual":
        T, log = ot.smooth.smooth_ot_semi_dual(a, b, M, reg, reg_type="kl",
                                               stopThr=p["setting"], numItermax=100_000,
                                               log=True)
        n_iter = int(log["res"].nfev)
    else:
        T, log = ot.sinkhorn(a, b, M, reg, method="sinkhorn", stopThr=p["setting"],
                             numItermax=POT_MAX_ITER, log=True)
        n_iter = int(log["niter"]) + 1
    seconds = time.perf_counter() - t0
    T = np.asarray(T, dtype=np.float64)
    return {"seconds": seconds, "n_iter": n_iter, "l1": l1_error(T), "mass": float(T.sum()),
            "budget_spent": n_iter >= (POT_MAX_ITER if solver != "pot_semi_dual" else 100_000)}


def _cheapest_setting(solver: str, target: float, base: dict[str, Any], steps: int
                      ) -> tuple[float | None, dict[str, Any]]:
    """The largest stopThr/tol of ``solver`` whose measured L1 error is <= ``target``.

    Bracketed by factors of 10 from ``target``, then bisected in log10 ``steps`` times
    (6 steps: to a factor 10^(1/64)). Returns the setting and its run; ``None`` and the
    best run when lowering stopThr tenfold no longer lowers the error by 10 % or the
    iteration budget runs out (the peer cannot reach the target).
    """
    def run(s: float) -> dict[str, Any]:
        r = _run_child("peer", solver=solver, setting=s, **base)
        if "error" in r:
            raise RuntimeError(f"{solver} at {s:g}: {r['error']}")
        return r

    ok_s, ok_r, bad_s, bad_r = None, None, None, None
    s = target
    for _ in range(14):  # bracket
        r = run(s)
        if r["l1"] <= target:
            ok_s, ok_r = s, r
            if bad_s is not None:
                break
            s *= 10
        else:
            stalled = bad_r is not None and r["l1"] > 0.9 * bad_r["l1"]
            bad_s, bad_r = s, r
            if ok_s is not None:
                break
            if stalled or r.get("budget_spent"):
                return None, r
            s /= 10
    if ok_s is None or bad_s is None:
        raise RuntimeError(f"{solver}: no stopThr bracket for L1 <= {target:g}")
    lo, hi = math.log10(ok_s), math.log10(bad_s)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        r = run(10**mid)
        if r["l1"] <= target:
            lo, ok_r = mid, r
        else:
            hi = mid
    assert ok_r is not None
    return 10**lo, ok_r


def section_peers(args: argparse.Namespace) -> dict[str, Any]:
    """kec against the strongest CPU peers at equal L1 accuracy, interleaved repeats."""
    import statistics

    n, m, threads = args.peer_n, args.peer_m, args.threads
    base = {"n": n, "m": m, "d": args.d, "reg": args.reg, "threads": threads}
    print(f"\n== OT peers at equal L1 accuracy: {n} x {m}, d {args.d}, reg {args.reg}, "
          f"{threads} thread(s), {args.repeats} interleaved repeats, load "
          f"{os.getloadavg()[0]:.1f} ==")
    out: dict[str, Any] = {"size": [n, m], "d": args.d, "reg": args.reg,
                           "threads": threads, "repeats": args.repeats, "rows": []}
    for target in args.accuracies:
        settings: dict[str, float] = {"kec": target}
        runs: dict[str, dict[str, Any]] = {}
        for peer in args.peers:
            setting, r = _cheapest_setting(peer, target, base, args.search_steps)
            if setting is None:
                print(f"{peer}: cannot reach L1 {target:g} (best {r['l1']:.2e} after "
                      f"{r['n_iter']} iterations)", flush=True)
                out["rows"].append({"target": target, "solver": peer, "reached": False} | r)
                continue
            settings[peer], runs[peer] = setting, r
            print(f"{peer}: stopThr {setting:.3g} reaches L1 {r['l1']:.2e}", flush=True)
        times: dict[str, list[float]] = {k: [] for k in settings}
        for _ in range(args.repeats):
            for solver, setting in settings.items():
                r = _run_child("peer", solver=solver, setting=setting, **base)
                if "error" in r:
                    raise RuntimeError(f"{solver}: {r['error']}")
                times[solver].append(r["seconds"])
                runs[solver] = r
        kec_t = statistics.median(times["kec"])
        print(f"\nL1 target {target:g}")
        print(f"{'solver':18s} {'stopThr/tol':>11s} {'median s':>9s} {'min s':>7s} "
              f"{'iters':>7s} {'L1 measured':>12s} {'vs kec':>7s}")
        for solver, setting in settings.items():
            med = statistics.median(times[solver])
            r = runs[solver]
            row = {"target": target, "solver": solver, "setting": setting,
                   "median_seconds": med, "min_seconds": min(times[solver]),
                   "seconds": times[solver]} | r
            out["rows"].append(row)
            print(f"{solver:18s} {setting:11.3g} {med:9.3f} {min(times[solver]):7.3f} "
                  f"{r['n_iter']:7d} {r['l1']:12.2e} {med / kec_t:6.1f}x", flush=True)
    return {"peers": out}


def section_pot_mass(args: argparse.Namespace) -> dict[str, Any]:
    """Mass of the plan POT's stabilised solvers return at ``--peer-n x --peer-m``."""
    import ot

    warnings.simplefilter("ignore")
    X, U = clip_like(args.peer_n, args.peer_m, args.d)
    n, m = X.shape[0], U.shape[0]
    M = 1.0 - X.astype(np.float64) @ U.astype(np.float64).T
    a, b = np.full(n, 1 / n), np.full(m, 1 / m)
    out = {"pot": ot.__version__, "n": n, "m": m, "reg": args.reg, "1/(NM)": 1 / (n * m)}
    print(f"\n== POT {ot.__version__}: plan mass at {n} x {m}, reg {args.reg} "
          f"(1/(NM) = {1 / (n * m):.3g}) ==")
    for method in ("sinkhorn", "sinkhorn_stabilized", "sinkhorn_epsilon_scaling"):
        T = ot.sinkhorn(a, b, M, args.reg, method=method, numItermax=args.mass_iters,
                        stopThr=1e-9)
        out[method] = float(T.sum())
        print(f"{method:26s} mass {T.sum():.4g}  L1 error {l1_error(T):.3g}", flush=True)
    return {"pot_mass": out}


# --------------------------------------------------------------------------- CPU
def child_cpu(p: dict[str, Any]) -> dict[str, Any]:
    """The OT + features at n x m with this tree's code or the baseline commit's."""
    X, U = clip_like(p["n"], p["m"], p["d"], seed=p.get("seed", 0))
    if p["which"] == "baseline":
        sys.path.insert(0, p["baseline_dir"])
        for mod in [k for k in sys.modules if k.startswith("kec")]:
            del sys.modules[mod]
    from kec.cluster.ot import solve_and_transport

    if p["which"] == "torch":
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        X, U = torch.from_numpy(X), torch.from_numpy(U)
    base = maxrss()
    t0 = time.perf_counter()
    feats, res = solve_and_transport(X, U, "chunked", tol=p["tol"])
    seconds = time.perf_counter() - t0
    feats = np.asarray(feats)
    np.save(p["out"], feats)
    return {"seconds": seconds, "n_iter": res.n_iter, "converged": res.converged,
            "marginal_error": res.marginal_error, "maxrss": maxrss(),
            "rss_before": base, "module": sys.modules["kec.cluster.ot"].__file__}


def _baseline_tree(tmp: Path) -> Path | None:
    files = ["kec/__init__.py", "kec/errors.py", "kec/cluster/_checks.py",
             "kec/cluster/_kernel.py", "kec/cluster/ot.py"]
    for f in files:
        proc = subprocess.run(["git", "-C", str(ROOT), "show", f"{BASELINE_COMMIT}:{f}"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            return None
        dest = tmp / f
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(proc.stdout)
    (tmp / "kec/cluster/__init__.py").write_text("")
    return tmp


def section_cpu(args: argparse.Namespace) -> dict[str, Any]:
    n, m = args.cpu_n, args.cpu_m
    print(f"\n== CPU: OT + features {n} x {m}, d {args.d}, tol {args.tol:g}, "
          f"{os.cpu_count()} CPUs ==")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kec-bench-ot-") as tmp:
        base_dir = _baseline_tree(Path(tmp) / "baseline")
        runs = [("numpy", "this tree, numpy"), ("torch", "this tree, torch CPU")]
        if base_dir is not None:
            runs.insert(0, ("baseline", f"previous numpy ({BASELINE_COMMIT})"))
        feats = {}
        print(f"{'code':28s} {'seconds':>8s} {'passes':>7s} {'conv':>5s} "
              f"{'reported L1':>11s} {'peak GiB':>9s}")
        for which, label in runs:
            path = Path(tmp) / f"{which}.npy"
            r = _run_child("cpu", which=which, n=n, m=m, d=args.d, tol=args.tol,
                           out=str(path), baseline_dir=str(base_dir or ""))
            out[which] = r
            if "error" in r:
                print(f"{label:28s} FAILED: {r['error']}")
                continue
            feats[which] = np.load(path)
            print(f"{label:28s} {r['seconds']:8.1f} {r['n_iter']:7d} {r['converged']!s:>5s} "
                  f"{r['marginal_error']:11.1e} {r['maxrss'] / GIB:9.2f}", flush=True)
        if "numpy" in feats:
            for other in ("baseline", "torch"):
                if other in feats:
                    cos = float(np.min(np.sum(feats[other] * feats["numpy"], axis=1)))
                    out[f"min_cosine_numpy_vs_{other}"] = cos
                    print(f"transported features, numpy vs {other}: min cosine {cos:.6f}")
    return {"cpu": out}


# --------------------------------------------------------------------------- GPU
def gpu_ot_check(n: int = 50_000, m: int = 20_000, d: int = 512, device: str = "cuda", *,
                 reg: float = 0.01, tol: float = 1e-4, pot: bool = True,
                 matmul_dtype: str | None = None, pot_max_iter: int = 1000,
                 cache_bytes: int | None = None, seed: int = 0) -> dict[str, Any]:
    """kec's OT + transported features on a GPU, beside POT's torch backend.

    Runs :func:`kec.cluster.ot.solve_and_transport` (L-BFGS semi-dual, streamed blocks)
    on CLIP-like data, then, with ``pot``, POT's ``ot.sinkhorn(..., method=
    "sinkhorn_log")`` on the same torch tensors followed by the same transported
    features, with POT's ``stopThr`` lowered until its L1 marginal error (rows +
    columns) is at most kec's reported one, or ``pot_max_iter`` runs out.

    Returns
    -------
    dict
        ``kec``: seconds (OT, features, total), passes, converged, marginal_error,
        peak GPU memory (``torch.cuda.max_memory_allocated``) in GiB; ``pot``: the
        same for POT (time of the final stopThr), the stopThr used, its L1 error, and
        the minimum cosine between its transported features and kec's.
    """
    import torch

    from kec.cluster.ot import solve_and_transport

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    Xh, Uh = clip_like(n, m, d, seed=seed)
    X = torch.from_numpy(Xh).to(dev)
    U = torch.from_numpy(Uh).to(dev)
    del Xh, Uh
    out: dict[str, Any] = {"n": n, "m": m, "d": d, "reg": reg, "tol": tol,
                           "device": torch.cuda.get_device_name(dev) if cuda else str(dev),
                           "matmul_dtype": matmul_dtype}

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    def reset_peak() -> None:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(dev)

    def peak() -> int:
        return torch.cuda.max_memory_allocated(dev) if cuda else 0

    # warm-up (CUDA context, cuBLAS handles) on a small problem
    solve_and_transport(X[:256], U[:128], "chunked", reg=reg)
    sync()
    reset_peak()
    base = torch.cuda.memory_allocated(dev) if cuda else 0
    t0 = time.perf_counter()
    feats, res = solve_and_transport(X, U, "chunked", reg=reg, tol=tol,
                                     matmul_dtype=matmul_dtype, cache_bytes=cache_bytes)
    sync()
    total = time.perf_counter() - t0
    out["kec"] = {"seconds": round(total, 3), "ot_seconds": round(res.seconds, 3),
                  "feature_seconds": res.info.get("transport_seconds"),
                  "passes": res.n_iter, "converged": res.converged,
                  "marginal_error": res.marginal_error,
                  "cached_gib": round(res.info["cached_bytes"] / GIB, 2),
                  "peak_gib": round((peak() - base) / GIB, 2),
                  "peak_gib_with_inputs": round(peak() / GIB, 2)}
    if not pot:
        return out
    import ot

    kec_err = res.marginal_error
    a = torch.full((n,), 1.0 / n, dtype=torch.float32, device=dev)
    b = torch.full((m,), 1.0 / m, dtype=torch.float32, device=dev)
    stop = tol
    for _ in range(4):
        reset_peak()
        sync()
        t0 = time.perf_counter()
        try:
            M = 1.0 - X @ U.T
            T, log = ot.sinkhorn(a, b, M, reg, method="sinkhorn_log", numItermax=pot_max_iter,
                                 stopThr=stop, log=True)
            del M
            W = T * (X @ U.T)
            del T
            pf = W @ U
            del W
            pf = pf / pf.norm(dim=1, keepdim=True).clamp_min(1e-30)
            sync()
        except torch.OutOfMemoryError as exc:
            out["pot"] = {"error": f"out of memory: {exc}".splitlines()[0]}
            return out
        seconds = time.perf_counter() - t0
        # L1 error of POT's plan, recomputed blockwise (the plan itself was freed)
        f, g = log["log_u"], log["log_v"]
        rows = torch.zeros(n, dtype=torch.float64, device=dev)
        cols = torch.zeros(m, dtype=torch.float64, device=dev)
        for s in range(0, n, 4096):
            blk = torch.exp(f[s:s + 4096, None] + g[None, :]
                            - (1.0 - X[s:s + 4096] @ U.T) / reg).double()
            rows[s:s + 4096] = blk.sum(1)
            cols += blk.sum(0)
        err = float((rows - 1.0 / n).abs().sum() + (cols - 1.0 / m).abs().sum())
        pot_peak = peak()
        out["pot"] = {"seconds": round(seconds, 3), "stopThr": stop,
                      "n_iter": int(log["niter"]) + 1, "l1_error": err,
                      "peak_gib": round((pot_peak - base) / GIB, 2),
                      "min_cosine_vs_kec": float((pf * feats).sum(1).min())}
        if err <= kec_err or int(log["niter"]) + 1 >= pot_max_iter:
            break
        stop /= 10
    return out


def gpu_smoke(device: str = "cuda") -> dict[str, Any]:
    """Every solver on ``device`` against numpy at 2,000 × 800: flags, plans, features."""
    import torch

    from kec.cluster.ot import plan_from_duals, solve_and_transport

    X, U = clip_like(2000, 800, 512, seed=1)
    out: dict[str, Any] = {}
    for method in ("sinkhorn", "chunked", "semi_relaxed", "partial"):
        for mm in (None, "bfloat16"):
            if mm and method == "sinkhorn":
                continue
            kw = {"matmul_dtype": mm} if mm else {}
            f_np, r_np = solve_and_transport(X, U, method, **({} if mm else kw))
            f_g, r_g = solve_and_transport(X, U, method, device=device, **kw)
            T_np = plan_from_duals(X, U, r_np)
            T_g = plan_from_duals(X, U, r_g)
            out[f"{method}/{mm or 'fp32'}"] = {
                "converged": [r_np.converged, r_g.converged],
                "passes": [r_np.n_iter, r_g.n_iter],
                "n_max_plan_diff": float(np.abs(T_np - T_g).max() * X.shape[0]),
                "min_feature_cosine": float((f_np * f_g).sum(1).min()),
                "device": r_g.info.get("device"), "type": type(f_g).__name__}
    torch.cuda.synchronize()
    return out


def gpu_profile(n: int, m: int, d: int, matmul_dtype: str | None = None) -> None:
    """Where the time of one GPU solve goes: host (cProfile) and device (torch.profiler)."""
    import cProfile
    import pstats

    import torch
    from torch.profiler import ProfilerActivity, profile

    from kec.cluster.ot import solve_and_transport

    Xh, Uh = clip_like(n, m, d)
    X, U = torch.from_numpy(Xh).cuda(), torch.from_numpy(Uh).cuda()
    solve_and_transport(X[:256], U[:128])
    torch.cuda.synchronize()
    prof = cProfile.Profile()
    prof.enable()
    _, res = solve_and_transport(X, U, matmul_dtype=matmul_dtype)
    torch.cuda.synchronize()
    prof.disable()
    print(res.n_iter, res.seconds, res.info, flush=True)
    pstats.Stats(prof).sort_stats("tottime").print_stats(18)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as tp:
        solve_and_transport(X, U, matmul_dtype=matmul_dtype, max_iter=8)
        torch.cuda.synchronize()
    print(tp.key_averages().table(sort_by="cuda_time_total", row_limit=14), flush=True)


def section_gpu(args: argparse.Namespace) -> dict[str, Any]:
    if args.profile:
        gpu_profile(args.gpu_n, args.gpu_m, args.d, args.matmul_dtype)
        return {}
    if args.smoke:
        r = gpu_smoke("cuda")
        print(json.dumps(r, indent=1), flush=True)
    r = gpu_ot_check(args.gpu_n, args.gpu_m, args.d, "cuda", pot=not args.no_pot,
                     matmul_dtype=args.matmul_dtype, cache_bytes=args.cache_bytes)
    print(json.dumps(r, indent=2))
    return {"gpu": r}


CHILDREN = {"auto": child_auto, "peer": child_peer, "cpu": child_cpu}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("section", nargs="?", default="all",
                   choices=["all", "auto", "peers", "pot-mass", "cpu", "gpu", "child"])
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--reg", type=float, default=0.01)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--accuracies", type=float, nargs="+", default=[1e-4, 1e-6],
                   help="peers: L1 errors every solver must reach (kec's tol)")
    p.add_argument("--peers", nargs="+", default=list(PEERS), choices=list(PEERS))
    p.add_argument("--threads", type=int, default=1, help="peers: BLAS/OpenMP threads")
    p.add_argument("--repeats", type=int, default=5, help="peers: interleaved repeats")
    p.add_argument("--search-steps", type=int, default=6,
                   help="peers: bisection steps on log10 stopThr")
    p.add_argument("--peer-n", type=int, default=2000)
    p.add_argument("--peer-m", type=int, default=800)
    p.add_argument("--mass-iters", type=int, default=100, help="pot-mass: iterations")
    p.add_argument("--max-entries", type=int, default=10_000_000, help="auto: largest N*M")
    p.add_argument("--cpu-n", type=int, default=20_000)
    p.add_argument("--cpu-m", type=int, default=8_000)
    p.add_argument("--gpu-n", type=int, default=50_000)
    p.add_argument("--gpu-m", type=int, default=20_000)
    p.add_argument("--matmul-dtype", default=None)
    p.add_argument("--no-pot", action="store_true")
    p.add_argument("--smoke", action="store_true", help="gpu: first check every solver "
                   "against numpy at 2,000 x 800")
    p.add_argument("--profile", action="store_true", help="gpu: profile one solve")
    p.add_argument("--cache-bytes", type=int, default=None, help="gpu: kernel cache budget")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.section == "child":
        print(json.dumps(CHILDREN[args.child](json.loads(args.params)), default=float))
        return 0
    sections = {"auto": section_auto, "peers": section_peers, "pot-mass": section_pot_mass,
                "cpu": section_cpu, "gpu": section_gpu}
    todo = ["auto", "peers", "cpu"] if args.section == "all" else [args.section]
    results: dict[str, Any] = {}
    for s in todo:
        results.update(sections[s](args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
