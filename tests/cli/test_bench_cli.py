"""``kec bench`` end to end on the generated dataset: random-weight CLIP, the embedded LLM
(SmolLM2 through llama.cpp, offline) for the knowledge, every method, tables, caches,
and ``kec report`` on one of its runs. Nothing is downloaded.

The first run happens once per module (``bench_out``); the other tests copy its folder
so that they can show what a second run reuses.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import pytest

from kec.cli import bench as bench_cli
from kec.cli import report as report_cli
from kec.errors import KecError
from kec.knowledge import load_knowledge, save_knowledge
from tests.conftest import HAS_LLAMA
from tests.knowledge.docs import make_doc

MODEL = ["--model", "ViT-S-32", "--pretrained", "none"]  # random weights, nothing fetched


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kec")
    sub = parser.add_subparsers(dest="command", required=True)
    bench_cli.register(sub)
    report_cli.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def _shapes_knowledge(path: Path) -> Path:
    doc = make_doc({"red circle": (["red circle"], ["round red shape"]),
                    "green square": (["green square"], ["four right-angled corners"]),
                    "blue triangle": (["blue triangle"], ["three straight sides"]),
                    "yellow diamond": (["yellow diamond"], ["a square on its tip"])},
                   [("green square", "yellow diamond", ["a square sits flat"])])
    save_knowledge(doc, path)
    return path


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory) -> Path:
    """One full run: all five methods, seed 0; knowledge from SmolLM2 when installed,
    else from a hand-written knowledge file."""
    base = tmp_path_factory.mktemp("bench")
    argv = ["bench", "synthetic", "--root", str(base / "data"), "--out", str(base / "out"),
            *MODEL, "--vocab", "classes", "--seeds", "0", "--batch-size", "32", "--quiet"]
    if not HAS_LLAMA:
        argv += ["--knowledge", str(_shapes_knowledge(base / "k.json"))]
    assert _run(argv) == 0
    return base / "out"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_bench_writes_tables_runs_and_provenance(bench_out, capsys):
    rows = _rows(bench_out / "results.csv")
    assert [(r["method"], r["seed"], r["status"]) for r in rows] == [
        (m, "0", "ok") for m in ("kmeans", "tac", "kec", "cae", "kec+cae")]
    for r in rows:
        assert 0 <= float(r["acc"]) <= 100 and 0 <= float(r["nmi"]) <= 100
        assert Path(r["run"], "assignments.csv").is_file()
    kmeans = rows[0]
    assert float(kmeans["acc"]) > 60  # coloured shapes separate even with random weights
    md = (bench_out / "summary.md").read_text()
    assert "| method | ACC | NMI | ARI |" in md and "| kec+cae | " in md
    assert "ViT-S-32 / random weights" in md and "classes (4 nouns)" in md
    summary = _rows(bench_out / "summary.csv")
    assert [r["method"] for r in summary] == ["kmeans", "tac", "kec", "cae", "kec+cae"]
    record = json.loads((bench_out / "bench.json").read_text())
    assert record["config"]["seeds"] == [0] and record["k"] == 4
    assert record["encoder"]["model"] == "ViT-S-32" and record["encoder"]["pretrained"] is None
    assert {"torch", "open_clip_torch", "scikit-learn"} <= set(record["environment"]["packages"])
    assert record["dataset"]["name"] == "synthetic" and record["dataset"]["count"] == 24
    assert set(record["timings"]) >= {"embed_images", "embed_nouns", "total"}
    knowledge = load_knowledge(record["knowledge"])
    assert knowledge["concepts"]
    if HAS_LLAMA:  # built here from the scaffold's groups, by the embedded model
        assert knowledge["provenance"]["backend"]["backend"] == "llamacpp"
        groups = json.loads((bench_out / "scaffold" / "groups.json").read_text())
        assert groups["kind"] == "kec.groups" and groups["groups"]
    # every run folder is a kec cluster result that names its clusters
    run = json.loads((bench_out / "runs" / "kec_cae" / "seed0" / "summary.json").read_text())
    assert run["kind"] == "kec.cluster_result" and run["method"] == "kec+cae"
    assert all(c.get("name") for c in run["clusters"] if c["size"])
    # recorded relative to the run folder (a shared folder names no absolute path)
    run_dir = bench_out / "runs" / "kec_cae" / "seed0"
    assert run["inputs"]["knowledge"]["path"] == "../../../knowledge.json"
    assert (run_dir / run["inputs"]["knowledge"]["path"]).resolve() == \
        Path(record["knowledge"]).resolve()


def test_second_run_reuses_features_and_knowledge(bench_out, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(bench_out, out)
    feats = out / "features" / "images.safetensors"
    knowledge = out / "knowledge.json"
    stamps = {p: p.stat().st_mtime_ns for p in (feats, out / "features" / "nouns.safetensors")}
    record = json.loads((out / "bench.json").read_text())
    argv = ["bench", "synthetic", "--root", record["config"]["root"], "--out", str(out),
            *MODEL, "--vocab", "classes", "--seeds", "0,1", "--methods", "kmeans,kec",
            "--batch-size", "32", "--quiet"]
    if not HAS_LLAMA:
        argv += ["--knowledge", record["knowledge"]]
    k_stamp = knowledge.stat().st_mtime_ns if knowledge.exists() else None
    assert _run(argv) == 0
    for p, t in stamps.items():
        assert p.stat().st_mtime_ns == t, f"{p.name} was recomputed"
    if k_stamp is not None:
        assert knowledge.stat().st_mtime_ns == k_stamp, "knowledge was rebuilt"
    new = json.loads((out / "bench.json").read_text())
    assert "embed_images" not in new["timings"] and "knowledge" not in new["timings"]
    rows = _rows(out / "results.csv")
    assert [(r["method"], r["seed"]) for r in rows] == [("kmeans", "0"), ("kmeans", "1"),
                                                        ("kec", "0"), ("kec", "1")]
    assert (out / "runs" / "kec" / "seed1" / "summary.json").is_file()


def test_skip_knowledge_reports_skipped_methods(bench_out, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(bench_out / "features", out / "features")  # cached features only
    record = json.loads((bench_out / "bench.json").read_text())
    assert _run(["bench", "synthetic", "--root", record["config"]["root"], "--out", str(out),
                 *MODEL, "--vocab", "classes", "--seeds", "0", "--skip-knowledge",
                 "--methods", "kmeans,kec,cae", "--quiet"]) == 0
    rows = {r["method"]: r for r in _rows(out / "results.csv")}
    assert rows["kec"]["status"] == "skipped" and "no knowledge" in rows["kec"]["note"]
    assert rows["cae"]["status"] == "ok" and "no captions" in rows["cae"]["note"]
    printed = capsys.readouterr().out
    assert "| kec | skipped" in printed and not (out / "knowledge.json").exists()


def test_report_on_a_bench_run(bench_out, tmp_path):
    page = tmp_path / "report.html"
    assert _run(["report", str(bench_out / "runs" / "kec_cae" / "seed0"), "--out",
                 str(page)]) == 0
    html = page.read_text()
    # thumbnails found through the dataset reference in the feature file: every cluster
    # shows its members, at most 12 (the default --images-per-cluster)
    summary = json.loads((bench_out / "runs" / "kec_cae" / "seed0" / "summary.json").read_text())
    sizes = [c["size"] for c in summary["clusters"]]
    assert sum(sizes) == 24
    assert html.count("data:image/jpeg;base64,") == sum(min(s, 12) for s in sizes)
    assert "Knowledge" in html and "Metrics" in html and "feature scatter" in html


def test_list_and_argument_errors(tmp_path, capsys):
    assert _run(["bench", "--list"]) == 0
    listing = capsys.readouterr().out
    for name in ("cifar20", "imagenet-dogs", "ucf101", "synthetic"):
        assert name in listing
    assert "needs: a local ImageNet-1K" in listing
    with pytest.raises(KecError, match="give a DATASET and --root"):
        _run(["bench", "cifar10"])
    with pytest.raises(KecError, match="unknown method"):
        _run(["bench", "synthetic", "--root", str(tmp_path), "--methods", "kmeans,dbscan"])
    with pytest.raises(KecError, match="pass --download"):
        _run(["bench", "cifar10", "--root", str(tmp_path), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit):  # --knowledge and --skip-knowledge exclude each other
        _run(["bench", "synthetic", "--root", str(tmp_path), "--knowledge", "k.json",
              "--skip-knowledge"])


def test_kmeans_alone_needs_no_nouns_and_no_model(bench_out, tmp_path):
    out = tmp_path / "out"
    (out / "features").mkdir(parents=True)
    shutil.copy(bench_out / "features" / "images.safetensors", out / "features")
    record = json.loads((bench_out / "bench.json").read_text())
    assert _run(["bench", "synthetic", "--root", record["config"]["root"], "--out", str(out),
                 *MODEL, "--methods", "kmeans", "--seeds", "3", "--quiet"]) == 0
    assert "- **vocabulary**: not used" in (out / "summary.md").read_text()
    assert not (out / "features" / "nouns.safetensors").exists()
    new = json.loads((out / "bench.json").read_text())
    assert set(new["timings"]) == {"load_dataset", "total"}  # nothing embedded
    assert [r["seed"] for r in new["results"]] == [3]


def _code(argv: list[str]) -> int:
    """The exit code of `kec ARGV` (argparse's usage errors included)."""
    from kec.cli.main import main

    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize("extra, says", [
    (["--seeds", "0,-1"], "a seed must be in [0, 4294967295]"),
    (["--batch-size", "0"], "--batch-size: must be >= 1"),
    (["--limit-per-class", "0"], "--limit-per-class: must be >= 1"),
    (["--split", "nope"], "has no split 'nope'"),
    (["--captions", "missing.txt"], "--captions missing.txt: no such file"),
])
def test_bad_arguments_fail_before_any_work_and_create_nothing(tmp_path, capsys, extra,
                                                               says):
    root, out = tmp_path / "data", tmp_path / "out"
    assert _code(["bench", "synthetic", "--root", str(root), "--out", str(out), *MODEL,
                  *extra]) == 2
    assert says in capsys.readouterr().err
    assert not root.exists() and not out.exists()


def test_an_unknown_dataset_or_an_out_file_fail_before_anything_is_created(tmp_path, capsys):
    out = tmp_path / "out"
    assert _code(["bench", "no-such-set", "--root", str(tmp_path), "--out", str(out)]) == 2
    assert "unknown dataset 'no-such-set'" in capsys.readouterr().err and not out.exists()
    taken = tmp_path / "taken.txt"
    taken.write_text("mine")
    root = tmp_path / "data"
    assert _code(["bench", "synthetic", "--root", str(root), "--out", str(taken),
                  *MODEL]) == 2
    assert "is an existing file" in capsys.readouterr().err
    assert taken.read_text() == "mine" and not root.exists()


@pytest.mark.parametrize("extra, says", [
    (["--per-class", "0"], "--per-class: must be >= 1"),
    (["--per-class", "3"], "--per-class must be >= 5, got 3"),
    (["--seeds", "-1"], "a seed must be in"),
    (["--vocab-limit", "0"], "--vocab-limit: must be >= 1"),
])
def test_the_efficacy_benchmark_checks_its_arguments_first(tmp_path, capsys, extra, says):
    out = tmp_path / "out"
    assert _code(["bench", "wordnet-glosses", "--out", str(out), *extra]) == 2
    assert says in capsys.readouterr().err and not out.exists()


def _record(met: list[bool], failed: bool = False) -> dict:
    return {"results": [{"status": "failed" if failed else "ok"}],
            "targets": [{"target": f"t{i}", "met": m} for i, m in enumerate(met)],
            "timings": {"total": 1.0}}


def test_the_efficacy_exit_code_reads_the_targets():
    code = bench_cli.efficacy_exit_code
    assert code(_record([True, True])) == 0
    assert code(_record([True, False])) == bench_cli.EXIT_TARGET_MISSED == 5
    assert code(_record([True, False]), check_targets=False) == 0
    assert code(_record([False], failed=True)) == 1  # a failed run says more
    assert code(_record([])) == 0


@pytest.mark.parametrize("flags, expected", [([], 5), (["--no-check-targets"], 0)])
def test_a_missed_target_exits_5_unless_told_not_to_check(tmp_path, capsys, monkeypatch,
                                                          flags, expected):
    """The benchmark itself (minutes) is replaced by a record with one missed target; what
    is tested is the command's reading of ``record["targets"][i]["met"]``."""
    import kec.bench.efficacy as efficacy

    def run(config):
        (config.out / "summary.md").parent.mkdir(parents=True, exist_ok=True)
        (config.out / "summary.md").write_text("| table |\n")
        return _record([True, False])

    monkeypatch.setattr(efficacy, "run_efficacy", run)
    out = tmp_path / "out"
    assert _code(["bench", "wordnet-glosses", "--quick", "--out", str(out), *flags]) \
        == expected
    captured = capsys.readouterr()
    assert "targets met: 1/2" in captured.out
    assert ("1 target(s) not met (exit 5" in captured.err) == (expected == 5)
