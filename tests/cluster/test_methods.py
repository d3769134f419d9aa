"""The five methods end to end on small synthetic data with aligned toy knowledge."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kec.cluster import ClusteringInputError, cluster_accuracy, run_method
from kec.cluster.methods import METHOD_NAMES, run_kec, run_kec_cae
from tests.cluster.helpers import toy_world, unit

NAMES = ["apple", "boat", "cloud", "drum"]


@pytest.fixture(scope="module")
def world():
    return toy_world(NAMES, 30, spread=0.5, seed=21)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_every_method_clusters_and_reports(world, name):
    X, y, nouns, captions, kf = world
    res = run_method(name, X, 4, nouns=nouns, captions=captions, knowledge=kf,
                     random_state=0)
    assert res.method == name
    assert res.labels.shape == (120,) and set(res.labels.tolist()) <= set(range(4))
    assert cluster_accuracy(y, res.labels) >= 0.9
    assert all(t >= 0 for t in res.timings.values())
    if name in ("kec", "kec+cae"):  # guarded fusion by default (docs/methods.md §4.3)
        assert "guard" in res.timings and res.params["fusion"] == "guarded"
        assert res.info["guard"]["mode"] in ("data", "refine", "knowledge")
    else:
        assert "cluster" in res.timings
        assert res.params["clusterer"]["implementation"].endswith("SphericalKMeans")
    json.dumps({"params": res.params, "info": res.info, "clusters": res.clusters})
    if name in ("kec", "kec+cae"):
        assert len(res.clusters) == 4 and "naming" in res.timings
    else:
        assert res.clusters is None


@pytest.mark.parametrize("runner", [run_kec, run_kec_cae])
def test_cluster_names_and_explanations(world, runner):
    X, y, _, _, kf = world
    res = runner(X, kf, 4, random_state=0)
    for c in res.clusters:
        members = y[res.labels == c["cluster"]]
        majority = NAMES[np.bincount(members).argmax()]
        assert c["name"] == majority
        assert c["size"] == members.size
        assert c["concepts"][0]["name"] == majority
        assert all(a["score"] >= 0 for a in c["attributes"]) and len(c["attributes"]) == 3
        texts = [a["text"] for a in c["attributes"]]
        partner = res.clusters[c["nearest"]]["name"]
        if {majority, partner} == {"apple", "boat"}:
            assert texts[0] == "apple is round, boat is long"
            assert c["attributes"][0]["kind"] == "pair"
            assert c["attributes"][0]["versus"] == partner
        else:
            assert set(texts[:2]) == {f"{majority} shape", f"{majority} colour"}


def test_method_options(world):
    X, y, nouns, captions, kf = world
    uni = run_kec(X, kf, 4, pair_attributes=False)
    assert uni.params["n_attributes"] == 8
    res = run_kec_cae(X, kf, 4, nouns=nouns, captions=captions, n_overclusters=8,
                      fusion="kec", attribute_mode="elementwise")
    assert {"ot_nouns", "ot_captions", "overcluster"} <= set(res.timings)
    assert res.params["captions"] == "given"
    assert cluster_accuracy(y, res.labels) >= 0.9
    cae = run_method("cae", X, 4, nouns=nouns, n_overclusters=8, fusion="concat",
                     keep_features=True)
    assert cae.features.shape == (120, 32)
    assert set(cae.info["mean_fusion_weights"]) == {"image", "nouns"}
    tac = run_method("tac", X, 4, nouns=nouns, clusterer="agglomerative")
    assert tac.params["clusterer"]["name"] == "agglomerative"


def test_missing_inputs_and_bad_arguments(world):
    X, _, nouns, _, kf = world
    with pytest.raises(ClusteringInputError, match="needs a knowledge file"):
        run_method("kec", X, 4)
    with pytest.raises(ClusteringInputError, match="needs noun features"):
        run_method("cae", X, 4)
    with pytest.raises(ClusteringInputError, match="unknown method"):
        run_method("dec", X, 4)
    with pytest.raises(ClusteringInputError, match="larger than"):
        run_method("kmeans", X[:3], 4)
    with pytest.raises(ClusteringInputError, match="dimension mismatch"):
        run_method("tac", X, 4, nouns=nouns[:, :8])
    with pytest.raises(ClusteringInputError, match="dimension mismatch"):
        run_method("kec", unit(X[:, :8]), 4, knowledge=kf)
    with pytest.raises(ClusteringInputError,
                       match="'clusterer' parameter of run_kmeans must be a str among"):
        run_method("kmeans", X, 4, clusterer="dbscan")
    bad = X.copy()
    bad[2, 2] = np.nan
    with pytest.raises(ClusteringInputError, match="NaN"):
        run_method("kmeans", bad, 4)
