"""Embedding a knowledge document: zeta, attribute ownership, pairs, errors."""

from __future__ import annotations

import numpy as np
import pytest

from kec.cluster import ClusteringInputError
from kec.cluster.knowledge_features import knowledge_features
from kec.errors import InvalidKnowledgeError
from tests.cluster.helpers import HashEncoder


def make_doc():
    return {
        "concepts": [
            {"id": "c-000000000a", "name": "corgi", "description": "a short dog",
             "labels": ["corgi"], "attributes": ["short legs", "pointed ears"]},
            {"id": "c-000000000b", "name": "shiba inu", "description": "",
             "labels": ["shiba"], "attributes": ["curled tail", "pointed ears"],
             "captions": ["a shiba in the snow"]},
            {"id": "c-000000000c", "name": "tabby cat", "description": "a striped cat",
             "labels": ["tabby"], "attributes": []},
        ],
        "pairs": [{"a": "c-000000000a", "b": "c-000000000b", "similarity": 0.9,
                   "attributes": ["corgis have shorter legs than shiba inus"]}],
    }


def test_embeddings_and_ownership():
    enc = HashEncoder(dim=12)
    kf = knowledge_features(make_doc(), enc)
    assert kf.n_concepts == 3 and kf.dim == 12
    np.testing.assert_allclose(kf.name_emb, enc.encode(["a photo of a corgi.",
                                                        "a photo of a shiba inu.",
                                                        "a photo of a tabby cat."]))
    np.testing.assert_allclose(kf.desc_emb[0], enc.encode(["a short dog"])[0])
    np.testing.assert_array_equal(kf.desc_emb[1], 0)  # empty description: psi = 0
    np.testing.assert_allclose(kf.zeta, kf.name_emb + kf.desc_emb)
    # attribute texts are embedded once ("pointed ears" is shared)
    assert kf.attr_texts == ["short legs", "pointed ears", "curled tail",
                             "corgis have shorter legs than shiba inus"]
    assert kf.attr_kind == ["uni", "uni", "uni", "pair"]
    assert [a.tolist() for a in kf.concept_attrs] == [[0, 1, 3], [2, 1, 3], []]
    assert kf.pair_attributes(1, 0) == [3]
    assert kf.caption_texts == ["a shiba in the snow"]
    assert kf.caption_emb.shape == (1, 12)
    means = kf.attribute_means()
    np.testing.assert_allclose(means[0], kf.attr_emb[[0, 1, 3]].mean(0), rtol=1e-6)
    np.testing.assert_array_equal(means[2], 0)
    assert kf.encoder["model"] == "hash"


def test_pair_attribute_modes_and_ablation():
    doc = make_doc()
    only_a = knowledge_features(doc, HashEncoder(), pair_attributes="a")
    assert [a.tolist() for a in only_a.concept_attrs[:2]] == [[0, 1, 3], [2, 1]]
    none = knowledge_features(doc, HashEncoder(), pair_attributes="none")
    assert [a.tolist() for a in none.concept_attrs[:2]] == [[0, 1], [2, 1]]
    uni = knowledge_features(doc, HashEncoder()).without_pair_attributes()
    assert uni.attr_texts == ["short legs", "pointed ears", "curled tail"]
    assert [a.tolist() for a in uni.concept_attrs] == [[0, 1], [2, 1], []]
    assert uni.attr_emb.shape == (3, 16) and uni.pair_attributes(0, 1) == []


def test_name_template():
    enc = HashEncoder()
    knowledge_features(make_doc(), enc, name_template="{}")
    assert enc.calls[0] == ["corgi", "shiba inu", "tabby cat"]
    with pytest.raises(ClusteringInputError, match="name_template"):
        knowledge_features(make_doc(), enc, name_template="a photo")


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.update(concepts=[]), "no concepts"),
    (lambda d: d["concepts"][1].update(id="c-000000000a"), "duplicate id"),
    (lambda d: d["concepts"][0].update(name="  "), "missing name"),
    (lambda d: d["pairs"][0].update(b="c-ffffffffff"), "known concept ids"),
    (lambda d: d["concepts"][0].update(attributes="legs"), "list of strings"),
])
def test_invalid_documents(mutate, match):
    doc = make_doc()
    mutate(doc)
    with pytest.raises(InvalidKnowledgeError, match=match):
        knowledge_features(doc, HashEncoder(), source="k.json")


def test_bad_encoder_output():
    class Broken:
        def encode(self, texts):
            return np.full((len(texts), 4), np.nan, dtype=np.float32)

    with pytest.raises(ClusteringInputError, match="NaN"):
        knowledge_features(make_doc(), Broken())

    class Short:
        def encode(self, texts):
            return np.ones((1, 4), dtype=np.float32)

    with pytest.raises(ClusteringInputError, match="returned shape"):
        knowledge_features(make_doc(), Short())
