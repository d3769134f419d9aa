"""``kec.make_knowledge``: hand-written knowledge that ``fit`` and the CLI take."""

import numpy as np
import pytest

import kec
from kec.errors import KecError
from kec.knowledge.document import save_knowledge, validation_errors
from tests.cluster.helpers import HashEncoder, blobs

NAMES = ["apple", "boat", "cloud", "drum"]


def test_a_hand_written_document_is_valid_and_fit_names_the_clusters(tmp_path):
    X, y, centres = blobs(30, 4, d=16, spread=0.5, seed=21)
    enc = HashEncoder(dim=16, anchors=dict(zip(NAMES, centres)), weight=2.0)
    doc = kec.make_knowledge({n: [f"{n} shape", f"{n} colour"] for n in NAMES},
                             pairs={("apple", "boat"): ["apple is round, boat is long"]},
                             labels={"apple": ["apple", "pomme"]},
                             captions={"cloud": ["a cloud in the sky"]})
    assert validation_errors(doc) == []
    assert doc["provenance"]["usage"]["calls"] == 0
    assert doc["concepts"][0]["labels"] == ["apple", "pomme"]
    assert doc["pairs"][0]["a"] == doc["concepts"][0]["id"]
    est = kec.KEC(4, random_state=0, text_encoder=enc).fit(X, knowledge=doc)
    for c in est.clusters_:
        members = y[est.labels_ == c["cluster"]]
        assert c["name"] == NAMES[np.bincount(members).argmax()]
    save_knowledge(doc, tmp_path / "k.json")  # and a file that the CLI reads
    def by_id(d):
        return sorted(d["concepts"], key=lambda c: c["id"])

    assert by_id(kec.load_knowledge(tmp_path / "k.json")) == by_id(doc)


@pytest.mark.parametrize(("args", "kwargs", "said"), [
    (({},), {}, "at least one concept"),
    (({"a": ["x"]},), {"pairs": {("a", "b"): ["y"]}}, r"pair \('a', 'b'\) names an unknown"),
    (({"a": ["x"]},), {"labels": {"b": ["b"]}}, "labels name unknown concepts"),
    (({"": ["x"]},), {}, "name"),
])
def test_bad_hand_written_knowledge_is_refused(args, kwargs, said):
    with pytest.raises(KecError, match=said):
        kec.make_knowledge(*args, **kwargs)
