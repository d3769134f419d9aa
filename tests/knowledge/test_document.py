import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kec.cli.main import main
from kec.errors import InvalidKnowledgeError
from kec.knowledge.document import (
    concept_id,
    diff_knowledge,
    dumps_knowledge,
    load_knowledge,
    merge_knowledge,
    save_knowledge,
    summarize,
    validate_knowledge,
    validation_errors,
)
from tests.knowledge.docs import make_doc


def test_hand_made_document_is_valid():
    validate_knowledge(make_doc())


def test_concept_id_is_stable_and_order_insensitive():
    assert concept_id(["kitten", "cat"]) == concept_id(["cat", "kitten"])
    assert concept_id(["cat"]) != concept_id(["cat", "kitten"])
    assert concept_id(["cat"]).startswith("c-") and len(concept_id(["cat"])) == 12


@pytest.mark.parametrize(
    "mutate, path, fragment",
    [
        (lambda d: d["concepts"][0].update(name=""), "$.concepts[0].name", "non-empty"),
        (lambda d: d["concepts"][0].update(name="   "), "$.concepts[0].name", "blank"),
        (lambda d: d["concepts"][1].update(id=d["concepts"][0]["id"]), "$.concepts[1].id",
         "duplicate"),
        (lambda d: d["pairs"][0].update(b="c-0000000000"), "$.pairs[0].b", "unknown concept"),
        (lambda d: d["pairs"][0].update(b=d["pairs"][0]["a"]), "$.pairs[0]", "itself"),
        (lambda d: d["pairs"].append(dict(d["pairs"][0])), "$.pairs[1]", "duplicate pair"),
        (lambda d: d["pairs"][0].update(similarity=3), "$.pairs[0].similarity", "maximum"),
        (lambda d: d.pop("provenance"), "$", "provenance"),
        (lambda d: d.update(schema_version="9"), "$.schema_version", "1.0"),
        (lambda d: d["concepts"][2].update(labels=[]), "$.concepts[2].labels", "non-empty"),
        (lambda d: d["provenance"]["usage"].update(calls=-1), "$.provenance.usage.calls",
         "minimum"),
        (lambda d: d["concepts"][0].update(name="cat\nfake line"), "$.concepts[0].name",
         "control character (U+000A at position 3)"),
        (lambda d: d["concepts"][1].update(name="\x1b[31mdog"), "$.concepts[1].name",
         "control character (U+001B"),
        (lambda d: d["concepts"][1]["attributes"].append("ears\x07"),
         "$.concepts[1].attributes[1]", "control character (U+0007"),
        (lambda d: d["pairs"][0]["attributes"].append("a\u2028b"), "$.pairs[0].attributes[1]",
         "control character (U+2028"),
    ],
)
def test_errors_name_the_json_path(mutate, path, fragment):
    doc = make_doc()
    mutate(doc)
    errors = validation_errors(doc)
    assert any(p == path and fragment in msg for p, msg in errors), errors
    with pytest.raises(InvalidKnowledgeError):
        validate_knowledge(doc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                      children, max_size=3),
    max_leaves=8,
)


@st.composite
def malformed_docs(draw):
    """A valid document with one random part replaced by random JSON."""
    doc = make_doc()
    target = draw(st.sampled_from([
        ("concepts",), ("pairs",), ("labels",), ("provenance",), ("concepts", 0),
        ("concepts", 0, "id"), ("concepts", 1, "attributes"), ("pairs", 0, "a"),
        ("pairs", 0), ("provenance", "usage"), ("provenance", "failures"), ("kind",),
    ]))
    value = draw(json_values)
    node = doc
    for key in target[:-1]:
        node = node[key]
    node[target[-1]] = value
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(malformed_docs())
def test_malformed_documents_never_crash_validation(doc):
    errors = validation_errors(doc)  # must not raise whatever the shape
    assert all(p.startswith("$") and msg for p, msg in errors)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.one_of(malformed_docs(), json_values))
def test_cli_validate_gives_clean_errors(tmp_path, capsys, doc):
    path = tmp_path / "k.json"
    path.write_text(json.dumps(doc))
    code = main(["knowledge", "validate", str(path)])
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    if validation_errors(doc):
        assert code == 1
        assert err.startswith(f"{path}: $")
    else:
        assert code == 0


def test_cli_validate_not_json_and_missing(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{ nope")
    assert main(["knowledge", "validate", str(bad)]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["knowledge", "show", str(tmp_path / "missing.json")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_save_is_deterministic_and_sorted(tmp_path):
    doc = make_doc()
    shuffled = make_doc()
    shuffled["concepts"].reverse()
    p = shuffled["pairs"][0]
    p["a"], p["b"] = p["b"], p["a"]
    save_knowledge(doc, tmp_path / "a.json")
    save_knowledge(shuffled, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    ids = [c["id"] for c in load_knowledge(tmp_path / "a.json")["concepts"]]
    assert ids == sorted(ids)
    assert dumps_knowledge(doc) == (tmp_path / "a.json").read_text()


def test_save_refuses_invalid_and_keeps_old_file(tmp_path):
    path = tmp_path / "k.json"
    save_knowledge(make_doc(), path)
    before = path.read_bytes()
    bad = make_doc()
    bad["pairs"][0]["a"] = "c-ffffffffff"
    with pytest.raises(InvalidKnowledgeError):
        save_knowledge(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]  # no temp file left behind


def test_merge_unions_concepts_attributes_and_pairs():
    a = make_doc()
    b = make_doc(concepts={"cat": (["cat", "kitten"], ["whiskers", "long tail"]),
                           "bird": (["bird"], ["feathers"])},
                 pairs=[("cat", "bird", ["birds have beaks"])])
    b["concepts"][0]["captions"] = ["a cat on a sofa"]
    m = merge_knowledge([a, b], ["a.json", "b.json"])
    validate_knowledge(m)
    names = sorted(c["name"] for c in m["concepts"])
    assert names == ["bird", "cat", "dog", "truck"]
    cat = next(c for c in m["concepts"] if c["name"] == "cat")
    assert cat["attributes"] == ["pointed ears", "whiskers", "long tail"]
    assert cat["captions"] == ["a cat on a sofa"]
    assert len(m["pairs"]) == 2
    assert [x["source"] for x in m["provenance"]["merged_from"]] == ["a.json", "b.json"]
    assert m["provenance"]["usage"]["calls"] == 10


def test_diff_reports_changes_and_nothing_for_equal():
    a = make_doc()
    assert diff_knowledge(a, make_doc()) == []
    b = make_doc()
    b["concepts"][0]["name"] = "feline"
    b["concepts"][1]["attributes"].append("wagging tail")
    b["pairs"] = []
    lines = diff_knowledge(a, b)
    assert any(line.startswith("~ concept") and "'feline'" in line for line in lines)
    assert any(line.startswith("+ attribute") and "wagging tail" in line for line in lines)
    assert any(line.startswith("- pair") for line in lines)


def test_cli_show_merge_diff(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    save_knowledge(make_doc(), a)
    other = make_doc(concepts={"bird": (["bird"], ["feathers"])}, pairs=[])
    save_knowledge(other, b)
    assert main(["knowledge", "show", str(a)]) == 0
    out = capsys.readouterr().out
    assert "concepts: 3" in out and "pointed ears" in out and "dog vs cat" in out
    assert main(["knowledge", "merge", str(a), str(b), "--out", str(tmp_path / "m.json")]) == 0
    assert main(["knowledge", "validate", str(tmp_path / "m.json")]) == 0
    capsys.readouterr()
    assert main(["knowledge", "diff", str(a), str(a)]) == 0
    assert main(["knowledge", "diff", str(a), str(tmp_path / "m.json")]) == 1
    assert "+ concept" in capsys.readouterr().out


def test_show_escapes_what_a_terminal_would_obey(tmp_path, capsys):
    """Names holding a bidi override, a zero-width space or a backslash print escaped,
    one line each; a name holding ESC or a newline is refused before anything prints."""
    doc = make_doc()
    doc["concepts"][0]["name"] = "cat\u202egod\u200b \\x1b"
    doc["concepts"][0]["attributes"] = ["ears\u2066x"]
    path = tmp_path / "k.json"
    save_knowledge(doc, path)
    assert main(["knowledge", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "cat\\u202egod\\u200b \\x1b" in out and "+ ears\\u2066x" in out
    assert all(ch.isprintable() for ch in out.replace("\n", ""))
    raw = make_doc()
    raw["concepts"][0]["name"] = "cat\n\x1b]0;owned\x07\x1b[2Jdog"
    path.write_text(json.dumps(raw))
    assert main(["knowledge", "show", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "\x1b" not in captured.err and "U+000A" in captured.err
    assert main(["knowledge", "validate", str(path)]) == 1
    assert "control character" in capsys.readouterr().err


def test_summarize_marks_fallbacks_and_failures():
    doc = make_doc()
    doc["concepts"][0]["fallback"] = True
    doc["provenance"]["failures"] = [{"prompt": "condense", "item": doc["concepts"][0]["id"],
                                      "error": "$.name: too long", "raw": "{}", "attempts": 3}]
    doc["provenance"]["fallbacks"] = [
        {"prompt": "concept_attributes", "item": doc["concepts"][1]["id"],
         "labels": ["dog", "puppy"], "reason": "placeholder or copied attributes",
         "error": "every item ('A') is a placeholder", "raw": '{"attributes": ["A"]}',
         "attempts": 3, "fallback": "wordnet", "synsets": ["dog.n.01"]}]
    validate_knowledge(doc)
    text = summarize(doc)
    assert "[fallback]" in text and "too long" in text
    assert "failures: 1   fallbacks: 1" in text
    assert ("fallback: concept_attributes dog, puppy: placeholder or copied attributes "
            "after 3 attempt(s) -> filled from WordNet") in text
    assert '["A"]' not in text  # the raw answer stays in the file
