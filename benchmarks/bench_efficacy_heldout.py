"""Held-out check of guarded fusion: roots, nuisances and knowledge not used to tune it.

The thresholds and beta of guarded fusion (docs/methods.md §4.3) were chosen on the
efficacy benchmark (``kec bench wordnet-glosses``). This script checks them on 12 other
WordNet roots, in three regimes (clean; the benchmark's prefix contexts; new suffix
contexts), with three knowledge files: one built from WordNet (root name, definition, two
attributes), a wrong one (the benchmark's reference knowledge, about 15 other categories)
and random vectors. Offline (WordNet + MiniLM), about 3 minutes on 2 cores::

    python benchmarks/bench_efficacy_heldout.py

Prints, per regime, k-means and each (knowledge, method) with mean ACC / NMI over seeds
0-2, the guard's modes, and WORSE where a method is more than 1 point below k-means.
"""

import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kec.api import create_text_encoder, embed_knowledge
from kec.bench.efficacy import reference_knowledge_path
from kec.cluster.methods import run_kmeans, run_method
from kec.cluster.metrics import evaluate
from kec.datasets.wordnet_glosses import category_members, load_wordnet_glosses
from kec.knowledge.document import load_knowledge
from kec.vocab import load_wordnet

CANDIDATES = [
    ("fruit", "fruit.n.01"), ("vegetable", "vegetable.n.01"), ("tool", "tool.n.01"),
    ("furniture", "furniture.n.01"), ("mineral", "mineral.n.01"), ("fungus", "fungus.n.01"),
    ("reptile", "reptile.n.01"), ("dance", "dance.n.01"), ("drug", "drug.n.01"),
    ("fabric", "fabric.n.01"), ("container", "container.n.01"), ("vehicle", "vehicle.n.01"),
    ("body part", "body_part.n.01"), ("rock", "rock.n.01"),
]
SUFFIXES = [
    "— as overheard on a crackling late-night radio call-in show.",
    "— noted in the margin of a water-stained library encyclopedia.",
    "— described by a tour guide to a group of bored teenagers.",
    "— typed into a spreadsheet by a tired insurance clerk.",
    "— mentioned in passing in a 1970s science-fiction paperback.",
    "— recited slowly by a robot voice in an airport terminal.",
]
SEEDS = (0, 1, 2)


def wordnet_knowledge(wn, roots):
    """Name, WordNet definition and two attributes per root: decent, hand-free knowledge."""
    concepts = []
    for i, (name, sid) in enumerate(roots):
        s = wn.synset(sid)
        hyper = (s.hypernyms()[0].lemma_names()[0].replace("_", " ") if s.hypernyms()
                 else "thing")
        concepts.append({"id": f"c-{i:010x}", "name": name, "description": s.definition(),
                         "labels": [name],
                         "attributes": [f"a kind of {hyper}", f"related to {name}s"]})
    return {"concepts": concepts, "pairs": []}


def random_like(kf, seed=1):
    rng = np.random.default_rng(seed)

    def rand(a):
        r = rng.standard_normal(a.shape).astype(np.float32)
        return r / np.linalg.norm(r, axis=1, keepdims=True)

    z = rand(kf.zeta)
    return dataclasses.replace(kf, zeta=z, name_emb=z, desc_emb=np.zeros_like(z),
                               attr_emb=rand(kf.attr_emb))


def items(wn, roots, regime):
    col = load_wordnet_glosses("nuisance" if regime == "prefix" else "clean", per_class=60,
                               roots=roots, wn=wn, seed=5)
    texts = col.texts
    if regime == "suffix":
        pick = np.random.default_rng(9).integers(0, len(SUFFIXES), len(texts))
        texts = [f"{t} {SUFFIXES[j]}" for t, j in zip(texts, pick)]
    return texts, col.targets


def mean_scores(y, runs):
    ms = [evaluate(y, r.labels) for r in runs]
    return 100 * np.mean([m["acc"] for m in ms]), 100 * np.mean([m["nmi"] for m in ms])


def main() -> int:
    wn = load_wordnet()
    members = category_members(wn, CANDIDATES)
    roots = [r for r in CANDIDATES if len(members[r[0]]) >= 60][:12]
    print("roots:", ", ".join(r[0] for r in roots))
    enc = create_text_encoder("minilm")
    docs = {"wordnet": wordnet_knowledge(wn, roots),
            "wrong": load_knowledge(reference_knowledge_path())}
    print("| regime | knowledge | method | ACC | NMI | modes (agreement/corroboration) |")
    print("|---|---|---|---|---|---|")
    for regime in ("clean", "prefix", "suffix"):
        texts, y = items(wn, roots, regime)
        X = np.asarray(enc.encode(texts), dtype=np.float32)
        k = len(roots)
        kfs = {name: embed_knowledge(doc, enc, kind="items") for name, doc in docs.items()}
        kfs["random"] = random_like(kfs["wordnet"])
        km_acc, km_nmi = mean_scores(y, [run_kmeans(X, k, random_state=s) for s in SEEDS])
        print(f"| {regime} | - | kmeans | {km_acc:.1f} | {km_nmi:.1f} | |", flush=True)
        for kname, kf in kfs.items():
            for method in ("kec", "kec+cae"):
                runs = [run_method(method, X, k, knowledge=kf, random_state=s) for s in SEEDS]
                acc, nmi = mean_scores(y, runs)
                modes = ", ".join(f"{g['mode']} ({g['agreement']:.2f}/{g['corroboration']})"
                                  for g in (r.info["guard"] for r in runs))
                worse = " WORSE" if acc < km_acc - 1 or nmi < km_nmi - 1 else ""
                print(f"| {regime} | {kname} | {method} | {acc:.1f}{worse} | {nmi:.1f} | "
                      f"{modes} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
