"""Benchmark kec.cluster at ImageNet-1K-val scale on synthetic CLIP-like features.

Every method runs in its own subprocess so that its memory is measured alone: per stage,
the wall time and the peak resident memory (RSS sampled every 10 ms from /proc, plus the
process's exact ``ru_maxrss``). The OT comparison with POT (at equal L1 accuracy) lives
in ``benchmarks/bench_ot.py``.

Defaults are the ImageNet-1K validation scale: N = 50,000 images, d = 512, K = 1,000
classes, CAE's OT against M = 20,000 selected nouns (and as many captions). Run small
first::

    python benchmarks/bench_cluster.py --n 2000 --m 800 --k 20 --d 64
    python benchmarks/bench_cluster.py            # full scale, several minutes

Synthetic data: class prototypes on the sphere, images = normalize(0.7 m_img + 0.45
p_class + 0.55 noise) (mean image-image cosine ~0.5, as CLIP), texts likewise around a
second mean direction with cosine 0.35 to the first (CLIP's modality gap: image-text
cosines ~0.2, ~0.37 for the right class). Scores on such data say nothing about real
accuracy; they only show that the pipelines run and separate what is separable.
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
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

GIB = 2**30


# --------------------------------------------------------------------------- data
def _unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def make_data(folder: Path, n: int, k: int, d: int, vocab: int, seed: int) -> None:
    """Write images, labels, nouns, captions and synthetic knowledge as .npy files."""
    rng = np.random.default_rng(seed)
    m_img = _unit(rng.standard_normal(d))
    m_txt = _unit(0.35 * m_img + math.sqrt(1 - 0.35**2) * _unit(rng.standard_normal(d)))
    protos = _unit(rng.standard_normal((k, d)))

    def around(mean: np.ndarray, cls: np.ndarray, noise: float) -> np.ndarray:
        out = np.empty((cls.size, d), dtype=np.float32)
        for s in range(0, cls.size, 20_000):
            c = cls[s : s + 20_000]
            out[s : s + c.size] = _unit(0.7 * mean + 0.45 * protos[c]
                                        + noise * _unit(rng.standard_normal((c.size, d))))
        return out

    y = rng.integers(0, k, n)
    np.save(folder / "X.npy", around(m_img, y, 0.55))
    np.save(folder / "y.npy", y)
    np.save(folder / "nouns.npy", around(m_txt, rng.integers(0, k, vocab), 0.55))
    np.save(folder / "captions.npy", around(m_txt, rng.integers(0, k, vocab), 0.65))
    # knowledge: one concept per class, 2 uni-attributes each, 1 pair attribute per concept
    cls = np.arange(k)
    np.save(folder / "names.npy", around(m_txt, cls, 0.5))
    np.save(folder / "descs.npy", around(m_txt, cls, 0.6))
    np.save(folder / "uni.npy", around(m_txt, np.repeat(cls, 2), 0.7))
    sims = protos @ protos.T
    np.fill_diagonal(sims, -np.inf)
    partner = sims.argmax(axis=1)
    np.save(folder / "partner.npy", partner)
    np.save(folder / "pair.npy", around(m_txt, cls, 0.7))


def load_knowledge(folder: Path) -> Any:
    from kec.cluster.knowledge_features import KnowledgeFeatures

    names, descs = np.load(folder / "names.npy"), np.load(folder / "descs.npy")
    uni, pair = np.load(folder / "uni.npy"), np.load(folder / "pair.npy")
    partner = np.load(folder / "partner.npy")
    k = names.shape[0]
    attr_emb = np.concatenate([uni, pair])
    owners: list[list[int]] = [[2 * q, 2 * q + 1] for q in range(k)]
    pairs = []
    for q in range(k):
        idx = 2 * k + q
        owners[q].append(idx)
        owners[int(partner[q])].append(idx)
        pairs.append((q, int(partner[q]), 0.9, np.array([idx])))
    return KnowledgeFeatures(
        concept_ids=[f"c-{q:010x}" for q in range(k)], names=[f"class {q}" for q in range(k)],
        descriptions=[f"class {q} looks like class {q}" for q in range(k)],
        name_emb=names, desc_emb=descs, zeta=names + descs,
        attr_texts=[f"class {q // 2} attribute {q % 2}" for q in range(2 * k)]
        + [f"class {q} vs class {partner[q]}" for q in range(k)],
        attr_emb=attr_emb, attr_kind=["uni"] * (2 * k) + ["pair"] * k,
        concept_attrs=[np.array(sorted(set(o))) for o in owners], pairs=pairs,
    )


# --------------------------------------------------------------------------- memory
def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class StageMeter:
    """Wall time and peak RSS per stage (RSS sampled by a thread every 10 ms)."""

    def __init__(self) -> None:
        self.stage = "start"
        self.peaks: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.order: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._note()
            time.sleep(0.01)

    def _note(self) -> None:
        r = rss_bytes()
        if r > self.peaks.get(self.stage, 0):
            self.peaks[self.stage] = r

    @contextmanager
    def __call__(self, name: str) -> Any:
        outer = self.stage
        self.stage = name
        if name not in self.order:
            self.order.append(name)
        self._note()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            self._note()
            self.stage = outer

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- children
def child_method(args: argparse.Namespace) -> dict[str, Any]:
    from kec.cluster import methods, steps
    from kec.cluster.metrics import evaluate

    folder = Path(args.data)
    meter = StageMeter()
    # attribute the library's own stages to the meter
    original = steps.Stages.__call__

    @contextmanager
    def metered(self: Any, name: str) -> Any:
        with meter(name), original(self, name):
            yield

    steps.Stages.__call__ = metered  # type: ignore[method-assign]
    with meter("load"):
        X = np.load(folder / "X.npy")
        y = np.load(folder / "y.npy")
        nouns = np.load(folder / "nouns.npy") if args.child in ("tac", "cae") else None
        captions = np.load(folder / "captions.npy") if args.child == "cae" else None
        knowledge = load_knowledge(folder) if args.child in ("kec", "kec+cae") else None
    n_over = math.floor(X.shape[0] / 300 + 0.5)
    params: dict[str, Any] = {"random_state": args.seed}
    if args.child in ("cae",):
        params.update(top_k=max(1, math.ceil(args.m / max(1, n_over))))
    t0 = time.perf_counter()
    res = methods.run_method(args.child, X, args.k, nouns=nouns, captions=captions,
                             knowledge=knowledge, **params)
    total = time.perf_counter() - t0 + meter.seconds["load"]
    meter.close()
    return {
        "method": args.child, "total_s": total, "maxrss": maxrss_bytes(),
        "stages": [{"stage": s, "seconds": meter.seconds[s], "peak_rss": meter.peaks.get(s, 0)}
                   for s in meter.order],
        "metrics": evaluate(y, res.labels),
        "info": {k: v for k, v in res.info.items() if k.startswith(("ot_", "n_"))},
    }


CHILDREN: dict[str, Any] = {}


def run_child(kind: str, args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--data", str(args.data),
           "--n", str(args.n), "--m", str(args.m), "--k", str(args.k), "--d", str(args.d),
           "--seed", str(args.seed), "--reg", str(args.reg)]
    for key, value in extra.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report
def gib(x: float) -> str:
    return f"{x / GIB:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=50_000, help="images")
    p.add_argument("--m", type=int, default=20_000, help="nouns in CAE's OT (and captions)")
    p.add_argument("--k", type=int, default=1_000, help="classes = clusters")
    p.add_argument("--d", type=int, default=512, help="feature dimension")
    p.add_argument("--vocab", type=int, default=None, help="noun/caption vocabulary "
                   "(default 5 m)")
    p.add_argument("--methods", default="tac,kec,cae", help="comma-separated methods")
    p.add_argument("--reg", type=float, default=0.01, help="OT regularisation")
    p.add_argument("--pot-n", type=int, default=None, help="POT comparison size (default "
                   "min(n, 4000))")
    p.add_argument("--pot-m", type=int, default=None, help="(default min(m, 1600))")
    p.add_argument("--pot-stop", type=float, default=1e-7, help="POT stopThr")
    p.add_argument("--pot-iters", type=int, default=100_000, help="POT numItermax")
    p.add_argument("--memory-gib", type=float, default=6.0, help="memory budget")
    p.add_argument("--no-pot-largest", action="store_true",
                   help="skip timing POT at the largest size that fits the budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--data", default=None, help=argparse.SUPPRESS)
    p.add_argument("--save-plan", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        fn = CHILDREN.get(args.child, child_method)
        print(json.dumps(fn(args)))
        return 0

    args.pot_n = args.pot_n or min(args.n, 4000)
    args.pot_m = args.pot_m or min(args.m, 1600)
    vocab = args.vocab or 5 * args.m
    with tempfile.TemporaryDirectory(prefix="kec-bench-") as tmp:
        args.data = tmp
        t0 = time.perf_counter()
        make_data(Path(tmp), args.n, args.k, args.d, max(vocab, args.m), args.seed)
        print(f"synthetic data: N={args.n} d={args.d} K={args.k} vocabulary={vocab} "
              f"({time.perf_counter() - t0:.1f} s); {os.cpu_count()} CPUs\n", flush=True)

        results: dict[str, Any] = {"config": vars(args) | {"vocab": vocab}, "methods": {}}
        print(f"{'method':8s} {'stage':16s} {'seconds':>8s} {'peak RSS GiB':>13s}")
        for method in [s.strip() for s in args.methods.split(",") if s.strip()]:
            r = run_child(method, args)
            results["methods"][method] = r
            if "error" in r:
                print(f"{method:8s} FAILED: {r['error']}")
                continue
            for s in r["stages"]:
                print(f"{method:8s} {s['stage']:16s} {s['seconds']:8.1f} {gib(s['peak_rss']):>13s}")
            m = r["metrics"]
            extra = "  ".join(f"{k}={v}" for k, v in r["info"].items() if k.startswith("n_"))
            print(f"{method:8s} {'TOTAL':16s} {r['total_s']:8.1f} {gib(r['maxrss']):>13s}"
                  f"   ACC {m['acc']:.3f} NMI {m['nmi']:.3f} ARI {m['ari']:.3f}  {extra}",
                  flush=True)
            for key, v in r["info"].items():
                if key.startswith("ot_"):
                    print(f"{'':8s} {key}: {v['n_iter']} passes, converged={v['converged']}, "
                          f"marginal L1 {v['marginal_error']:.1e}, {v['seconds']:.1f} s")

        print("\nOT against POT: see benchmarks/bench_ot.py")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
