"""``kec cluster --distributed`` under ``torchrun`` (2 processes, gloo) on a sharded set."""

from __future__ import annotations

import json

import pytest

from kec.cli.main import main
from kec.cluster import inputs as inputs_module
from kec.feature_shards import save_feature_shards
from kec.features import save_features
from kec.knowledge.document import save_knowledge
from tests.cluster.helpers import HashEncoder, blobs
from tests.cluster.test_distributed import ROOT, torchrun
from tests.knowledge.docs import make_doc

dist = pytest.importorskip("torch.distributed")
NAMES = ["apple", "boat", "cloud", "drum", "eagle"]
ENCODER = {"kind": "test-hash", "model": "hash", "pretrained": None, "dim": 16}
TORCHRUN_ENV = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0",
                "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """300 labelled images as a sharded set of 5 shards, nouns, knowledge, and a text
    cache filled by one single-process run, so the ranks load no model."""
    tmp = tmp_path_factory.mktemp("cli-dist")
    X, y, centres = blobs(60, 5, d=16, spread=0.6, seed=7)
    save_feature_shards(tmp / "images", X, ids=[f"img{i:03d}.jpg" for i in range(300)],
                        kind="image", encoder=ENCODER, labels=[NAMES[c] for c in y],
                        shard_rows=70)
    enc = HashEncoder(dim=16, anchors=dict(zip(NAMES, centres)), weight=2.0)
    texts = [f"{n} {j}" for n in NAMES for j in range(4)] + ["pebble", "ladder"]
    save_features(tmp / "nouns.safetensors", enc.encode(texts), ids=texts, kind="text",
                  encoder=ENCODER)
    save_knowledge(make_doc({n: ([n], [f"{n} shape", f"{n} colour"]) for n in NAMES},
                            [("apple", "boat", ["apples are round"])]), tmp / "k.json")
    return tmp, enc


def _args(tmp, method, out):
    args = ["cluster", str(tmp / "images"), "--k", "5", "--method", method,
            "--nouns", str(tmp / "nouns.safetensors"), "--out", str(out)]
    if method in ("kec", "kec+cae"):
        args += ["--knowledge", str(tmp / "k.json"), "--text-encoder", "hash",
                 "--cache-dir", str(tmp / "cache")]
    return args


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                    reason="torch.distributed with gloo is not available")
@pytest.mark.parametrize("method", ["kmeans", "kec+cae"])
def test_two_ranks_write_the_result_of_one_process(inputs, method, monkeypatch):
    tmp, enc = inputs
    monkeypatch.setattr(inputs_module, "make_text_encoder", lambda spec: enc)
    ref = tmp / f"ref-{method}"
    assert main(_args(tmp, method, ref)) == 0
    out = tmp / f"dist-{method}"
    proc = torchrun(ROOT / "kec" / "__main__.py", *_args(tmp, method, out), "--distributed")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("clustered 300 images") == 1  # rank 0 alone reports
    # the same files (rank 1 writes nothing), the same assignments
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref.iterdir())
    assert (out / "assignments.csv").read_bytes() == (ref / "assignments.csv").read_bytes()
    a, b = (json.loads((d / "summary.json").read_text()) for d in (ref, out))
    assert b["clusters"] == a["clusters"] and b["metrics"] == a["metrics"]
    info = b["info"]["distributed"]
    assert info["world_size"] == 2 and info["backend"] == "gloo"
    assert info["all_reduces"] > 0 and info["bytes_all_reduced"] > 0
    assert "distributed" not in a["info"]


def test_distributed_outside_torchrun_is_one_line(inputs, capsys, monkeypatch):
    tmp, _ = inputs
    for var in TORCHRUN_ENV:
        monkeypatch.delenv(var, raising=False)
    out = tmp / "never"
    assert main([*_args(tmp, "kmeans", out), "--distributed"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "runs under torchrun" in err and "RANK" in err
    assert not out.exists()


@pytest.mark.parametrize("extra, message", [
    (["--method", "tac"], "supports --method kmeans, cae, kec, kec+cae"),
    (["--clusterer", "agglomerative"], "needs --clusterer kmeans"),
    (["--ot-method", "sinkhorn"], "needs --ot-method"),
    (["--ot-method", "partial"], "needs --ot-method"),
])
def test_options_that_run_in_one_process_are_refused(inputs, capsys, monkeypatch, extra,
                                                     message):
    tmp, _ = inputs
    for var, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(var, value)
    out = tmp / "never"
    assert main([*_args(tmp, "kmeans", out), *extra, "--distributed"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err
    assert not out.exists()

