"""kec.knowledge.lint: flags on hand-made documents, a fake encoder and real MiniLM."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kec.knowledge.document import validation_errors
from kec.knowledge.lint import drop_flagged, lint_knowledge
from kec.knowledge.textcheck import text_flags
from tests.knowledge.docs import make_doc


def _flags(report, text):
    return [set(it.flags) for it in report.items if it.text == text]


# -- text checks -----------------------------------------------------------------------
@pytest.mark.parametrize("text", ["A", "B", "b", "concept A", "Concept B", "...", "-",
                                  "N/A", "attribute", "x", "7", "part_type",
                                  "description_1.jpg", "featured_2",
                                  "]} ```python # Example of a JSON object", "<attribute>"])
def test_placeholders(text):
    assert text_flags(text) == ["placeholder"]


@pytest.mark.parametrize("text", ["shape", "colour", "Color.", "texture", "typical setting",
                                  "visual appearance", "shape, colour",
                                  "Thing (data, not instructions): A flying machine"])
def test_prompt_copies(text):
    assert text_flags(text) == ["prompt_copy"]


@pytest.mark.parametrize("text", ["cat", "Cats", "a kitten", "the cat's", "cat shape"])
def test_repeats_name(text):
    assert text_flags(text, ["cat", "kitten"]) == ["repeats_name"]


@pytest.mark.parametrize("text", ["pointed ears", "slit pupils", "long bushy tail",
                                  "four wheels and a windshield", "Al", "an orange beak",
                                  "a 4.5 m long hull", "U.S. flag on the tail",
                                  "black-and-white fur"])
def test_real_attributes_are_not_flagged(text):
    assert text_flags(text, ["cat"]) == []


# -- the report on a document, text checks only ------------------------------------------
def _junk_doc():
    return make_doc(
        {"cat": (["cat", "kitten"], ["pointed ears", "A", "shape", "cats"]),
         "dog": (["dog", "puppy"], ["floppy ears", "colour"]),
         "truck": (["truck"], ["large cargo box"])},
        [("cat", "dog", ["A", "cats have slit pupils"])])


def test_text_flags_in_a_document_without_encoder():
    doc = _junk_doc()
    r = lint_knowledge(doc)
    assert not r.embedded and not r.clean
    assert _flags(r, "A") == [{"placeholder"}, {"placeholder"}]  # uni and pair
    assert _flags(r, "shape") == [{"prompt_copy"}]
    assert _flags(r, "colour") == [{"prompt_copy"}]
    assert _flags(r, "cats") == [{"repeats_name"}]
    for ok in ("pointed ears", "floppy ears", "large cargo box", "cats have slit pupils"):
        assert _flags(r, ok) == [set()], ok
    # make_doc's descriptions, "a photo of a cat", say nothing beyond the name
    assert {it.flags for it in r.items if it.kind == "description"} == {("repeats_name",)}
    assert r.counts()["placeholder"] == 2
    assert len([it for it in r.flagged if it.kind != "description"]) == 5
    d = r.to_dict()
    assert d["n_flagged"] == 5 + 3 and d["flag_counts"]["prompt_copy"] == 2
    ids = {it["id"] for it in d["items"] if it["flags"]}
    assert "$.concepts[0].attributes[1]" in ids and "$.pairs[0].attributes[0]" in ids


def test_drop_flagged_removes_exactly_the_flagged_items_and_stays_valid():
    doc = _junk_doc()
    assert validation_errors(doc) == []
    out = drop_flagged(doc, lint_knowledge(doc))
    assert validation_errors(out) == []
    by_name = {c["name"]: c for c in out["concepts"]}
    assert by_name["cat"]["attributes"] == ["pointed ears"]
    assert by_name["dog"]["attributes"] == ["floppy ears"]
    assert by_name["truck"]["attributes"] == ["large cargo box"]
    assert out["pairs"][0]["attributes"] == ["cats have slit pupils"]
    assert doc["concepts"][0]["attributes"] == ["pointed ears", "A", "shape", "cats"]  # copy
    assert all(c["description"] == "" for c in out["concepts"])
    assert lint_knowledge(out).clean


def test_drop_flagged_only_the_flags_asked_for():
    doc = _junk_doc()
    out = drop_flagged(doc, lint_knowledge(doc), flags=["placeholder"])
    assert out["concepts"][0]["attributes"] == ["pointed ears", "shape", "cats"]


def test_placeholder_name_becomes_the_first_label():
    doc = make_doc({"A": (["cat", "kitten"], ["pointed ears"]), "dog": (["dog"], [])}, [])
    doc["concepts"][0]["description"] = "shape"
    out = drop_flagged(doc, lint_knowledge(doc))
    c = next(c for c in out["concepts"] if c["labels"] == ["cat", "kitten"])
    assert c["name"] == "cat" and c["fallback"] is True and c["description"] == ""
    assert validation_errors(out) == []


# -- embedding checks with a fake encoder whose geometry we choose ----------------------
class AxisEncoder:
    """Each text maps to a fixed vector: exact control over every cosine."""

    def __init__(self, table: dict[str, list[float]]):
        self.table = table

    def __call__(self, texts):
        return np.array([self.table[t] for t in texts], dtype=float)


def _geo_doc():
    doc = make_doc({"cat": (["cat"], ["whiskers", "barks"]), "dog": (["dog"], ["tail"])},
                   [("cat", "dog", ["cats have slit pupils", "dogs pant", "furry"])])
    for c in doc["concepts"]:
        c["description"] = ""
    return doc


GEO = {"cat": [1, 0, 0], "dog": [0, 1, 0],
       "whiskers": [0.9, 0.1, 0.3],  # closer to cat: fine
       "barks": [0.1, 0.9, 0.3],  # a cat attribute closer to dog: not_closer
       "tail": [0.5, 0.5, 0.7],  # tie: not_closer (margin 0)
       "cats have slit pupils": [0.8, 0.2, 0],  # names cat, closer to cat: separates
       "dogs pant": [0.7, 0.3, 0],  # names dog but closer to cat: wrong side
       "furry": [0.5, 0.505, 0.7]}  # names neither, |delta| tiny: does not separate


def test_not_closer_and_not_separating_follow_the_similarities():
    r = lint_knowledge(_geo_doc(), AxisEncoder(GEO))
    assert r.embedded
    assert _flags(r, "whiskers") == [set()]
    assert _flags(r, "barks") == [{"not_closer"}]
    assert _flags(r, "tail") == [{"not_closer"}]
    assert _flags(r, "cats have slit pupils") == [set()]
    assert _flags(r, "dogs pant") == [{"not_separating"}]
    assert _flags(r, "furry") == [{"not_separating"}]
    item = next(it for it in r.items if it.text == "barks")
    assert item.scores["margin"] == pytest.approx(item.scores["sim_own"]
                                                  - item.scores["sim_best_other"], abs=1e-3)
    assert item.scores["margin"] < 0
    pair = next(it for it in r.items if it.text == "dogs pant")
    assert pair.side == -1 and pair.scores["separation"] > 0


def test_margins_move_the_flags():
    r = lint_knowledge(_geo_doc(), AxisEncoder(GEO), margin=-1.0, pair_margin=-1.0)
    assert r.clean


def test_the_pair_sign_comes_from_which_concept_is_named():
    doc = _geo_doc()
    # swap a and b: "dogs pant" now names concept a and is closer to b's opposite
    doc["pairs"][0]["a"], doc["pairs"][0]["b"] = doc["pairs"][0]["b"], doc["pairs"][0]["a"]
    r = lint_knowledge(doc, AxisEncoder(GEO))
    assert _flags(r, "dogs pant") == [{"not_separating"}]
    assert next(it for it in r.items if it.text == "dogs pant").side == 1


@given(st.permutations(range(3)))
def test_flags_do_not_depend_on_concept_order(perm):
    doc = _junk_doc()
    base = {(it.kind, it.text): it.flags for it in lint_knowledge(doc).items}
    doc["concepts"] = [doc["concepts"][i] for i in perm]
    again = {(it.kind, it.text): it.flags for it in lint_knowledge(doc).items}
    assert again == base


def test_encoder_with_wrong_shape_is_a_clear_error():
    from kec.knowledge.lint import LintError

    with pytest.raises(LintError, match="shape"):
        lint_knowledge(_geo_doc(), lambda texts: np.zeros((1, 3)))


def test_lint_imports_no_backend_or_torch():
    code = ("import sys, kec.knowledge.lint, kec.knowledge.grouping, kec.knowledge; "
            "bad = [m for m in sys.modules if m.startswith(('kec.backends', 'torch', "
            "'kec.llm.builder', 'kec.prompts.x'))]; print(bad); assert not bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- real MiniLM -----------------------------------------------------------------------
def _described(doc):
    for c in doc["concepts"]:
        c["description"] = ""
    return doc


def test_minilm_keeps_good_knowledge_and_flags_swapped_attributes(minilm):
    good = _described(make_doc(
        {"cat": (["cat"], ["retractable claws and whiskers"]),
         "truck": (["truck"], ["large cargo bed and heavy wheels"]),
         "rose": (["rose"], ["red petals and thorny stems"])},
        [("cat", "truck", ["a cat has soft fur"])]))
    r = lint_knowledge(good, minilm.encode)
    assert r.clean, r.format()
    # the same attributes given to the wrong concepts
    bad = _described(make_doc(
        {"cat": (["cat"], ["large cargo bed and heavy wheels"]),
         "truck": (["truck"], ["red petals and thorny stems"]),
         "rose": (["rose"], ["retractable claws and whiskers"])},
        []))
    r = lint_knowledge(bad, minilm.encode)
    flagged = {it.text for it in r.flagged}
    assert flagged == {"large cargo bed and heavy wheels", "red petals and thorny stems",
                       "retractable claws and whiskers"}
