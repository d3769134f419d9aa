"""Knowledge-build throughput: sequential vs concurrent, cached re-run, calls per concept.

Runs the real builder (MiniLM grouping, SmolLM2 answers) against

* the **real llama.cpp server** (``python -m llama_cpp.server`` with SmolLM2-135M on
  127.0.0.1) through the ``openai`` backend, at concurrency 1 and ``--concurrency``;
* the **in-process llamacpp backend** (the embedded default), the obvious alternative;
* a **loopback latency server** (OpenAI protocol, fixed ``--latency`` per answer, instant
  compute) standing in for a remote API, at concurrency 1 and ``--concurrency``: this is
  where concurrency pays off, since a local 2-core server is compute-bound.

Each configuration builds into an empty cache, then re-runs on the warm cache.

    python benchmarks/bench_knowledge.py --n-labels 20
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from kec.backends import create_backend  # noqa: E402
from kec.backends.base import SamplingParams  # noqa: E402
from kec.encoders import create_text_encoder  # noqa: E402
from kec.knowledge import BuildParams, KnowledgeBuilder, read_labels  # noqa: E402
from tests.servers import FaultServer, llama_server  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(backend, encoder, labels, cache_dir, sampling, params):
    builder = KnowledgeBuilder(backend, encoder, cache_dir=cache_dir, sampling=sampling,
                               params=params, progress=False)
    t0 = time.perf_counter()
    doc = builder.build(labels)
    return time.perf_counter() - t0, doc


def row(name, conc, cold, warm, doc):
    u = doc["provenance"]["usage"]
    q = len(doc["concepts"])
    tokens = u["prompt_tokens"] + u["completion_tokens"]
    return (f"| {name} | {conc} | {q} | {len(doc['pairs'])} | {u['calls']} | "
            f"{u['calls'] / q:.2f} | {cold:.1f} | {u['calls'] / cold:.2f} | "
            f"{tokens / cold:.0f} | {warm:.2f} | {len(doc['provenance']['failures'])} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", type=Path, default=ROOT / "examples/cifar100.labels.txt")
    ap.add_argument("--n-labels", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--latency", type=float, default=0.25, help="loopback server s/answer")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--skip-server", action="store_true")
    args = ap.parse_args()

    labels = read_labels(args.labels)[: args.n_labels]
    sampling = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, seed=0)
    params = BuildParams()
    t0 = time.perf_counter()
    encoder = create_text_encoder("minilm")
    print(f"labels: {len(labels)} from {args.labels.name}; MiniLM loaded in "
          f"{time.perf_counter() - t0:.1f} s; max_tokens {args.max_tokens}; "
          f"{os.cpu_count()} CPU cores\n")
    header = ("| backend | concurrency | concepts | pairs | LLM calls | calls/concept | "
              "cold s | calls/s | tokens/s | cached re-run s | failures |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []

    def measure(name, make_backend, conc):
        with tempfile.TemporaryDirectory() as cache, make_backend() as backend:
            cold, doc = run(backend, encoder, labels, cache, sampling, params)
            warm, doc2 = run(backend, encoder, labels, cache, sampling, params)
            assert doc2["provenance"]["usage"]["calls"] == 0
            rows.append(row(name, conc, cold, warm, doc))
            print(rows[-1], flush=True)

    print(header)
    measure("llamacpp in-process", lambda: create_backend("llamacpp"), 1)
    if not args.skip_server:
        with llama_server() as url:
            for conc in (1, args.concurrency):
                measure("openai → llama.cpp server", lambda c=conc: create_backend(
                    "openai", model="smollm2", base_url=url, concurrency=c, timeout=120), conc)
    with FaultServer(delay=args.latency) as fs:
        for conc in (1, args.concurrency * 2):
            measure(f"openai → loopback {args.latency:.2f} s/answer", lambda c=conc:
                    create_backend("openai", model="fault-model", base_url=fs.base_url,
                                   concurrency=c), conc)
    print(f"\npeak RSS of this process: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
