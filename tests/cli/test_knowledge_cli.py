"""`kec knowledge build` end to end: the embedded model, a killed build, failing servers."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from kec.cli.main import main
from kec.knowledge import load_knowledge
from tests.conftest import needs_llama
from tests.servers import FaultServer, Rule

GROUPS = [["cat", "kitten"], ["dog", "puppy"], ["truck", "lorry"], ["ship", "boat"],
          ["frog", "toad"], ["horse", "pony"]]


def _write_groups(path):
    path.write_text(json.dumps({"groups": [{"labels": g} for g in GROUPS]}))
    return path


def _openai_build_args(base_url, groups, out, cache):
    return ["knowledge", "build", "--groups", str(groups), "--out", str(out),
            "--backend", "openai", "--model", "fault-model", "--base-url", base_url,
            "--cache-dir", str(cache), "--max-pairs", "0", "--quiet", "--timeout", "5",
            "--max-retries", "1"]


@needs_llama
@pytest.mark.slow
def test_build_with_the_embedded_default_then_rerun_is_free(tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("# two labels\nairplane\n\nship\n")
    out = tmp_path / "k.json"
    args = ["knowledge", "build", "--labels", str(labels), "--out", str(out),
            "--max-tokens", "64", "--quiet"]
    assert main(args) == 0
    doc = load_knowledge(out)
    assert len(doc["concepts"]) == 2 and len(doc["pairs"]) == 1
    assert doc["provenance"]["backend"]["backend"] == "llamacpp"
    assert doc["labels"]["source"] == str(labels)
    first = capsys.readouterr().err
    assert "wrote" in first and "failures" in first
    assert main(args) == 0
    assert "LLM calls 0 (+" in capsys.readouterr().err
    assert main(["knowledge", "validate", str(out)]) == 0


def test_killed_build_resumes_with_zero_repeated_calls(tmp_path):
    groups = _write_groups(tmp_path / "groups.json")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "kec.cli.main"]
    # reference: one uninterrupted build costs `full` requests
    with FaultServer() as ref:
        assert main(_openai_build_args(ref.base_url, groups, tmp_path / "ref.json",
                                       tmp_path / "ref-cache")) == 0
        full = ref.count
    assert full == 3 * len(GROUPS)  # condense + attributes + captions per concept

    cache = tmp_path / "cache"
    with FaultServer(delay=0.3) as fs:
        proc = subprocess.Popen(cmd + _openai_build_args(fs.base_url, groups, tmp_path / "k.json",
                                                         cache), env=env)
        deadline = time.time() + 60
        while fs.count < full // 2 and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (tmp_path / "k.json").exists()  # nothing half-written
    kept = sum(1 for _ in cache.glob("*/*.json"))
    assert kept >= 1

    with FaultServer() as fs2:
        assert main(_openai_build_args(fs2.base_url, groups, tmp_path / "k.json", cache)) == 0
        assert fs2.count == full - kept  # every cached answer is reused, nothing repeated
    a, b = load_knowledge(tmp_path / "k.json"), load_knowledge(tmp_path / "ref.json")
    assert a["concepts"] == b["concepts"]


def test_failing_items_are_reported_and_the_rest_is_kept(tmp_path, capsys):
    groups = _write_groups(tmp_path / "groups.json")
    rules = [Rule("kitten", ["bad_schema"]), Rule("lorry", ["500"]), Rule("toad", ["drop"])]
    with FaultServer(rules=rules) as fs:
        code = main(_openai_build_args(fs.base_url, groups, tmp_path / "k.json",
                                       tmp_path / "cache"))
    assert code == 0
    doc = load_knowledge(tmp_path / "k.json")
    failures = doc["provenance"]["failures"]
    failed_labels = {tuple(sorted(f["labels"])) for f in failures if f["prompt"] == "condense"}
    assert failed_labels == {("cat", "kitten"), ("lorry", "truck"), ("frog", "toad")}
    schema_failure = next(f for f in failures if "kitten" in f["labels"])
    assert schema_failure["raw"] == '{"unexpected": true}' and schema_failure["attempts"] == 3
    fallbacks = {c["name"] for c in doc["concepts"] if c.get("fallback")}
    assert fallbacks == {"cat", "truck", "frog"}
    good = [c for c in doc["concepts"] if not c.get("fallback")]
    assert len(good) == 3 and all(c["description"] for c in good)
    err = capsys.readouterr().err
    assert "failed: condense" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--labels", "missing.txt"], "labels file not found"),
        (["--labels", "empty.txt"], "no labels"),
        (["--groups", "bad.json"], "not a JSON groups file"),
        (["--labels", "labels.txt", "--n-attributes", "-1"], "attribute counts"),
        (["--labels", "labels.txt", "--pair-mass", "0"], "pair mass"),
        (["--labels", "labels.txt", "--template-dir", "nodir"], "template directory"),
    ],
)
def test_build_bad_input_is_one_clear_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    (tmp_path / "bad.json").write_text("[[1, 2]")
    (tmp_path / "labels.txt").write_text("cat\n")
    code = main(["knowledge", "build", *argv, "--out", "k.json", "--backend", "openai",
                 "--base-url", "http://127.0.0.1:9/v1", "--text-encoder", "nope:x"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "k.json").exists()
