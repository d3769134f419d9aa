"""Benchmark tables: aggregation over seeds and the published numbers beside them."""

from __future__ import annotations

import csv
import io

import pytest

from kec.bench.tables import aggregate, csv_table, markdown_table, published_for

ROWS = [
    {"method": "kmeans", "seed": 0, "status": "ok", "acc": 70.0, "nmi": 60.0, "ari": 50.0,
     "seconds": 1.0},
    {"method": "kmeans", "seed": 1, "status": "ok", "acc": 80.0, "nmi": 62.0, "ari": 54.0,
     "seconds": 3.0},
    {"method": "tac", "seed": 0, "status": "ok", "acc": 90.0, "nmi": 80.0, "ari": 79.0,
     "seconds": 2.0, "note": "a note"},
    {"method": "kec", "seed": 0, "status": "skipped", "note": "no knowledge"},
    {"method": "kec", "seed": 1, "status": "skipped", "note": "no knowledge"},
]


def test_aggregate_mean_std_and_skipped():
    agg = {a["method"]: a for a in aggregate(ROWS)}
    assert list(agg) == ["kmeans", "tac", "kec"]
    km = agg["kmeans"]
    assert km["seeds"] == [0, 1] and km["acc"] == 75.0 and km["acc_std"] == 5.0
    assert km["seconds"] == 2.0 and km["status"] == "ok"
    assert agg["tac"]["acc_std"] == 0.0 and agg["tac"]["note"] == "a note"
    assert agg["kec"]["status"] == "skipped" and agg["kec"]["acc"] is None
    assert agg["kec"]["note"] == "no knowledge" and agg["kec"]["seeds"] == []


def test_published_for_prefers_what_kec_runs():
    assert published_for("cifar10", "tac")["variant"] == "training-free"
    assert published_for("stl10", "tac")["variant"] == "trained head"  # the only one
    assert published_for("cifar10", "kmeans")["metrics"]["acc"] == 74.2
    assert published_for("imagenet", "cae") is None  # relative claims only
    assert published_for("synthetic", "kmeans") is None


def test_markdown_and_csv_put_published_numbers_beside_ours():
    agg = aggregate(ROWS)
    md = markdown_table("cifar10", agg, context={"model": "ViT-B-32-quickgelu / openai"})
    assert "- **model**: ViT-B-32-quickgelu / openai" in md
    assert "| kmeans | 75.0 ± 5.0 | 61.0 ± 1.0 | 52.0 ± 2.0 | 0,1 | 2.0 | 74.2 | 70.3 " \
           "| 61.6 |" in md
    assert "| tac | 90.0 | 80.0 | 79.0 | 0 | 2.0 | 90.5 | 81.4 | 80.3 |" in md
    assert "| kec | skipped: no knowledge |" in md and "| – | 84.1 | – |" in md
    assert "- tac: a note" in md
    assert "trained head" in md and "https://arxiv.org/abs/2310.11989" in md
    rows = list(csv.DictReader(io.StringIO(csv_table("cifar10", agg))))
    assert rows[0]["acc"] == "75.0" and rows[0]["published_acc"] == "74.2"
    assert rows[1]["published_source"].endswith("(training-free)")
    assert rows[2]["status"] == "skipped" and rows[2]["published_nmi"] == "84.1"


@pytest.mark.parametrize("dataset", ["synthetic", "ucf101"])
def test_datasets_without_published_numbers(dataset):
    md = markdown_table(dataset, aggregate(ROWS[:1]))
    assert "none shipped with kec." in md
