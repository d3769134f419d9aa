"""Honest fallbacks and names from labels (issue 17): a scripted model that never gives a
usable answer for some items, and one that obeys an instruction inside a label."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kec.backends.base import Backend, ChatRequest, ChatResult
from kec.knowledge import validate_knowledge
from kec.llm import BuildParams, KnowledgeBuilder
from kec.llm.answers import NAME_NOT_DRAWN
from tests.llm.test_condense import BRACES, INJECTION

needs_wordnet = pytest.mark.skipif(
    not Path("/usr/share/wordnet/data.noun").is_file(),
    reason="needs Debian's WordNet 3.0 (apt-get install wordnet-base wordnet-sense-index)")


class ObedientBackend(Backend):
    """Names every concept "The Great Barrier Reef" (an instruction in one label), except
    the birds, which it calls "feline"; for sunflower/daisy and the braces label it only
    ever writes placeholders."""

    name = "obedient"
    model = "obedient-1"

    def _complete_one(self, request: ChatRequest) -> ChatResult:
        text = request.messages[1]["content"]
        stuck = "sunflower" in text or "braces" in text
        if request.schema_name == "condense":
            name = "feline" if "kitten" in text else "The Great Barrier Reef"
            value = {"name": name, "description": "A" if stuck else "a reef seen from above"}
        else:
            value = {"attributes": ["A"] if stuck else ["pale pink coral"]}
        return ChatResult(text=json.dumps(value))


def _build(groups):
    b = KnowledgeBuilder(ObedientBackend(), None, cache_dir=None, progress=False,
                         params=BuildParams(n_pair_attributes=0, n_captions=0))
    doc = b.build(groups=groups)
    validate_knowledge(doc)
    return {tuple(c["labels"]): c for c in doc["concepts"]}, doc["provenance"]


@needs_wordnet
def test_a_concept_name_comes_from_its_labels():
    concepts, prov = _build([[INJECTION], ["sports car", "convertible"],
                             ["tabby cat", "kitten"]])
    assert concepts[(INJECTION,)]["name"] == INJECTION  # one label names its concept
    # a group name drawn from none of its labels: the group's WordNet kind instead
    assert concepts[("sports car", "convertible")]["name"] == "car"
    # a name WordNet gives both labels is kept
    assert concepts[("tabby cat", "kitten")]["name"] == "feline"
    assert all(c["name"] != "The Great Barrier Reef" for c in concepts.values())
    [renamed] = prov["fallbacks"]
    assert renamed["reason"] == NAME_NOT_DRAWN and renamed["fallback"] == "wordnet"
    assert "Great Barrier Reef" in renamed["raw"]
    assert prov["failures"] == []
    assert not any(c.get("fallback") for c in concepts.values())


@needs_wordnet
def test_items_without_a_usable_answer_are_filled_from_wordnet_and_marked():
    concepts, prov = _build([["sunflower", "daisy"], [BRACES], ["kitten"]])
    flowers = concepts[("sunflower", "daisy")]
    assert flowers["fallback"] is True and flowers["name"] == "flower"
    assert "Helianthus" in flowers["description"]  # WordNet's gloss, not the model's "A"
    assert flowers["attributes"] == [
        "any plant of the genus Helianthus having large flower heads with dark disk "
        "florets and showy yellow rays",
        "any of numerous composite plants having flower heads with well-developed ray "
        "flowers usually arranged in a single whorl"]
    braces = concepts[(BRACES,)]  # WordNet does not know it: the label, nothing else
    assert braces["name"] == BRACES and braces["description"] == ""
    assert braces["attributes"] == []
    assert concepts[("kitten",)]["attributes"] == ["pale pink coral"]  # answered well
    assert prov["failures"] == []  # answers came: nothing to exit 3 for
    filled = {(f["prompt"], tuple(f["labels"])): f for f in prov["fallbacks"]}
    cond = filled[("condense", ("sunflower", "daisy"))]
    assert cond["fallback"] == "wordnet"
    assert cond["synsets"] == ["sunflower.n.01", "daisy.n.01"]
    assert cond["attempts"] == 3 and cond["raw"] and "placeholder" in cond["reason"]
    assert filled[("concept_attributes", ("sunflower", "daisy"))]["fallback"] == "wordnet"
    assert filled[("condense", (BRACES,))]["fallback"] == "label"
    assert filled[("concept_attributes", (BRACES,))]["fallback"] == "none"


@needs_wordnet
def test_a_pair_without_a_usable_answer_is_reported_by_its_names():
    from tests.llm.test_answers import TinyEncoder

    b = KnowledgeBuilder(ObedientBackend(), TinyEncoder(), cache_dir=None, progress=False,
                         params=BuildParams(n_captions=0))
    doc = b.build(groups=[["sunflower", "daisy"], ["kitten"]])
    [pair] = [f for f in doc["provenance"]["fallbacks"] if f["prompt"] == "pair_attributes"]
    assert pair["labels"] == ["flower", "kitten"] and pair["fallback"] == "none"
    assert doc["pairs"][0]["attributes"] == []
