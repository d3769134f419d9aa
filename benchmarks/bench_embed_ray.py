"""Embedding scaling on one machine: one process against Ray Data with 1 and 2 actors.

Runs the real ``kec embed images`` and ``kec embed collection`` commands (in this
process, Ray started once with ``--cpus`` CPUs) on

- ``--images`` photo-like 500x375 JPEGs (``bench_embed.make_jpegs``), ViT-B-32 with
  random weights at fp32 (the README's default model; nothing is downloaded);
- ``--texts`` support-ticket-like lines, all-MiniLM-L6-v2 (offline),

each with ``--engine local`` (one process: torch uses every core, JPEGs decoded by
DataLoader workers) and ``--engine ray --workers 1`` and ``--workers 2`` (each actor
gets ``cores / workers`` torch threads; decoding runs in Ray tasks).

Each configuration runs once; ``wall_s`` is the whole command (model loading and, for
Ray, actor start included: the fixed cost a short run pays), and the 1-minute load
average is recorded before and after it (the machine is shared: a load above the core
count means the numbers are a lower bound). The rows of the Ray runs are compared with
the local run's (max absolute difference; 0.0 means bit for bit: the thread count can
change a matrix product's rounding, see ``tests/encoders/test_ray_engine.py``).

    .venv/bin/python benchmarks/bench_embed_ray.py --images 512 --texts 8000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _run(argv: list[str]) -> float:
    from kec.cli.main import main

    start = time.perf_counter()
    rc = main(argv)
    if rc != 0:
        raise SystemExit(f"kec {' '.join(argv)} exited {rc}")
    return time.perf_counter() - start


def _configs(kind: str, src: str, out: Path) -> list[dict[str, Any]]:
    from kec.features import load_features

    if kind == "images":
        base = ["embed", "images", src, "--model", "ViT-B-32", "--pretrained", "none",
                "--device", "cpu", "--batch-size", "32", "--quiet"]
    else:
        base = ["embed", "collection", src, "--device", "cpu", "--batch-size", "128",
                "--quiet"]
    runs = [("local (1 process)", ["--checkpoint-rows", "0"]),
            ("ray, 1 actor", ["--engine", "ray", "--workers", "1"]),
            ("ray, 2 actors", ["--engine", "ray", "--workers", "2"])]
    results = []
    reference = None
    for k, (name, extra) in enumerate(runs):
        target = out / (f"{kind}-{k}" + (".safetensors" if extra[0] != "--engine" else ""))
        load_before = os.getloadavg()[0]
        wall = _run([*base, *extra, "--out", str(target)])
        fs = load_features(target)
        row = {"kind": kind, "engine": name, "n": len(fs), "wall_s": round(wall, 2),
               "per_s": round(len(fs) / wall, 1), "load_before": round(load_before, 2),
               "load_after": round(os.getloadavg()[0], 2)}
        if reference is None:
            reference = fs.features
        else:
            row["max_abs_diff_vs_local"] = float(abs(fs.features - reference).max())
        results.append(row)
        print(json.dumps(row), flush=True)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--texts", type=int, default=8000)
    ap.add_argument("--cpus", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()

    import ray
    from bench_embed import make_jpegs

    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        make_jpegs(tmp_path / "jpegs", args.images)
        topics = ("printer jams", "login fails after the update", "wifi drops")
        (tmp_path / "texts.txt").write_text("".join(
            f"ticket {i}: {topics[i % 3]} on floor {i % 7}{' again' * (i % 4)}"
            f"\t{('HW', 'SW', 'NET')[i % 3]}\n" for i in range(args.texts)))
        rows += _configs("images", str(tmp_path / "jpegs"), tmp_path)
        rows += _configs("texts", str(tmp_path / "texts.txt"), tmp_path)
    ray.shutdown()
    print(f"\n{args.cpus} CPUs for Ray; load average at the end "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'kind':<7} {'engine':<18} {'n':>6} {'wall s':>7} {'per s':>7} {'load':>11}")
    for r in rows:
        print(f"{r['kind']:<7} {r['engine']:<18} {r['n']:>6} {r['wall_s']:>7} {r['per_s']:>7} "
              f"{r['load_before']:>5}-{r['load_after']:<5}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
