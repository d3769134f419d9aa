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

``--quality`` instead measures knowledge quality on the embedded SmolLM2 (offline):
the same labels built with the v1/v2 prompts and no answer validator (kec 01637ef),
then with the v3 prompts and the placeholder validator; each file is linted
(:mod:`kec.knowledge.lint`, MiniLM) and the placeholder / copy answers are counted.
It also compares label grouping (text similarity at 0.8 vs WordNet + similarity).

    python benchmarks/bench_knowledge.py --quality --labels examples/cifar10.labels.txt
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
from kec.knowledge import read_labels  # noqa: E402
from kec.knowledge.lint import lint_knowledge  # noqa: E402
from kec.llm import BuildParams, KnowledgeBuilder  # noqa: E402
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
    ap.add_argument("--skip-before", action="store_true",
                    help="--quality: only the v3 row (the v1/v2 build takes minutes)")
    ap.add_argument("--quality", action="store_true",
                    help="placeholder/copy counts before and after prompts v3 (see above)")
    args = ap.parse_args()
    if args.quality:
        quality(args)
        return

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


# -- knowledge quality: prompts v1/v2 without validator vs v3 with it ---------------------
OLD_PROMPTS_COMMIT = "01637ef"
GROUPING_17 = [x for g in [["kitten", "cat", "tabby"], ["puppy", "dog", "beagle"],
                          ["car", "automobile"], ["truck", "lorry"],
                          ["sparrow", "finch", "robin"], ["rose", "tulip"], ["airplane"],
                          ["ship"]] for x in g]
GROUPING_17_TRUTH = [["kitten", "cat", "tabby"], ["puppy", "dog", "beagle"],
                     ["car", "automobile"], ["truck", "lorry"], ["sparrow", "finch", "robin"],
                     ["rose", "tulip"], ["airplane"], ["ship"]]


def _old_templates(dest: Path) -> Path:
    """The prompt templates of kec 01637ef (v1, pair v2), from git."""
    import subprocess

    from kec.prompts import BUILTIN_PROMPTS

    for pid in BUILTIN_PROMPTS:
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show",
             f"{OLD_PROMPTS_COMMIT}:kec/prompts/templates/{pid}.json"],
            check=True, capture_output=True, text=True).stdout
        (dest / f"{pid}.json").write_text(text)
    return dest


def _quality_row(name, doc, report, secs):
    c = report.counts()
    attrs = [it for it in report.items if it.kind in ("attribute", "pair_attribute")]
    copies = sum(1 for it in attrs
                 if {"placeholder", "prompt_copy", "repeats_name"} & set(it.flags))
    u = doc["provenance"]["usage"]
    return (f"| {name} | {len(doc['concepts'])} | {len(attrs)} | {copies} | "
            f"{c['placeholder']} | {c['prompt_copy']} | {c['repeats_name']} | "
            f"{c['not_closer']} | {c['not_separating']} | {len(report.flagged)} | "
            f"{u['calls']} | {u['repairs']} | {len(doc['provenance']['failures'])} | "
            f"{secs:.0f} |")


def quality(args) -> None:
    from kec.llm.condense import group_labels
    from kec.vocab import load_wordnet

    labels = read_labels(args.labels)[: args.n_labels]
    sampling = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, seed=0)
    encoder = create_text_encoder("minilm")
    print(f"labels: {len(labels)} from {args.labels.name}; SmolLM2-135M (llama.cpp, in "
          f"process); max_tokens {args.max_tokens}; no captions; {os.cpu_count()} CPU cores\n")
    print("| prompts | concepts | attributes (uni+pair) | placeholder/copy attributes | "
          "placeholder | prompt_copy | repeats_name | not_closer | not_separating | "
          "flagged items | LLM calls | repairs | failures | s |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp, create_backend("llamacpp") as backend:
        old = _old_templates(Path(tmp))
        runs = [("v1/v2, no validator (before)", old, False),
                ("v3 + placeholder validator (after)", None, True)]
        for name, tpl_dir, validate in runs[1:] if args.skip_before else runs:
            params = BuildParams(n_captions=0, grouping="similarity")
            b = KnowledgeBuilder(backend, encoder, cache_dir=Path(tmp) / "cache",
                                 sampling=sampling, params=params, template_dir=tpl_dir,
                                 progress=False)
            import kec.llm.builder as kb

            keep = kb.usable_items
            if not validate:  # kec 01637ef: no validator, every answer kept
                b.runner.validate = None
                kb.usable_items = lambda items, names, captions=False: list(items)
            t0 = time.perf_counter()
            try:
                doc = b.build(labels)
            finally:
                kb.usable_items = keep
            secs = time.perf_counter() - t0
            report = lint_knowledge(doc, encoder.encode)
            print(_quality_row(name, doc, report, secs), flush=True)
            for it in report.items:
                if it.kind in ("attribute", "pair_attribute"):
                    print(f"    {','.join(it.flags) or 'ok':<28} {it.text!r}",
                          file=sys.stderr)

    print("\nlabel grouping (concepts from labels):\n")
    print("| label set | labels | similarity > 0.8 | WordNet + similarity | s (WordNet) |\n"
          "|---|---|---|---|---|")
    wn = load_wordnet()
    sets = {"17 labels of issue 7": GROUPING_17,
            "CIFAR-10": read_labels(ROOT / "examples/cifar10.labels.txt"),
            "CIFAR-100": read_labels(ROOT / "examples/cifar100.labels.txt")}
    for name, labs in sets.items():
        emb = encoder.encode(labs)
        sim = group_labels(labs, emb, threshold=0.8)
        t0 = time.perf_counter()
        both = group_labels(labs, emb, threshold=0.8, wordnet=wn)
        secs = time.perf_counter() - t0
        print(f"| {name} | {len(labs)} | {len(sim.groups)} | {len(both.groups)} | "
              f"{secs:.1f} |")
        merged = [[labs[i] for i in g] for g in both.groups if len(g) > 1]
        print(f"    merged: {merged}", file=sys.stderr)
    print(f"\ntarget for the 17 labels: {len(GROUPING_17_TRUTH)} concepts")
    print(f"peak RSS of this process: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
