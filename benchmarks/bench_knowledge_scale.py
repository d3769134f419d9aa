"""Inputs of the knowledge plan in docs/scale.md: calls, tokens and seconds per prompt.

Three measurements, each printed and written to ``--json``:

1. **A build with the embedded model** (SmolLM2-135M, in-process llama.cpp, default
   builder parameters, MiniLM + WordNet grouping) on ``--labels``: for each prompt
   (condense, concept_attributes, pair_attributes, captions) the calls, repairs, prompt
   and completion tokens per call, and seconds per call; calls per concept; wall time.
2. **The same build on Ray Data** (``ray-llamacpp``, ``--actors`` actors, Ray's local
   mode): wall time, Ray start-up, and the answers each actor gave. The knowledge is
   compared with build 1's.
3. **The builder's own work between LLM steps** at ``--scaling`` sizes: label grouping
   by text similarity (:func:`kec.llm.condense.group_labels`) and pair selection
   (:func:`kec.knowledge.grouping.select_pairs`) on random unit vectors of MiniLM's
   dimension (384), timed; both hold n x n matrices.
4. **The replica-pool client** (``openai`` backend, ``--replicas`` loopback servers that
   answer at once): requests per second through kec's client alone, at
   ``--pool-concurrency`` requests in flight, so that the plan can tell whether the
   client could ever be the bottleneck.

    python benchmarks/bench_knowledge_scale.py --labels examples/cifar10.labels.txt \\
        --json benchmarks/results/knowledge_scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from kec.backends import create_backend  # noqa: E402
from kec.backends.base import Backend, ChatRequest, ChatResult, ResultCallback  # noqa: E402
from kec.encoders import create_text_encoder  # noqa: E402
from kec.knowledge import read_labels  # noqa: E402
from kec.llm import KnowledgeBuilder  # noqa: E402
from tests.servers import FaultServer  # noqa: E402


class Timed(Backend):
    """Delegates to ``inner`` and records, per prompt (the request's schema name), the
    calls, tokens and the seconds between consecutive answers (per-call latency of a
    sequential backend)."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.model = inner.model
        self.stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def complete(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None
                 ) -> list[ChatResult]:
        last = [time.perf_counter()]

        def note(i: int, res: ChatResult) -> None:
            now = time.perf_counter()
            s = self.stats[requests[i].schema_name]
            s["calls"] += 1
            s["seconds"] += now - last[0]
            s["prompt_tokens"] += res.prompt_tokens
            s["completion_tokens"] += res.completion_tokens
            last[0] = now
            if on_result is not None:
                on_result(i, res)

        return self.inner.complete(requests, on_result=note)

    def close(self) -> None:
        self.inner.close()


def build(backend: Backend, encoder: Any, labels: list[str]) -> tuple[float, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as cache:
        builder = KnowledgeBuilder(backend, encoder, cache_dir=cache, progress=False)
        t0 = time.perf_counter()
        doc = builder.build(labels)
        return time.perf_counter() - t0, doc


def embedded(labels: list[str], encoder: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    backend = Timed(create_backend("llamacpp"))
    wall, doc = build(backend, encoder, labels)
    backend.close()
    per_prompt = {}
    for pid, s in sorted(backend.stats.items()):
        n = s["calls"]
        per_prompt[pid] = {"calls": int(n), "prompt_tokens_per_call": s["prompt_tokens"] / n,
                           "completion_tokens_per_call": s["completion_tokens"] / n,
                           "seconds_per_call": s["seconds"] / n}
    usage = doc["provenance"]["usage"]
    n_concepts = len(doc["concepts"])
    out = {"labels": len(labels), "concepts": n_concepts, "pairs": len(doc["pairs"]),
           "wall_s": wall, "usage": usage, "calls_per_concept": usage["calls"] / n_concepts,
           "per_prompt": per_prompt, "failures": len(doc["provenance"]["failures"])}
    return out, doc


def on_ray(labels: list[str], encoder: Any, actors: int, reference: dict[str, Any]
           ) -> dict[str, Any]:
    t0 = time.perf_counter()
    backend = create_backend("ray-llamacpp", concurrency=actors)
    start = time.perf_counter() - t0
    wall, doc = build(backend, encoder, labels)
    described = backend.describe()
    backend.close()
    return {"actors": actors, "ray_start_s": start, "wall_s": wall,
            "answers_per_actor": described["answers_per_actor"],
            "same_concepts_as_single_process": doc["concepts"] == reference["concepts"],
            "same_pairs_as_single_process": doc["pairs"] == reference["pairs"]}


def scaling(sizes: list[int], dim: int = 384) -> list[dict[str, Any]]:
    import numpy as np

    from kec.knowledge.grouping import select_pairs
    from kec.llm.condense import group_labels

    rows = []
    for n in sizes:
        rng = np.random.default_rng(0)
        emb = rng.standard_normal((n, dim))
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        t0 = time.perf_counter()
        group_labels([f"l{i}" for i in range(n)], emb, threshold=0.8)
        t1 = time.perf_counter()
        select_pairs(emb)
        t2 = time.perf_counter()
        rows.append({"n": n, "group_labels_s": t1 - t0, "select_pairs_s": t2 - t1,
                     "n_by_n_float64_gib": n * n * 8 / 2**30})
        print(json.dumps(rows[-1]))
    return rows


def pool_client(replicas: int, requests: int, concurrency: int) -> dict[str, Any]:
    from kec.backends.openai_backend import OpenAIBackend
    from kec.prompts import load_prompt

    prompt = load_prompt("condense")
    batch = [ChatRequest(prompt.render(labels=[f"label {i}"]), prompt.response_schema)
             for i in range(requests)]
    servers = [FaultServer().start() for _ in range(replicas)]
    try:
        backend = OpenAIBackend("fault-model", base_url=[s.base_url for s in servers],
                                concurrency=concurrency, structured_output="json_object")
        t0 = time.perf_counter()
        results = backend.complete(batch)
        wall = time.perf_counter() - t0
        counts = [s.count for s in servers]
    finally:
        for s in servers:
            s.stop()
    return {"replicas": replicas, "requests": requests, "concurrency": concurrency,
            "wall_s": wall, "requests_per_s": requests / wall,
            "answered": sum(r.ok for r in results), "per_replica": counts}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, default=ROOT / "examples" / "cifar10.labels.txt")
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--pool-requests", type=int, default=2000)
    ap.add_argument("--pool-concurrency", type=int, default=64)
    ap.add_argument("--scaling", type=int, nargs="*", default=[1000, 2000, 4000])
    ap.add_argument("--skip", nargs="*", default=[],
                    choices=["embedded", "ray", "scaling", "pool"])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    record: dict[str, Any] = {"machine": {"cpus": os.cpu_count(),
                                          "load_avg_at_start": os.getloadavg()}}
    if "embedded" not in args.skip or "ray" not in args.skip:
        labels = read_labels(args.labels)
        encoder = create_text_encoder("minilm")
        record["embedded"], doc = embedded(labels, encoder)
        print(json.dumps(record["embedded"], indent=2))
        if "ray" not in args.skip:
            record["ray"] = on_ray(labels, encoder, args.actors, doc)
            print(json.dumps(record["ray"], indent=2))
    if "scaling" not in args.skip:
        record["scaling"] = scaling(args.scaling)
    if "pool" not in args.skip:
        record["pool"] = pool_client(args.replicas, args.pool_requests, args.pool_concurrency)
        print(json.dumps(record["pool"], indent=2))
    record["machine"]["load_avg_at_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
