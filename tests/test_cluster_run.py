"""``kec.run_clustering`` and ``kec.write_result``: ``kec cluster`` as a library call,
so a notebook gets the command's result folder without copying its handler."""

import json

import numpy as np
import pytest

import kec
from kec.cli.main import main
from kec.cluster.methods import run_method
from kec.errors import KecError
from kec.features import save_features
from kec.knowledge import save_knowledge
from kec.report.result import load_result
from tests.cli.test_cluster_cli import ENCODER, NAMES
from tests.cluster.helpers import HashEncoder, blobs
from tests.knowledge.docs import make_doc


@pytest.fixture()
def images(tmp_path):
    X, y, _ = blobs(20, 3, d=16, spread=0.4, seed=8)
    path = tmp_path / "images.safetensors"
    save_features(path, X, ids=[f"img{i:03d}.jpg" for i in range(60)], kind="image",
                  encoder=ENCODER, labels=[NAMES[c] for c in y])
    return path, X


def _same_summary(a: dict, b: dict) -> None:
    for key in ("method", "parameters", "metrics", "clusters", "warnings", "info",
                "assignments"):
        assert a[key] == b[key], key
    assert a["inputs"]["features"] == b["inputs"]["features"]


def test_run_clustering_writes_what_kec_cluster_writes(images, tmp_path, capsys):
    path, X = images
    run = kec.run_clustering(path, k=3, method="kmeans", seed=4, device="cpu")
    assert isinstance(run, kec.ClusterRun)
    np.testing.assert_array_equal(
        run.result.labels, run_method("kmeans", X, 3, random_state=4).labels)
    assert run.metrics["acc"] > 0.9 and run.kind == "images"
    kec.write_result(run, tmp_path / "api")
    assert main(["cluster", str(path), "--k", "3", "--seed", "4", "--device", "cpu",
                 "--out", str(tmp_path / "cli")]) == 0
    assert capsys.readouterr().out.startswith(run.line())
    api = json.loads((tmp_path / "api" / "summary.json").read_text())
    cli = json.loads((tmp_path / "cli" / "summary.json").read_text())
    _same_summary(api, cli)
    assert (tmp_path / "api" / "assignments.csv").read_bytes() == \
        (tmp_path / "cli" / "assignments.csv").read_bytes()
    assert load_result(tmp_path / "api").method == "kmeans"


def test_run_clustering_with_knowledge_names_the_clusters(images, tmp_path):
    path, _ = images
    enc = HashEncoder(dim=16)
    doc = make_doc({n: ([n], [f"{n} shape"]) for n in NAMES}, [])
    save_knowledge(doc, tmp_path / "k.json")
    run = kec.run_clustering(path, k=3, method="kec", knowledge=tmp_path / "k.json",
                             text_encoder=enc, cache=False, seed=0,
                             params={"fusion": "concat"})
    assert run.result.params["fusion"] == "concat"
    assert {c["name"] for c in run.summary()["clusters"]} <= set(NAMES)
    assert "knowledge" in run.inputs


def test_run_clustering_errors_name_the_arguments(images):
    path, _ = images
    with pytest.raises(KecError, match="n_clusters 61 is larger than the number of images"):
        kec.run_clustering(path, k=61)
    with pytest.raises(KecError, match="--k 61 is larger"):
        kec.run_clustering(path, k=61, phrasing="cli")
    with pytest.raises(KecError, match=r"'clusterer' parameter of run_kmeans must be"):
        kec.run_clustering(path, k=3, params={"clusterer": "dbscan"})
