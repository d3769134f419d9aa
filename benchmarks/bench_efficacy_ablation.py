"""Ablation of the fusion step on the efficacy benchmark (WordNet glosses, MiniLM).

For each regime and knowledge, kec's guarded fusion (the default) beside the fusions it
replaced: kec+cae's CAE-style adaptive weights and KEC's concatenation, and kec's
published ``[x ; kappa]``; guarded fusion with other weights of the knowledge views
(beta); and a third knowledge, ``random``: the reference's structure with random vectors. Uses the
same cache folder as ``kec bench wordnet-glosses`` (``--out``), so embeddings computed
there are reused::

    python benchmarks/bench_efficacy_ablation.py --out bench-efficacy --quick

Prints a Markdown table of mean ± std ACC / NMI over seeds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kec.bench.efficacy import FULL, QUICK, EfficacyBench, EfficacyConfig

VARIANTS = [
    ("kec", {"fusion": "guarded"}, "guarded (default)"),
    ("kec", {"fusion": "concat"}, "KEC [x ; kappa]"),
    ("kec+cae", {"fusion": "guarded"}, "guarded (default)"),
    ("kec+cae", {"fusion": "guarded", "beta": 0.0}, "guarded, beta = 0"),
    ("kec+cae", {"fusion": "guarded", "beta": 1.0}, "guarded, beta = 1"),
    ("kec+cae", {"fusion": "adaptive"}, "CAE adaptive weights"),
    ("kec+cae", {"fusion": "kec"}, "[x ; c + a]"),
]


def random_knowledge(kf, seed: int = 1):
    """The reference knowledge's structure with every text vector replaced by a random
    unit vector: knowledge that describes nothing in the data."""
    import dataclasses

    rng = np.random.default_rng(seed)

    def rand(a: np.ndarray) -> np.ndarray:
        r = rng.standard_normal(a.shape).astype(np.float32)
        return r / np.linalg.norm(r, axis=1, keepdims=True)

    z = rand(kf.zeta)
    return dataclasses.replace(kf, zeta=z, name_emb=z, desc_emb=np.zeros_like(z),
                               attr_emb=rand(kf.attr_emb))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench-efficacy"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args(argv)
    size = QUICK if args.quick else FULL
    seeds = [int(s) for s in args.seeds.split(",")]
    cfg = EfficacyConfig(out=args.out, per_class=size["per_class"],
                         vocab_limit=size["vocab_limit"], seeds=tuple(seeds),
                         methods=("kmeans", "kec", "kec+cae"), progress=False)
    bench = EfficacyBench(cfg)
    t0 = time.perf_counter()
    regimes, _, _, _ = bench.prepare()
    from kec.cluster.methods import run_kmeans, run_method
    from kec.cluster.metrics import evaluate

    print(f"prepared in {time.perf_counter() - t0:.1f} s")
    print("| regime | knowledge | method | fusion | ACC | NMI | mode |")
    print("|---|---|---|---|---|---|---|")
    for reg in regimes:
        k = len(reg.class_names)
        km = [evaluate(reg.y, run_kmeans(reg.X, k, random_state=s).labels) for s in seeds]
        print(f"| {reg.name} | - | kmeans | - | "
              f"{100 * np.mean([m['acc'] for m in km]):.1f} ± "
              f"{100 * np.std([m['acc'] for m in km]):.1f} | "
              f"{100 * np.mean([m['nmi'] for m in km]):.1f} ± "
              f"{100 * np.std([m['nmi'] for m in km]):.1f} | |")
        kinds = dict(reg.knowledge)
        kinds["random"] = random_knowledge(kinds["reference"])
        for kind, kf in kinds.items():
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
                print(f"| {reg.name} | {kind} | {method} | {label} | "
                      f"{np.mean(accs):.1f} ± {np.std(accs):.1f} | "
                      f"{np.mean(nmis):.1f} ± {np.std(nmis):.1f} | "
                      f"{'/'.join(sorted(modes))} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
