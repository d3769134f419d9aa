"""The knowledge kind picks the builder's prompts (issue 16.7): knowledge for a text
collection asks what texts are about, never how a thing looks in a photo; the kind is
recorded in the provenance and fallbacks name the template that failed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kec.backends.base import Backend, ChatRequest, ChatResult
from kec.errors import KecError
from kec.knowledge import validate_knowledge
from kec.knowledge.document import merge_knowledge
from kec.llm import BuildParams, KnowledgeBuilder


class RecordingBackend(Backend):
    """Answers every question with something usable, except the attributes of "billing"
    (placeholders only), and records every prompt it was sent."""

    name = "recording"
    model = "recording-1"

    def __init__(self):
        super().__init__()
        self.sent: list[str] = []

    def _complete_one(self, request: ChatRequest) -> ChatResult:
        text = " ".join(m["content"] for m in request.messages)
        self.sent.append(text)
        props = (request.schema or {}).get("properties", {})
        if "description" in props:
            value = {"name": "topic", "description": "texts about paying invoices"}
        elif "captions" in props:
            value = {"captions": ["my invoice was charged twice", "refund the fee"]}
        else:
            stuck = '"billing"' in text and "second:" not in text
            value = {"attributes": ["A"] if stuck else ["refund requests", "invoice dates"]}
        return ChatResult(text=json.dumps(value))


class TinyEncoder:
    """Two orthogonal directions: every pair of concepts gets the same similarity."""

    def encode(self, texts):
        return np.eye(len(texts), 4, dtype=np.float32) + 0.5

    def describe(self):
        return {"kind": "test", "model": "tiny", "pretrained": None, "dim": 4}


def _build(kind: str | None):
    backend = RecordingBackend()
    extra = {} if kind is None else {"kind": kind}
    builder = KnowledgeBuilder(backend, TinyEncoder(), cache_dir=None, progress=False,
                               params=BuildParams(n_captions=1), **extra)
    doc = builder.build(groups=[["billing"], ["password reset"]], source="groups:test")
    validate_knowledge(doc)
    return doc, backend.sent


def test_items_knowledge_asks_about_texts_not_photos():
    doc, sent = _build("items")
    prov = doc["provenance"]
    assert prov["kind"] == "items"
    assert sorted(p["id"] for p in prov["prompts"]) == [
        "captions_items", "concept_attributes_items", "condense_items",
        "pair_attributes_items"]
    assert len(sent) >= 7 and doc["pairs"]  # condense, attributes, pairs and captions asked
    for text in sent:
        for word in ("photo", "visible", "looks"):
            assert word not in text.lower(), (word, text)
    # the fallback of billing's placeholder attributes names the template that failed
    [fb] = [f for f in prov["fallbacks"] if f["prompt"] == "concept_attributes_items"]
    assert fb["item"] == next(c["id"] for c in doc["concepts"] if c["labels"] == ["billing"])
    assert fb["fallback"] in ("wordnet", "none")


def test_image_knowledge_is_the_default_and_asks_about_photos():
    doc, sent = _build(None)
    assert doc["provenance"]["kind"] == "images"
    assert {p["id"] for p in doc["provenance"]["prompts"]} == {
        "condense", "concept_attributes", "pair_attributes", "captions"}
    assert any("photo" in text for text in sent)


def test_an_unknown_kind_is_refused_before_any_call():
    with pytest.raises(KecError, match="knowledge kind must be one of images, items"):
        KnowledgeBuilder(RecordingBackend(), None, cache_dir=None, kind="videos")


def test_old_files_without_a_kind_stay_valid_and_merges_keep_one_kind():
    doc, _ = _build("items")
    old = json.loads(json.dumps(doc))
    del old["provenance"]["kind"]  # written before kec recorded the kind
    validate_knowledge(old)
    assert merge_knowledge([doc, doc], ["a", "b"])["provenance"]["kind"] == "items"
    assert "kind" not in merge_knowledge([doc, old], ["a", "b"])["provenance"]
    bad = json.loads(json.dumps(doc))
    bad["provenance"]["kind"] = "videos"
    with pytest.raises(KecError):
        validate_knowledge(bad)
