"""Placeholder answers are invalid: the builder repairs them (a scripted backend)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from kec.backends.base import Backend, ChatRequest, ChatResult
from kec.knowledge import validate_knowledge
from kec.llm import BuildParams, KnowledgeBuilder
from kec.llm.answers import answer_problem, drawn_from, usable_items


def _job(pid, labels=("cat",), names=(), **values):
    return SimpleNamespace(prompt=SimpleNamespace(id=pid), values=values, labels=labels,
                           names=names)


CAT = {"name": "cat", "description": "a small feline"}


@pytest.mark.parametrize("pid, value, bad", [
    ("condense", {"name": "A", "description": "a small feline"}, False),  # name unused
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


@pytest.mark.parametrize("name, reason", [
    ("A", "a placeholder name"),
    ("concept", "a placeholder name"),
    ("The Great Barrier Reef", None),  # a real name: the builder checks where it is from
    ("tabby cat", None),
])
def test_a_group_name_must_not_be_a_placeholder(name, reason):
    job = _job("condense", labels=("tabby cat", "kitten"))
    problem = answer_problem(job, {"name": name, "description": "a small furry feline"})
    assert (problem.reason if problem is not None else None) == reason
    if problem is not None:
        assert name in problem  # the repair message names the problem


@pytest.mark.parametrize("name, names, ok", [
    ("The Great Barrier Reef", ("cat", "feline"), False),
    ("feline", (), False),
    ("feline", ("cat", "feline"), True),  # a name WordNet gives both
    ("Cats", (), True),
    ("tabby cat", (), True),
    ("...", (), False),
])
def test_drawn_from(name, names, ok):
    assert drawn_from(name, ["tabby cat", "kitten"], names) is ok


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
    for c in doc["concepts"]:  # one label names its concept: "A" is not even checked
        assert c["name"] in ("cat", "truck") and c["attributes"] == ["pointed ears",
                                                                      "slit pupils"]
    assert doc["pairs"] and doc["pairs"][0]["attributes"] == ["pointed ears"]
    usage = doc["provenance"]["usage"]
    assert usage["repairs"] == 2 + 1  # attributes x2, one pair
    assert doc["provenance"]["failures"] == doc["provenance"]["fallbacks"] == []
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
    assert '"cat"' in text and '"truck"' in text  # both names, quoted as data


def test_grouping_is_given_for_groups(tmp_path):
    b = KnowledgeBuilder(ScriptedBackend(), None, cache_dir=None, progress=False,
                         params=BuildParams(n_pair_attributes=0, n_captions=0))
    doc = b.build(groups=[["cat", "kitten"]])
    assert doc["provenance"]["grouping"] == {"method": "given"}
    validate_knowledge(doc)
