"""Per-seed tables and targets of the efficacy benchmarks (no model needed)."""

from __future__ import annotations

import pytest

from kec.bench.efficacy_report import aggregate, check_targets, markdown


def _rows(method, kind, accs, nmis=None, regime="natural"):
    nmis = nmis or accs
    return [{"regime": regime, "method": method, "knowledge": kind, "seed": s,
             "status": "ok", "acc": a, "nmi": n, "ari": a}
            for s, (a, n) in enumerate(zip(accs, nmis))]


def _targets(rows, zero_shot=60.0, real_text=True):
    summary = aggregate(rows)
    return {t["target"]: t for t in check_targets(
        summary, {"natural": {"acc": zero_shot, "nmi": 50.0, "ari": 40.0}},
        real_text=real_text)}


def test_aggregate_keeps_every_seed_and_the_worst():
    (e,) = aggregate(_rows("kec", "reference", [70.0, 60.0, 65.0]))
    assert e["acc_per_seed"] == [70.0, 60.0, 65.0] and e["acc_min"] == 60.0
    assert e["acc"] == pytest.approx(65.0) and e["seeds"] == [0, 1, 2]


def test_a_method_is_judged_against_kmeans_on_the_same_seed():
    # the means are equal, but seed 1 falls 4 below k-means's seed 1
    rows = _rows("kmeans", "-", [60.0, 70.0]) + _rows("kec", "wrong", [66.0, 66.0])
    t = _targets(rows)
    acc = next(v for k, v in t.items() if k.startswith("natural: kec (wrong) ACC"))
    assert acc["value"] == pytest.approx(-4.0) and not acc["met"] and acc["seed"] == 1
    rows = _rows("kmeans", "-", [60.0, 70.0]) + _rows("kec", "wrong", [59.5, 69.5])
    acc = next(v for k, v in _targets(rows).items()
               if k.startswith("natural: kec (wrong) ACC"))
    assert acc["met"]


def test_real_text_targets_use_the_larger_of_kmeans_and_zero_shot():
    rows = _rows("kmeans", "-", [60.0, 62.0], [50.0, 50.0])
    rows += _rows("kec", "reference", [75.0, 73.0], [54.0, 54.0])
    t = _targets(rows, zero_shot=66.0)
    mean = t["natural: kec (reference) mean ACC >= max(k-means, zero-shot) + 8"]
    worst = t["natural: kec (reference) worst-seed ACC >= max(k-means, zero-shot) + 5"]
    nmi = t["natural: kec (reference) NMI >= k-means + 3"]
    assert (mean["bound"], mean["met"]) == (74.0, True)
    assert (worst["value"], worst["bound"], worst["met"]) == (73.0, 71.0, True)
    assert (nmi["bound"], nmi["met"]) == (53.0, True)
    stab = t["natural: kec (reference) std of ACC <= 2 (2 minus std)"]
    assert stab["met"] and stab["value"] == pytest.approx(1.0)
    assert not any("max(k-means" in k for k in _targets(rows, real_text=False))


def test_an_unstable_method_misses_the_stability_target():
    rows = _rows("kmeans", "-", [60.0] * 4) + _rows("kec", "reference", [80, 60, 80, 60])
    assert not _targets(rows)["natural: kec (reference) std of ACC <= 2 (2 minus std)"]["met"]


def test_markdown_has_a_column_per_seed_and_the_worst_seed():
    rows = _rows("kmeans", "-", [60.0, 62.0]) + _rows("kec", "reference", [75.0, 73.0])
    summary = aggregate(rows)
    record = {"dataset": "foldoc", "kec_version": "x", "config": {"seeds": [0, 1]},
              "sizes": {"natural": {"items": 10, "classes": 2}},
              "zero_shot": {"natural": {"acc": 1.0, "nmi": 1.0, "ari": 1.0}},
              "summary": summary, "targets": check_targets(summary, {}, real_text=True)}
    md = markdown(record)
    assert "| ACC s0 | ACC s1 |" in md and "worst ACC" in md
    assert "| kec | reference | 74.0 ± 1.0 | 73.0 |" in md
