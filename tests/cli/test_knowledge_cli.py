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
    assert main(args) == 0  # a first build on an ordinary list ends with exit 0 (issue 17)
    doc = load_knowledge(out)
    assert len(doc["concepts"]) == 2 and len(doc["pairs"]) == 1
    assert doc["provenance"]["backend"]["backend"] == "llamacpp"
    assert doc["labels"]["source"] == str(labels)
    assert doc["provenance"]["failures"] == []
    first = capsys.readouterr().err
    assert "wrote" in first and "failures 0" in first
    assert main(args) == 0
    again = capsys.readouterr().err
    if not doc["provenance"]["fallbacks"]:
        assert "LLM calls 0 (+" in again
    else:  # the items that fell back are asked again, with new seeds
        assert int(again.split("LLM calls ")[1].split(" ")[0]) > 0
    assert main(["knowledge", "validate", str(out)]) == 0
    # the linter runs on what the embedded default writes (exit 0 clean, 1 flagged)
    assert main(["knowledge", "lint", str(out)]) in (0, 1)
    assert "items flagged" in capsys.readouterr().out


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

    # the server comes back on its port (the endpoint is part of the cache key)
    with FaultServer(port=int(fs.base_url.split(":")[2].split("/")[0])) as fs2:
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
    assert code == 3  # written, but incomplete: BuildFailuresError (issue 9 item 1)
    doc = load_knowledge(tmp_path / "k.json")
    prov = doc["provenance"]
    # no answer at all: a failure (exit 3); only invalid answers: a fallback (issue 17)
    failed_labels = {tuple(sorted(f["labels"])) for f in prov["failures"]
                     if f["prompt"] == "condense"}
    assert failed_labels == {("lorry", "truck"), ("frog", "toad")}
    invalid = next(f for f in prov["fallbacks"] if "kitten" in f["labels"]
                   and f["prompt"] == "condense")
    assert invalid["raw"] == '{"unexpected": true}' and invalid["attempts"] == 3
    assert invalid["reason"] == "breaks the schema at $ (required)"
    fallbacks = {c["name"] for c in doc["concepts"] if c.get("fallback")}
    assert fallbacks == {"cat", "truck", "frog"}  # the WordNet kind, else the first label
    good = [c for c in doc["concepts"] if not c.get("fallback")]
    assert len(good) == 3 and all(c["description"] for c in good)
    err = capsys.readouterr().err
    assert "failed: condense" in err and "fallback: condense cat, kitten" in err
    assert "Traceback" not in err
    # one short line per item: no raw answer, no JSON on the terminal
    assert '"unexpected"' not in err
    for line in err.splitlines():
        if line.startswith(("  failed:", "  fallback:")):
            assert len(line) < 240 and "{" not in line, line


def test_only_invalid_answers_exit_0_and_are_counted(tmp_path, capsys):
    """A model that answers, but badly, for one item: the build ends with exit 0, the
    item filled from WordNet and counted in the summary line (issue 17)."""
    groups = _write_groups(tmp_path / "groups.json")
    with FaultServer(rules=[Rule("kitten", ["bad_schema"])]) as fs:
        code = main(_openai_build_args(fs.base_url, groups, tmp_path / "k.json",
                                       tmp_path / "cache"))
    err = capsys.readouterr().err
    assert code == 0, err
    summary = next(line for line in err.splitlines() if line.startswith("wrote "))
    assert "failures 0" in summary and "fallbacks " in summary and "wordnet)" in summary
    assert "a re-run asks for them again with new seeds" in err
    doc = load_knowledge(tmp_path / "k.json")
    cat = next(c for c in doc["concepts"] if "kitten" in c["labels"])
    assert cat["fallback"] and "feline mammal" in cat["description"]  # WordNet's words


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


# -- lint, validate, label checks (issue 7 item 4, issue 9 items 13-15) -----------------
EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def _build_example(tmp_path, labels="cifar10.labels.txt"):
    """The README example's labels, built through the loopback server (fast, offline)."""
    out = tmp_path / "example.knowledge.json"
    with FaultServer() as fs:
        code = main(["knowledge", "build", "--labels", os.path.join(EXAMPLES, labels),
                     "--out", str(out), "--backend", "openai", "--model", "fault-model",
                     "--base-url", fs.base_url, "--cache-dir", str(tmp_path / "cache"),
                     "--quiet", "--n-captions", "0"])
    assert code == 0
    return out


def test_lint_runs_on_the_shipped_example_and_documents_its_exit_code(tmp_path, capsys):
    out = _build_example(tmp_path)
    capsys.readouterr()
    code = main(["knowledge", "lint", str(out), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == (0 if report["clean"] else 1)
    doc = load_knowledge(out)
    n_attr = sum(len(c["attributes"]) for c in doc["concepts"])
    n_pair = sum(len(p["attributes"]) for p in doc["pairs"])
    kinds = report["items_by_kind"]
    assert kinds.get("attribute", 0) == n_attr and kinds.get("pair_attribute", 0) == n_pair
    assert kinds["name"] == len(doc["concepts"]) == 10
    assert report["embedded"] is True and report["encoder"] == "minilm"
    # text output: one summary line at the end
    code2 = main(["knowledge", "lint", str(out), "--encoder", "none"])
    text = capsys.readouterr().out
    assert "items flagged" in text.splitlines()[-1] and code2 in (0, 1)


def test_lint_exits_1_when_something_is_flagged_and_0_when_clean(tmp_path, capsys):
    from kec.knowledge.document import save_knowledge
    from tests.knowledge.docs import make_doc

    bad = make_doc({"cat": (["cat"], ["A", "whiskers"]), "dog": (["dog"], ["shape"])}, [])
    for c in bad["concepts"]:
        c["description"] = ""
    save_knowledge(bad, tmp_path / "bad.json")
    assert main(["knowledge", "lint", str(tmp_path / "bad.json"), "--encoder", "none"]) == 1
    out = capsys.readouterr().out
    assert "placeholder" in out and "'A'" in out and "prompt_copy" in out
    good = make_doc({"cat": (["cat"], ["whiskers"]), "dog": (["dog"], ["floppy ears"])}, [])
    for c in good["concepts"]:
        c["description"] = ""
    save_knowledge(good, tmp_path / "good.json")
    assert main(["knowledge", "lint", str(tmp_path / "good.json"), "--encoder", "none"]) == 0
    assert main(["knowledge", "lint", str(tmp_path / "missing.json")]) == 2


@pytest.mark.parametrize("content", [
    "not json {",
    '{"schema_version": "1.0", "kind": "kec.knowledge"}',  # JSON, but not valid knowledge
    "[[\"cat\", \"kitten\"]]",  # a groups list
])
def test_lint_and_diff_on_an_unusable_file_exit_2(tmp_path, capsys, content):
    """Exit 1 of lint means "flagged" and of diff "they differ": a file that cannot be
    read as knowledge is an input error (exit 2), said in one clear message."""
    from kec.knowledge.document import save_knowledge
    from tests.knowledge.docs import make_doc

    bad = tmp_path / "bad.json"
    bad.write_text(content)
    good = tmp_path / "good.json"
    save_knowledge(make_doc(), good)
    assert main(["knowledge", "lint", str(bad), "--encoder", "none"]) == 2
    assert main(["knowledge", "diff", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err


def test_lint_without_concepts_loads_no_encoder(tmp_path, capsys, monkeypatch):
    import kec.encoders
    from kec.knowledge.document import save_knowledge
    from tests.knowledge.docs import make_doc

    def no_load(spec):
        raise AssertionError(f"loaded the encoder {spec}")

    monkeypatch.setattr(kec.encoders, "create_text_encoder", no_load)
    empty = make_doc()
    empty["concepts"], empty["pairs"] = [], []
    save_knowledge(empty, tmp_path / "empty.json")
    assert main(["knowledge", "lint", str(tmp_path / "empty.json")]) == 0
    assert "0 of 0 items flagged" in capsys.readouterr().out


def test_validate_a_file_nested_200000_deep_is_a_clear_error(tmp_path, capsys):
    from tests.knowledge.docs import make_doc

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    assert main(["knowledge", "validate", str(deep)]) == 1
    err = capsys.readouterr().err
    assert "JSON nested too deeply to read" in err and "Traceback" not in err
    assert main(["knowledge", "show", str(deep)]) == 1
    assert "nested too deeply" in capsys.readouterr().err
    # readable JSON, schema-valid, but nested 500 deep where the schema allows any
    # object: rejected before code that recurses (deepcopy, merge) can crash on it
    doc = make_doc()
    doc["provenance"]["parameters"] = json.loads('{"a": ' * 500 + "1" + "}" * 500)
    deep_doc = tmp_path / "deep_doc.json"
    deep_doc.write_text(json.dumps(doc))
    assert main(["knowledge", "validate", str(deep_doc)]) == 1
    err = capsys.readouterr().err
    assert "nested more than 64 levels" in err and "Traceback" not in err
    assert main(["knowledge", "merge", str(deep_doc), str(deep_doc), "--out",
                 str(tmp_path / "m.json")]) == 1
    assert "nested more than 64 levels" in capsys.readouterr().err


def test_validate_a_groups_file_says_so(tmp_path, capsys):
    groups = _write_groups(tmp_path / "groups.json")
    scaffold = tmp_path / "scaffold.json"
    scaffold.write_text(json.dumps({"kind": "kec.groups", "version": 1,
                                    "groups": [{"id": "g0", "labels": ["cat"], "size": 3}]}))
    for path in (groups, scaffold):
        assert main(["knowledge", "validate", str(path)]) == 1
        err = capsys.readouterr().err
        assert "groups file" in err and "--groups" in err and "Traceback" not in err


@pytest.mark.parametrize("content, message", [
    ("cat\n\x00\n", "empty once control and format"),
    ("cat\n\u200b\u200f\n", "empty once control and format"),
    ("cat\n" + "z" * 1_000_000 + "\n", "longer than 200"),
])
def test_bad_labels_fail_before_any_llm_call(tmp_path, capsys, content, message):
    labels = tmp_path / "labels.txt"
    labels.write_text(content, encoding="utf-8")
    with FaultServer() as fs:
        code = main(["knowledge", "build", "--labels", str(labels), "--out",
                     str(tmp_path / "k.json"), "--backend", "openai", "--model", "m",
                     "--base-url", fs.base_url, "--cache-dir", str(tmp_path / "c")])
        assert fs.requests == []
    err = capsys.readouterr().err
    assert code == 2 and message in err and "line 2" in err and len(err) < 2000


def test_a_zero_width_variant_joins_its_label(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ncat\u200b\n\u200fdog\n", encoding="utf-8")
    out = tmp_path / "k.json"
    with FaultServer() as fs:
        assert main(["knowledge", "build", "--labels", str(labels), "--out", str(out),
                     "--backend", "openai", "--model", "m", "--base-url", fs.base_url,
                     "--cache-dir", str(tmp_path / "c"), "--quiet", "--grouping",
                     "similarity", "--text-encoder", "minilm", "--n-captions", "0"]) == 0
    doc = load_knowledge(out)
    assert doc["labels"]["items"] == ["cat", "dog"]
    assert doc["provenance"]["grouping"]["method"] == "similarity"


@pytest.mark.parametrize("make_out", [
    lambda tmp: tmp,  # an existing directory
    lambda tmp: (tmp / "file.txt").write_text("x") and tmp / "file.txt" / "k.json",  # under a file
])
def test_bad_output_path_fails_before_any_llm_call(tmp_path, capsys, make_out):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    out = make_out(tmp_path)
    with FaultServer() as fs:
        code = main(["knowledge", "build", "--labels", str(labels), "--out", str(out),
                     "--backend", "openai", "--model", "m", "--base-url", fs.base_url,
                     "--cache-dir", str(tmp_path / "c")])
        assert fs.requests == []
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and str(out) in err
