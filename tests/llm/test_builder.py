"""The builder end to end on real parts: SmolLM2-135M (llama.cpp, in process) + MiniLM."""

import pytest

from kec.backends.base import SamplingParams
from kec.errors import KecError
from kec.knowledge import concept_id, validate_knowledge
from kec.llm import BuildParams, KnowledgeBuilder
from tests.conftest import needs_llama

pytestmark = [needs_llama, pytest.mark.slow]

SAMPLING = SamplingParams(temperature=0.0, max_tokens=96, seed=0)


def _builder(smollm, minilm, cache_dir, **params):
    return KnowledgeBuilder(smollm, minilm, cache_dir=cache_dir, sampling=SAMPLING,
                            params=BuildParams(**params), progress=False)


def test_build_groups_labels_condenses_pairs_and_records_provenance(smollm, minilm, tmp_path):
    doc = _builder(smollm, minilm, tmp_path / "cache", group_threshold=0.75).build(
        ["cat", "kitten", "truck"], source="test")
    validate_knowledge(doc)
    by_labels = {tuple(sorted(c["labels"])): c for c in doc["concepts"]}
    # MiniLM puts cat/kitten at cosine 0.79 and truck far away: two concepts
    assert set(by_labels) == {("cat", "kitten"), ("truck",)}
    assert by_labels[("truck",)]["id"] == concept_id(["truck"])
    for c in doc["concepts"]:
        assert c["name"].strip()
        assert len(c["attributes"]) <= 2
        assert len(c["captions"]) <= 3  # the caption corpus for CAE
    assert len(doc["pairs"]) == 1  # two concepts: one pair
    prov = doc["provenance"]
    assert prov["backend"]["backend"] == "llamacpp"
    assert prov["backend"]["model"] == "smollm2-135m-instruct"
    assert prov["text_encoder"]["dim"] == 384
    assert {p["id"] for p in prov["prompts"]} == {"condense", "concept_attributes",
                                                  "pair_attributes", "captions"}
    assert prov["sampling"]["max_tokens"] == 96
    usage = prov["usage"]
    assert usage["calls"] >= 7 and usage["cached_calls"] == 0  # 2 + 2 + 1 + 2 at least
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert doc["labels"]["count"] == 3 and doc["labels"]["groups_given"] is False


def test_rerun_costs_zero_calls_and_gives_the_same_knowledge(smollm, minilm, tmp_path):
    first = _builder(smollm, minilm, tmp_path / "c").build(["dog", "horse"])
    again = _builder(smollm, minilm, tmp_path / "c").build(["dog", "horse"])
    assert again["provenance"]["usage"]["calls"] == 0
    assert again["provenance"]["usage"]["cached_calls"] == (
        first["provenance"]["usage"]["calls"])
    assert again["concepts"] == first["concepts"] and again["pairs"] == first["pairs"]


def test_groups_are_condensed_as_given_without_an_encoder(smollm, tmp_path):
    groups = [["tabby", "kitten", "cat"], ["pickup truck", "lorry"]]
    b = KnowledgeBuilder(smollm, None, cache_dir=tmp_path, sampling=SAMPLING,
                         params=BuildParams(n_pair_attributes=0), progress=False)
    doc = b.build(groups=groups, source="groups:test")
    validate_knowledge(doc)
    assert sorted(sorted(c["labels"]) for c in doc["concepts"]) == [
        ["cat", "kitten", "tabby"], ["lorry", "pickup truck"]]
    assert doc["pairs"] == [] and doc["labels"]["groups_given"] is True


def test_label_grouping_needs_an_encoder(smollm, tmp_path):
    with pytest.raises(KecError, match="text encoder"):
        KnowledgeBuilder(smollm, None, cache_dir=None, progress=False,
                         params=BuildParams(grouping="similarity")).build(["a", "b"])
