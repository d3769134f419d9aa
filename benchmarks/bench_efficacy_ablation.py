"""Ablation of the fusion step on an efficacy benchmark (WordNet glosses or FOLDOC, MiniLM).

For each regime and knowledge (reference, the embedded small LLM's, wrong, random), kec's
guarded fusion with its default rule beside the rules it replaced: the strict rule of
kec 0.1.0 (refine only at agreement >= 0.5 and only when the knowledge's partition fits
x at least as well as k-means; ``agreement_margin = objective_tolerance = anchor_weight =
0``, no spread check) and graded trust without the spread check
(``spread_ratio = inf``); and the fusions guarded fusion replaced (KEC's
concatenation, CAE's adaptive weights). Uses the same cache folder as ``kec bench``
(``--out``), so embeddings computed there are reused::

    python benchmarks/bench_efficacy_ablation.py --dataset foldoc --out bench-efficacy/foldoc

Prints a Markdown table: mean ± std and worst seed of ACC, NMI, and the worst per-seed
difference from k-means (ACC).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kec.bench.efficacy import EfficacyBench, EfficacyConfig

STRICT = {"agreement_margin": 0.0, "objective_tolerance": 0.0, "anchor_weight": 0.0,
          "spread_ratio": float("inf")}
VARIANTS = [
    ("kec", {}, "guarded, default rule"),
    ("kec", {"spread_ratio": float("inf")}, "guarded, no spread check"),
    ("kec", STRICT, "guarded, strict rule of 0.1.0"),
    ("kec", {"fusion": "concat"}, "KEC [x ; kappa]"),
    ("kec+cae", {}, "guarded, default rule"),
    ("kec+cae", {"spread_ratio": float("inf")}, "guarded, no spread check"),
    ("kec+cae", STRICT, "guarded, strict rule of 0.1.0"),
    ("kec+cae", {"fusion": "adaptive"}, "CAE adaptive weights"),
]


def _row(regime: str, kind: str, method: str, label: str, accs: list[float],
         nmis: list[float], km: list[float], modes: set[str]) -> str:
    worst = min(a - k for a, k in zip(accs, km))
    return (f"| {regime} | {kind} | {method} | {label} | {np.mean(accs):.1f} ± "
            f"{np.std(accs):.1f} | {min(accs):.1f} | {np.mean(nmis):.1f} ± {np.std(nmis):.1f} "
            f"| {worst:+.1f} | {'/'.join(sorted(modes))} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="wordnet-glosses",
                    choices=("wordnet-glosses", "foldoc"))
    ap.add_argument("--out", type=Path, default=Path("bench-efficacy"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    args = ap.parse_args(argv)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    cfg = EfficacyConfig(out=args.out, dataset=args.dataset, seeds=seeds,
                         methods=("kmeans", "kec", "kec+cae"), progress=False)
    if args.quick:
        from kec.bench.efficacy_data import efficacy_dataset

        quick = efficacy_dataset(args.dataset).quick
        cfg = EfficacyConfig(out=args.out, dataset=args.dataset, seeds=seeds,
                             methods=cfg.methods, progress=False, **quick)
    bench = EfficacyBench(cfg.resolved())
    t0 = time.perf_counter()
    regimes, _, _, _ = bench.prepare()
    from kec.cluster.methods import run_kmeans, run_method
    from kec.cluster.metrics import evaluate

    print(f"prepared in {time.perf_counter() - t0:.1f} s; seeds {', '.join(map(str, seeds))}")
    print("| regime | knowledge | method | fusion | ACC | worst ACC | NMI "
          "| worst seed - k-means | mode |")
    print("|---|---|---|---|---|---|---|---|---|")
    for reg in regimes:
        k = len(reg.class_names)
        km = [evaluate(reg.y, run_kmeans(reg.X, k, random_state=s).labels) for s in seeds]
        km_acc = [100 * m["acc"] for m in km]
        print(_row(reg.name, "-", "kmeans", "-", km_acc, [100 * m["nmi"] for m in km],
                   km_acc, set()))
        for kind, kf in reg.knowledge.items():
            for method, params, label in VARIANTS:
                accs, nmis, modes = [], [], set()
                for s in seeds:
                    res = run_method(method, reg.X, k, knowledge=kf, random_state=s,
                                     **params)
                    m = evaluate(reg.y, res.labels)
                    accs.append(100 * m["acc"])
                    nmis.append(100 * m["nmi"])
                    if "guard" in res.info:
                        modes.add(res.info["guard"]["mode"])
                print(_row(reg.name, kind, method, label, accs, nmis, km_acc, modes),
                      flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
