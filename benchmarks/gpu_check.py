"""One prepared GPU check (issue: one engine for CPU and GPU). Finishes in < 8 min on one GPU.

Runs, each with its peak GPU memory (``torch.cuda.max_memory_allocated``):

1. the CUDA embedding path: open_clip ViT-B-32 (random weights), default precision,
   real JPEG decoding through the DataLoader (``bench_embed.gpu_embed_check``);
2. OT + transported features at 50k × 20k against POT's torch backend in the same run
   (``bench_ot.gpu_ot_check``), then kec's solver alone at 1,281,167 × 20,000;
3. spherical k-means at 1.28M × 512 (``bench_kmeans.gpu_kmeans_check``);
4. the full ``cae`` and ``kec+cae`` methods at 1.28M × 512 with 20k nouns / a 1,000-concept
   knowledge, on ``device="cuda"``;
5. ``kec+cae`` at 1.28M whose guarded fusion finds a nuisance (``step_guard``);
6. ``kec cluster --method cae`` end to end from feature files (``step_cli``; needs the
   CLI's dependencies, e.g. jsonschema, on the machine).

On the device machine (open_clip and POT carried as wheels, see README "GPU")::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site:$PWD python3 benchmarks/gpu_check.py --out $OUT/gpu_check.json

Prints one JSON object per step and writes all of them to ``--out``. A step that fails
is recorded with its error and the script goes on; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _peak_reset() -> None:
    import torch

    if _cuda():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float:
    import torch

    if not _cuda():
        return float("nan")
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def step_embed(args: argparse.Namespace) -> dict[str, Any]:
    from bench_embed import gpu_embed_check

    return gpu_embed_check(args.images, args.device)


def step_ot(args: argparse.Namespace) -> dict[str, Any]:
    from bench_ot import gpu_ot_check

    out = {f"{args.ot_n} x {args.m}": gpu_ot_check(args.ot_n, args.m, 512, args.device,
                                                    pot=True)}
    print(json.dumps(out, default=str), flush=True)
    out[f"{args.n} x {args.m}"] = gpu_ot_check(args.n, args.m, 512, args.device, pot=False)
    return out


def step_kmeans(args: argparse.Namespace) -> dict[str, Any]:
    from bench_kmeans import gpu_kmeans_check

    return gpu_kmeans_check(args.n, 512, args.n // 300, args.device)


def step_methods(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    from bench_ot import clip_like

    from kec.cluster.knowledge_features import KnowledgeFeatures
    from kec.cluster.methods import run_cae, run_kec_cae

    X, nouns = clip_like(args.n, args.m, 512, k=1000, seed=1)
    _, concepts = clip_like(10, 1000, 512, k=1000, seed=2)
    _, attrs = clip_like(10, 2000, 512, k=1000, seed=3)
    kf = KnowledgeFeatures(
        concept_ids=[f"c{i}" for i in range(1000)], names=[f"concept {i}" for i in range(1000)],
        descriptions=[""] * 1000, name_emb=concepts, desc_emb=np.zeros_like(concepts),
        zeta=concepts, attr_texts=[f"attribute {i}" for i in range(2000)], attr_emb=attrs,
        attr_kind=["uni"] * 2000,
        concept_attrs=[np.array([2 * i, 2 * i + 1]) for i in range(1000)], pairs=[])
    out: dict[str, Any] = {}
    for name, run in (("cae", lambda: run_cae(X, nouns, 1000, device=args.device,
                                               clusterer_params={"n_init": 1})),
                      ("kec+cae", lambda: run_kec_cae(X, kf, 1000, device=args.device,
                                                       clusterer_params={"n_init": 1}))):
        _peak_reset()
        t0 = time.perf_counter()
        res = run()
        out[name] = {"seconds": round(time.perf_counter() - t0, 2),
                     "peak_gpu_gib": _peak_gib(), "timings": res.timings,
                     "guard": res.info.get("guard")}
        print(json.dumps({name: out[name]}), flush=True)
    return out


def step_cli(args: argparse.Namespace) -> dict[str, Any]:
    """``kec cluster --method cae`` end to end: feature files in, results out."""
    import subprocess
    import tempfile

    from bench_ot import clip_like

    from kec.features import save_features

    X, nouns = clip_like(args.n, args.m, 512, k=1000, seed=1)
    enc = {"kind": "synthetic", "model": "clip-like", "pretrained": None, "dim": 512}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        save_features(f"{tmp}/img.st", X, ids=[f"i{i}" for i in range(len(X))],
                      kind="image", encoder=enc)
        save_features(f"{tmp}/nouns.st", nouns, ids=[f"noun {j}" for j in range(len(nouns))],
                      kind="text", encoder=enc)
        write_s = time.perf_counter() - t0
        del X, nouns
        cmd = [sys.executable, "-m", "kec", "cluster", f"{tmp}/img.st", "--nouns",
               f"{tmp}/nouns.st", "--method", "cae", "--k", "1000", "--device", args.device,
               "--out", f"{tmp}/out"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        seconds = time.perf_counter() - t0
        out: dict[str, Any] = {"command": " ".join(cmd[1:]), "rc": proc.returncode,
                               "seconds": round(seconds, 1), "write_inputs_s": round(write_s, 1),
                               "stderr_tail": proc.stderr[-1500:]}
        summary = Path(tmp, "out", "summary.json")
        if summary.exists():
            data = json.loads(summary.read_text())
            out["timings"] = data.get("timings")
            out["device"] = data.get("device") or data.get("params", {}).get("device")
    return out


def step_guard(args: argparse.Namespace) -> dict[str, Any]:
    """``kec+cae`` whose guard finds a nuisance, at scale: 100 classes under a stronger
    50-way nuisance, knowledge along the class directions (the ``nuisance`` mode's
    residual, two checked Lloyd refinements and the fused Lloyd run on the device)."""
    import numpy as np

    from kec.cluster.knowledge_features import KnowledgeFeatures
    from kec.cluster.methods import run_kec_cae
    from kec.cluster.metrics import cluster_accuracy

    rng = np.random.default_rng(0)
    d, k, m = 512, 100, 50
    basis = np.linalg.qr(rng.standard_normal((d, k + m)))[0].T.astype(np.float32)
    y = rng.integers(0, k, args.n)
    X = np.empty((args.n, d), dtype=np.float32)
    for s in range(0, args.n, 100_000):
        sl = slice(s, min(s + 100_000, args.n))
        g = rng.integers(0, m, sl.stop - sl.start)
        blk = (2.0 * basis[k + g] + 1.0 * basis[y[sl]]
               + 0.6 * rng.standard_normal((g.size, d)).astype(np.float32) / np.sqrt(d) * 8)
        X[sl] = blk / np.linalg.norm(blk, axis=1, keepdims=True)
    zeta = basis[:k]
    attrs = np.repeat(zeta, 2, axis=0) + 0.3 * rng.standard_normal((2 * k, d)).astype(
        np.float32) / np.sqrt(d) * 8
    attrs /= np.linalg.norm(attrs, axis=1, keepdims=True)
    kf = KnowledgeFeatures(
        concept_ids=[f"c{i}" for i in range(k)], names=[f"class {i}" for i in range(k)],
        descriptions=[""] * k, name_emb=zeta, desc_emb=np.zeros_like(zeta), zeta=zeta,
        attr_texts=[f"attribute {i}" for i in range(2 * k)], attr_emb=attrs,
        attr_kind=["uni"] * (2 * k), concept_attrs=[np.array([2 * i, 2 * i + 1])
                                                     for i in range(k)], pairs=[])
    _peak_reset()
    t0 = time.perf_counter()
    res = run_kec_cae(X, kf, k, device=args.device, clusterer_params={"n_init": 1})
    seconds = time.perf_counter() - t0
    sub = rng.choice(args.n, min(args.n, 200_000), replace=False)
    return {"n": args.n, "k": k, "seconds": round(seconds, 2), "peak_gpu_gib": _peak_gib(),
            "timings": res.timings, "guard": res.info.get("guard"),
            "acc_sample": round(float(cluster_accuracy(y[sub], res.labels[sub])), 4)}


STEPS = {"embed": step_embed, "ot": step_ot, "kmeans": step_kmeans, "methods": step_methods,
         "guard": step_guard, "cli": step_cli}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    ap.add_argument("--steps", default=",".join(STEPS), help="comma-separated steps")
    ap.add_argument("--n", type=int, default=1_281_167, help="rows of the large problems")
    ap.add_argument("--m", type=int, default=20_000, help="nouns (OT columns)")
    ap.add_argument("--ot-n", type=int, default=50_000, help="rows of the OT-vs-POT problem")
    ap.add_argument("--images", type=int, default=12_000, help="JPEGs to embed")
    ap.add_argument("--device", default="cuda",
                    help="cuda (the check); cpu runs the same steps small, as a dry run")
    args = ap.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; nothing to do", file=sys.stderr)
        return 2
    record: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if _cuda() else args.device,
        "torch": torch.__version__, "args": vars(args)}
    failed = False
    for name in args.steps.split(","):
        t0 = time.perf_counter()
        try:
            _peak_reset()
            result = STEPS[name](args)
            record[name] = {"result": result, "wall_s": round(time.perf_counter() - t0, 1),
                            "peak_gpu_gib": _peak_gib()}
        except Exception as exc:  # a failed step is recorded, the others still run
            failed = True
            record[name] = {"error": f"{type(exc).__name__}: {exc}",
                            "traceback": traceback.format_exc(limit=5)}
        print(json.dumps({name: record[name]}, default=str), flush=True)
        args.out.write_text(json.dumps(record, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
