"""Placeholder answers are invalid: the builder repairs them (a scripted backend)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from kec.backends.base import Backend, ChatRequest, ChatResult
from kec.knowledge import BuildParams, KnowledgeBuilder, validate_knowledge
from kec.knowledge.answers import answer_problem, usable_items


def _job(pid, **values):
    return SimpleNamespace(prompt=SimpleNamespace(id=pid), values=values, labels=("cat",))


CAT = {"name": "cat", "description": "a small feline"}


@pytest.mark.parametrize("pid, value, bad", [
    ("condense", {"name": "A", "description": "a small feline"}, True),
    ("condense", {"name": "concept", "description": "a small feline"}, True),
    ("condense", {"name": "cat", "description": "shape"}, True),
    ("condense", {"name": "cat", "description": "a small furry feline"}, False),
    ("concept_attributes", {"attributes": ["A", "shape"]}, True),
    ("concept_attributes", {"attributes": ["cat", "cats"]}, True),
    ("concept_attributes", {"attributes": ["A", "pointed ears"]}, False),
    ("pair_attributes", {"attributes": ["A"]}, True),
    ("pair_attributes", {"attributes": ["B", "colour"]}, True),
    ("pair_attributes", {"attributes": ["slit pupils"]}, False),
    ("captions", {"captions": ["..."]}, True),
    ("captions", {"captions": ["a cat on a sofa"]}, False),
])
def test_answer_problem(pid, value, bad):
    values = ({"concept_a": CAT, "concept_b": {"name": "dog", "description": ""}, "n": 1}
              if pid == "pair_attributes" else {"concept": CAT, "n": 2})
    problem = answer_problem(_job(pid, **values), value)
    assert (problem is not None) is bad, problem


def test_usable_items_keep_order_and_drop_copies():
    assert usable_items(["A", "pointed ears", "shape", "cats", "whiskers"], ["cat"]) == [
        "pointed ears", "whiskers"]


class ScriptedBackend(Backend):
    """Answers by prompt: the first attempt of every attribute question is a placeholder
    ("A", "shape"); a repair request (it carries the runner's repair message) gets a
    real answer."""

    name = "scripted"
    model = "scripted-1"

    def __init__(self):
        self.requests: list[ChatRequest] = []

    def _complete_one(self, request: ChatRequest) -> ChatResult:
        self.requests.append(request)
        repair = any("previous answer was invalid" in m["content"] for m in request.messages)
        pid = request.schema_name
        if pid == "condense":
            text = {"name": "A" if not repair else "small animal",
                    "description": "a furry animal with four legs"}
        elif pid == "captions":
            text = {"captions": ["a photo of an animal on grass"]}
        else:
            text = {"attributes": ["pointed ears", "slit pupils"] if repair
                    else ["A", "shape"]}
        return ChatResult(text=json.dumps(text), prompt_tokens=1, completion_tokens=1)


class TinyEncoder:
    def encode(self, texts):
        rng = np.random.default_rng(0)
        return rng.normal(size=(len(texts), 8))

    def describe(self):
        return {"encoder": "tiny"}


def test_builder_repairs_placeholder_answers(tmp_path):
    backend = ScriptedBackend()
    b = KnowledgeBuilder(backend, TinyEncoder(), cache_dir=None, progress=False,
                         params=BuildParams(grouping="similarity", n_captions=1))
    doc = b.build(["cat", "truck"])
    validate_knowledge(doc)
    for c in doc["concepts"]:
        assert c["name"] == "small animal" and c["attributes"] == ["pointed ears",
                                                                    "slit pupils"]
    assert doc["pairs"] and doc["pairs"][0]["attributes"] == ["pointed ears"]
    usage = doc["provenance"]["usage"]
    assert usage["repairs"] == 2 + 2 + 1  # condense x2, attributes x2, one pair
    assert doc["provenance"]["failures"] == []
    assert doc["provenance"]["grouping"]["method"] == "similarity"
    from kec.knowledge.document import summarize

    assert "(grouped by similarity, 0 links)" in summarize(doc)
    # the repair message told the model why
    repairs = [r for r in backend.requests
               if any("previous answer was invalid" in m["content"] for m in r.messages)]
    assert any("placeholder" in r.messages[-1]["content"] for r in repairs)


def test_pair_prompt_names_the_concepts_in_the_request(tmp_path):
    backend = ScriptedBackend()
    KnowledgeBuilder(backend, TinyEncoder(), cache_dir=None, progress=False,
                     params=BuildParams(grouping="similarity", n_captions=0)).build(
        ["cat", "truck"])
    pair_req = next(r for r in backend.requests if r.schema_name == "pair_attributes")
    text = pair_req.messages[-1]["content"]
    assert text.count('"small animal"') >= 2  # both names, quoted as data


def test_grouping_is_given_for_groups(tmp_path):
    b = KnowledgeBuilder(ScriptedBackend(), None, cache_dir=None, progress=False,
                         params=BuildParams(n_pair_attributes=0, n_captions=0))
    doc = b.build(groups=[["cat", "kitten"]])
    assert doc["provenance"]["grouping"] == {"method": "given"}
    validate_knowledge(doc)
