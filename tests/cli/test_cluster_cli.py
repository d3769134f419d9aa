"""``kec scaffold`` and ``kec cluster`` end to end on small feature files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from kec.cli.main import main
from kec.cluster import inputs as inputs_module
from kec.features import save_features
from kec.knowledge.document import save_knowledge
from kec.knowledge.labels import read_groups
from kec.report.result import load_result
from tests.cluster.helpers import HashEncoder, blobs
from tests.knowledge.docs import make_doc

NAMES = ["apple", "boat", "cloud"]
ENCODER = {"kind": "test-hash", "model": "hash", "pretrained": None, "dim": 16}


@pytest.fixture()
def files(tmp_path):
    X, y, centres = blobs(20, 3, d=16, spread=0.4, seed=8)
    enc = HashEncoder(dim=16, anchors=dict(zip(NAMES, centres)), weight=2.0)
    images = tmp_path / "images.safetensors"
    save_features(images, X, ids=[f"img{i:03d}.jpg" for i in range(60)], kind="image",
                  encoder=ENCODER, labels=[NAMES[c] for c in y])
    texts = [f"{n} {j}" for n in NAMES for j in range(4)] + ["pebble", "ladder"]
    nouns = tmp_path / "nouns.safetensors"
    save_features(nouns, enc.encode(texts), ids=texts, kind="text", encoder=ENCODER)
    doc = make_doc({n: ([n], [f"{n} shape", f"{n} colour"]) for n in NAMES},
                   [("apple", "boat", ["apples are round"])])
    knowledge = tmp_path / "knowledge.json"
    save_knowledge(doc, knowledge)
    return {"images": images, "nouns": nouns, "knowledge": knowledge, "enc": enc,
            "tmp": tmp_path, "y": y}


def test_scaffold_writes_groups_the_knowledge_builder_reads(files, capsys):
    out = files["tmp"] / "groups.json"
    rc = main(["scaffold", str(files["images"]), str(files["nouns"]), "--out", str(out),
               "--overclusters", "6", "--top-k", "2", "--seed", "1"])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["kind"] == "kec.groups" and doc["version"] == 1
    assert doc["params"]["n_overclusters"] == 6 and doc["params"]["top_k"] == 2
    assert doc["source"]["images"]["n"] == 60 and len(doc["source"]["nouns"]["sha256"]) == 64
    for g in doc["groups"]:
        assert set(g) == {"id", "labels", "size", "members"}
    assert sum(g["size"] for g in doc["groups"]) == 60
    assert read_groups(out) == [g["labels"] for g in doc["groups"]]
    assert "label groups" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["kmeans", "tac", "cae"])
def test_cluster_writes_assignments_and_summary(files, method, capsys):
    out = files["tmp"] / f"result-{method}"
    rc = main(["cluster", str(files["images"]), "--k", "3", "--method", method,
               "--nouns", str(files["nouns"]), "--overclusters", "6", "--out", str(out)])
    assert rc == 0
    with open(out / "assignments.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", "cluster", "label"] and len(rows) == 61
    assert rows[1][0] == "img000.jpg" and rows[1][2] in NAMES
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == method and summary["parameters"]["k"] == 3
    assert summary["metrics"]["acc"] >= 0.9
    assert summary["timings"]["total"] >= summary["timings"]["cluster"] >= 0
    assert summary["inputs"]["features"]["path"] == "../images.safetensors"
    assert len(summary["clusters"]) == 3
    if method != "kmeans":
        assert summary["inputs"]["nouns"]["n"] == 14
    # the GEMM precision of the OT kernel blocks: float64 on the CPU (bfloat16x3 on a GPU)
    assert summary["device"]["ot_matmul"] == (["float64"] if method == "cae" else [])
    result = load_result(out)  # the report reader understands the folder
    assert result.method == method and result.metrics["acc"] == summary["metrics"]["acc"]
    assert "ACC" in capsys.readouterr().out


def test_cluster_kec_names_clusters(files, monkeypatch):
    monkeypatch.setattr(inputs_module, "make_text_encoder", lambda spec: files["enc"])
    out = files["tmp"] / "result-kec"
    rc = main(["cluster", str(files["images"]), "--k", "3", "--method", "kec",
               "--knowledge", str(files["knowledge"]), "--text-encoder", "hash",
               "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"]["knowledge"]["n_concepts"] == 3
    assert sorted(c["name"] for c in summary["clusters"]) == sorted(NAMES)
    assert all(c["attributes"] for c in summary["clusters"])
    result = load_result(out)
    assert sorted(result.info[c].name for c in result.info) == sorted(NAMES)
    for info in result.info.values():
        assert info.majority_label == info.name


def test_cluster_kec_cae_runs(files, monkeypatch):
    monkeypatch.setattr(inputs_module, "make_text_encoder", lambda spec: files["enc"])
    out = files["tmp"] / "result-kc"
    rc = main(["cluster", str(files["images"]), "--k", "3", "--method", "kec+cae",
               "--knowledge", str(files["knowledge"]), "--text-encoder", "hash",
               "--fusion", "concat", "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"]["fusion_mode"] == "concat"
    assert summary["metrics"]["acc"] >= 0.9
    assert summary["device"]["ot_matmul"] == ["float64"]  # the grounding OT solves


def test_cae_takes_captions_from_the_knowledge_file(files, monkeypatch, capsys):
    monkeypatch.setattr(inputs_module, "make_text_encoder", lambda spec: files["enc"])
    doc = json.loads(files["knowledge"].read_text())
    for c in doc["concepts"]:
        c["captions"] = [f"a photo of {c['name']} on a table", f"{c['name']} outdoors"]
    with_captions = files["tmp"] / "k-captions.json"
    save_knowledge(doc, with_captions)
    out = files["tmp"] / "result-cae-k"
    rc = main(["cluster", str(files["images"]), "--k", "3", "--method", "cae",
               "--nouns", str(files["nouns"]), "--knowledge", str(with_captions),
               "--text-encoder", "hash", "--overclusters", "6", "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"]["captions"]["count"] == 6
    # recorded relative to the result folder: no absolute local path in a shared folder
    assert summary["inputs"]["captions"]["from_knowledge"] == "../k-captions.json"
    assert summary["metrics"]["acc"] >= 0.9
    assert "not used" not in capsys.readouterr().err
    # without captions, a concept's description and "<name>, <attribute>" stand in
    # (kec.cluster.inputs.knowledge_captions), as in kec bench; lint drops this file's
    # attributes ("apple shape": a prompt copy) and descriptions, so nothing is left
    argv = ["cluster", str(files["images"]), "--k", "3", "--method", "cae",
            "--nouns", str(files["nouns"]), "--knowledge", str(files["knowledge"]),
            "--text-encoder", "hash", "--overclusters", "6", "--out", str(out)]
    assert main(argv) == 2
    assert "give --captions CAPTIONS.safetensors or --keep-flagged" in capsys.readouterr().err
    assert main([*argv, "--keep-flagged"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"]["captions"]["count"] == 3 * (1 + 2)


def _error(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc != 0
    assert err.startswith("kec: error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    return err


def test_clear_errors(files, capsys, tmp_path):
    img, out = str(files["images"]), str(tmp_path / "r")
    assert "--k 61 is larger than the number of images (60)" in _error(
        capsys, ["cluster", img, "--k", "61", "--out", out])
    assert "needs --knowledge" in _error(capsys, ["cluster", img, "--k", "3", "--method",
                                                  "kec", "--out", out])
    assert "needs --nouns" in _error(capsys, ["cluster", img, "--k", "3", "--method", "tac",
                                              "--out", out])
    # nouns from another encoder / of another dimension
    other = tmp_path / "other.safetensors"
    save_features(other, np.eye(3, 8, dtype=np.float32), ids=["a", "b", "c"], kind="text",
                  encoder={**ENCODER, "dim": 8})
    assert "dimension 16 != 8" in _error(capsys, ["cluster", img, "--k", "3", "--method",
                                                  "tac", "--nouns", str(other), "--out", out])
    assert "dimension 16 != 8" in _error(capsys, ["scaffold", img, str(other), "--out", out])
    # image features with NaN (written without kec's own checks)
    bad = tmp_path / "nan.safetensors"
    feats = np.ones((4, 16), dtype=np.float32)
    feats[2, 3] = np.nan
    meta = {"format": '"kec.features"', "kind": '"image"', "encoder": json.dumps(ENCODER),
            "ids": json.dumps(["a", "b", "c", "d"])}
    save_file({"features": feats}, str(bad), metadata=meta)
    assert "NaN" in _error(capsys, ["cluster", str(bad), "--k", "2", "--out", out])
    # the knowledge encoder must live in the images' space
    assert "give --text-encoder" in _error(
        capsys, ["cluster", img, "--k", "3", "--method", "kec", "--knowledge",
                 str(files["knowledge"]), "--out", out])


def test_text_encoder_dimension_is_checked(files, capsys, monkeypatch):
    monkeypatch.setattr(inputs_module, "make_text_encoder", lambda spec: HashEncoder(dim=8))
    err = _error(capsys, ["cluster", str(files["images"]), "--k", "3", "--method", "kec",
                          "--knowledge", str(files["knowledge"]), "--text-encoder", "x",
                          "--out", str(files["tmp"] / "r")])
    assert "gives 8-d vectors" in err


def test_unused_inputs_warn(files, capsys):
    rc = main(["cluster", str(files["images"]), "--k", "3", "--nouns", str(files["nouns"]),
               "--out", str(files["tmp"] / "r")])
    assert rc == 0
    assert "--nouns is not used by --method kmeans" in capsys.readouterr().err


@pytest.mark.parametrize("opt", [["--reg", "-1"], ["--gamma", "nan"], ["--temperature", "0"],
                                 ["--beta", "-0.5"], ["--beta", "inf"],
                                 ["--ot-cache-gib", "-1"]])
def test_bad_numbers_fail_before_any_work(files, capsys, opt):
    out = files["tmp"] / "never-written"
    rc = main(["cluster", str(files["images"]), "--k", "3", "--method", "cae",
               "--nouns", str(files["nouns"]), *opt, "--out", str(out)])
    assert rc == 2 and not out.exists()
    assert f"{opt[0]} must be a finite number" in capsys.readouterr().err


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_a_bad_seed_is_refused_before_any_work(files, capsys, seed):
    out = files["tmp"] / "never-written"
    with pytest.raises(SystemExit) as exc:
        main(["cluster", str(files["images"]), "--k", "3", "--seed", seed, "--out", str(out)])
    assert exc.value.code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "--seed: a seed must be in [0, 4294967295]" in err and "Traceback" not in err


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("clusterer", ["spectral", "agglomerative"])
@pytest.mark.parametrize("n", [1, 2, 60])
def test_scikit_learn_clusterers_with_k_equal_to_n(files, tmp_path, capsys, clusterer, n):
    path = files["images"]
    if n < 60:
        path = tmp_path / f"n{n}.safetensors"
        save_features(path, np.eye(n, 16, dtype=np.float32),
                      ids=[f"i{j}" for j in range(n)], kind="image", encoder=ENCODER)
    out = tmp_path / "r"
    assert main(["cluster", str(path), "--k", str(n), "--clusterer", clusterer,
                 "--out", str(out)]) == 0
    assert sorted(load_result(out).clusters.tolist()) == list(range(n))


def test_a_run_that_cannot_write_its_summary_leaves_the_previous_run_whole(files, tmp_path):
    """RLIMIT_FSIZE lets assignments.csv through but not summary.json: the folder must keep
    the previous run's pair, never new assignments beside an old summary."""
    import resource
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "result"
    assert main(["cluster", str(files["images"]), "--k", "3", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    limit = len(before["assignments.csv"]) + 64  # the CSV fits, the summary does not
    assert len(before["summary.json"]) > limit

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "kec", "cluster", str(files["images"]), "--k", "2",
         "--seed", "5", "--out", str(out)], preexec_fn=cap, capture_output=True, text=True,
        cwd=tmp_path, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin",
                           "PYTHONDONTWRITEBYTECODE": "1"}, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("kec: error: ") and "File too large" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing mixed, no .tmp
    assert load_result(out).summary["parameters"]["k"] == 3


@pytest.mark.parametrize("change", ["no concepts", "not knowledge"])
def test_unusable_knowledge_is_an_input_error(files, capsys, monkeypatch, change):
    monkeypatch.setattr(inputs_module, "make_text_encoder", lambda spec: files["enc"])
    doc = json.loads(files["knowledge"].read_text())
    if change == "no concepts":
        doc["concepts"], doc["pairs"] = [], []
    else:
        doc = {"kind": "something else", "concepts": "none"}
    bad = files["tmp"] / "bad.json"
    bad.write_text(json.dumps(doc))
    out = files["tmp"] / "never-written"
    rc = main(["cluster", str(files["images"]), "--k", "3", "--method", "kec",
               "--knowledge", str(bad), "--text-encoder", "hash", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"kec: error: {bad} is not usable knowledge: $")
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_identical_features_warn_of_empty_clusters(tmp_path, capsys):
    path = tmp_path / "same.safetensors"
    save_features(path, np.ones((10, 16), np.float32), ids=[f"i{j}" for j in range(10)],
                  kind="image", encoder=ENCODER)
    out = tmp_path / "r"
    assert main(["cluster", str(path), "--k", "3", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    expected = ("2 of the 3 clusters are empty: the 10 feature rows hold only 1 distinct "
                "vector(s), fewer than --k 3")
    assert f"kec: warning: {expected}" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["warnings"] == [expected + " (recorded in summary.json, 'warnings')"]
    assert sorted(c["size"] for c in summary["clusters"]) == [0, 0, 10]


def test_no_warning_when_every_cluster_has_members(files, tmp_path, capsys):
    assert main(["cluster", str(files["images"]), "--k", "3", "--out",
                 str(tmp_path / "r")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["warnings"] == []


@pytest.mark.parametrize(("opts", "said"), [
    (["--method", "kec", "--clusterer", "agglomerative"],
     "--clusterer is not used by fusion 'guarded' (only by 'concat'); leave it at its "
     "default or set --fusion concat"),
    (["--method", "kec", "--fusion", "concat", "--beta", "0.5"],
     "--beta is not used by fusion 'concat'"),
    (["--method", "kec+cae", "--gamma", "0.1"],
     "--gamma is not used by fusion 'guarded' (only by 'adaptive'); leave it at its "
     "default or set --fusion sum"),
])
def test_a_flag_the_chosen_fusion_ignores_is_an_error_before_any_work(files, capsys,
                                                                       opts, said):
    out = files["tmp"] / "never-written"
    err = _error(capsys, ["cluster", str(files["images"]), "--k", "3", *opts,
                          "--knowledge", str(files["knowledge"]), "--out", str(out)])
    assert said in err and "fusion=" not in err, "phrased for the command line"
    assert not out.exists()


def test_a_method_flag_the_method_does_not_take_warns(files, capsys):
    rc = main(["cluster", str(files["images"]), "--k", "3", "--tau", "0.01",
               "--out", str(files["tmp"] / "r")])
    assert rc == 0
    assert "--tau is not used by --method kmeans" in capsys.readouterr().err


def test_spread_ratio_inf_turns_the_spread_check_off(files, capsys, monkeypatch):
    monkeypatch.setattr(inputs_module, "make_text_encoder", lambda spec: files["enc"])
    out = files["tmp"] / "r-inf"
    rc = main(["cluster", str(files["images"]), "--k", "3", "--method", "kec",
               "--knowledge", str(files["knowledge"]), "--text-encoder", "hash",
               "--spread-ratio", "inf", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"]["spread_ratio"] in ("inf", float("inf"), None)
    err = _error(capsys, ["cluster", str(files["images"]), "--k", "3", "--method", "kec",
                          "--knowledge", str(files["knowledge"]), "--beta", "inf",
                          "--out", str(out)])
    assert "--beta must be a finite number >= 0" in err


def test_a_text_collection_is_called_items_in_every_message(files, capsys, caplog,
                                                            monkeypatch):
    """The feature kind is recorded once (the feature file's ``kind``): for a text
    collection scaffold and cluster speak of items, and knowledge built for images is
    flagged (issue 16.7)."""
    from kec.features import load_features

    fs = load_features(files["images"])
    items = files["tmp"] / "tickets.features.safetensors"
    save_features(items, fs.features, ids=[f"{i + 1}:ticket {i}" for i in range(60)],
                  kind="items", encoder=ENCODER, labels=fs.labels)
    out = files["tmp"] / "groups.json"
    assert main(["scaffold", str(items), str(files["nouns"]), "--out", str(out),
                 "--overclusters", "6", "--top-k", "2", "--seed", "1"]) == 0
    said = capsys.readouterr().out
    assert "over-clusters of 60 items)" in said and "image" not in said
    err = _error(capsys, ["cluster", str(items), "--k", "61", "--out",
                          str(files["tmp"] / "r0")])
    assert "number of items (60)" in err and "image" not in err
    doc = json.loads(files["knowledge"].read_text())
    doc["provenance"]["kind"] = "images"
    built_for_images = files["tmp"] / "images.knowledge.json"
    save_knowledge(doc, built_for_images)
    caplog.clear()
    monkeypatch.setattr(inputs_module, "make_text_encoder", lambda spec: files["enc"])
    assert main(["cluster", str(items), "--k", "3", "--method", "kec", "--knowledge",
                 str(built_for_images), "--text-encoder", "hash", "--out",
                 str(files["tmp"] / "r1")]) == 0
    assert "was built for images (kec knowledge build --kind images) but clusters item " \
           "features; rebuild it with --kind items" in caplog.text
    assert "clustered 60 items into 3 clusters" in capsys.readouterr().out
