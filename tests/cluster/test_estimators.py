"""The method estimators and the method registry: parameters, inputs, results."""

from __future__ import annotations

import inspect
import json
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.base import clone

from kec.cluster import ClusteringInputError, cluster_accuracy, run_method
from kec.cluster import estimators as E
from kec.cluster import registry as R
from kec.cluster.knowledge_features import knowledge_features
from kec.errors import KecError
from kec.features import FeatureSet
from kec.knowledge.document import save_knowledge
from tests.cluster.helpers import HashEncoder, blobs
from tests.knowledge.docs import make_doc

NAMES = ["apple", "boat", "cloud", "drum"]
ESTIMATORS = {name: R.resolve(name) for name in R.method_names()}


@pytest.fixture(scope="module")
def world():
    X, y, centres = blobs(30, 4, d=16, spread=0.5, seed=21)
    enc = HashEncoder(dim=16, anchors=dict(zip(NAMES, centres)), weight=2.0)
    noun_texts = [f"{n} {j}" for n in NAMES for j in range(5)] + [f"noise{j}" for j in range(10)]
    doc = make_doc({n: ([n], [f"{n} shape", f"{n} colour"]) for n in NAMES},
                   [("apple", "boat", ["apple is round, boat is long"])])
    for c in doc["concepts"]:
        c["captions"] = [f"a photo of an {c['name']} outside"]
    return {"X": X, "y": y, "enc": enc, "noun_texts": noun_texts, "nouns": enc.encode(noun_texts),
            "captions": enc.encode([f"a photo of an {n} outside" for n in NAMES]),
            "doc": doc, "kf": knowledge_features(doc, enc)}


def _inputs(world, name):
    return {i: world["kf"] if i == "knowledge" else world[i]
            for i in R.method_spec(name).requires}


# --------------------------------------------------------------------------- registry
def test_registry_lists_the_five_methods_with_their_estimators():
    assert R.method_names() == ("kmeans", "tac", "kec", "cae", "kec+cae")
    assert {n: c.__name__ for n, c in ESTIMATORS.items()} == {
        "kmeans": "KMeansBaseline", "tac": "TAC", "kec": "KEC", "cae": "CAE",
        "kec+cae": "KECCAE"}
    for name in R.method_names():
        spec = R.method_spec(name)
        assert ESTIMATORS[name]._method == name
        assert callable(R.resolve(name, "function"))
        assert set(spec.inputs) <= set(R.INPUTS) and spec.description
        assert spec.reference.startswith("docs/methods.md §")


@pytest.mark.parametrize("name", R.method_names())
def test_registry_defaults_match_the_function_and_the_estimator(name):
    spec = R.method_spec(name)
    sig = inspect.signature(R.resolve(name, "function")).parameters
    keywords = {k: p.default for k, p in sig.items() if p.kind is p.KEYWORD_ONLY}
    for key, value in spec.defaults.items():
        assert key in keywords, f"{name}: {key} is not a keyword of the function"
        assert keywords[key] == value, f"{name}: default of {key} drifted"
    params = ESTIMATORS[name]().get_params()
    own = {k: v for k, v in params.items() if k not in E.OWN_PARAMS}
    assert own == dict(spec.defaults)
    # inputs are fit arguments, never constructor parameters
    assert not set(params) & set(R.INPUTS)


def test_registry_knows_which_methods_use_an_input():
    assert R.methods_using("knowledge") == ("kec", "cae", "kec+cae")
    assert R.methods_using("nouns") == ("tac", "cae", "kec+cae")
    assert R.methods_requiring("knowledge") == ("kec", "kec+cae")
    assert R.methods_requiring("nouns") == ("tac", "cae")
    with pytest.raises(KecError, match="unknown input 'images'"):
        R.methods_requiring("images")
    assert R.unused_inputs("kmeans", ["nouns", "bogus"]) == ("nouns",)
    with pytest.raises(R.UnknownMethodError, match="choose from kmeans, tac"):
        R.method_spec("kmeans++")


@given(st.sampled_from(R.method_names()), st.sets(st.sampled_from(sorted(R.INPUTS))))
def test_check_inputs_fails_exactly_when_a_required_input_is_missing(name, provided):
    missing = [i for i in R.method_spec(name).requires if i not in provided]
    if missing:
        with pytest.raises(ClusteringInputError) as err:
            R.check_inputs(name, provided)
        for i in missing:
            assert R.INPUTS[i]["flag"].split()[0] in str(err.value)
            assert R.INPUTS[i]["made_by"] in str(err.value)
    else:
        R.check_inputs(name, provided)


# --------------------------------------------------------------------------- estimators
@pytest.mark.parametrize("name", R.method_names())
def test_clone_and_set_params(name):
    est = ESTIMATORS[name](n_clusters=3, random_state=7, clusterer_params={"n_init": 2})
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params()
    assert twin.clusterer_params is not est.clusterer_params
    twin.set_params(n_clusters=5)
    assert twin.n_clusters == 5 and est.n_clusters == 3
    assert repr(est).startswith(type(est).__name__ + "(")


@pytest.mark.parametrize("name", R.method_names())
def test_fit_runs_the_method_function_with_the_parameters(world, name):
    inputs = _inputs(world, name)
    est = ESTIMATORS[name](n_clusters=4, random_state=3)
    labels = est.fit_predict(world["X"], **inputs)
    ref = run_method(name, world["X"], 4, random_state=3, **inputs)
    np.testing.assert_array_equal(labels, ref.labels)
    np.testing.assert_array_equal(est.labels_, labels)
    assert est.labels_.dtype == np.int64 and est.n_features_in_ == 16
    assert est.result_.method == name and est.result_.params == ref.params
    assert cluster_accuracy(world["y"], labels) >= 0.9
    assert hasattr(est, "clusters_") == (name in ("kec", "kec+cae"))


def test_parameters_reach_the_method(world):
    kec = E.KEC(n_clusters=3, temperature=0.5, n_attributes=1).fit(world["X"],
                                                                   knowledge=world["kf"])
    assert kec.result_.params["temperature"] == 0.5
    assert set(kec.labels_.tolist()) <= {0, 1, 2} and len(kec.clusters_) == 3
    assert all(len(c["attributes"]) == 1 for c in kec.clusters_)
    cae = E.CAE(4, fusion="concat", n_overclusters=6).fit(world["X"], nouns=world["nouns"])
    assert cae.result_.params["fusion"] == "concat"
    assert cae.result_.params["n_overclusters"] == 6


def test_knowledge_methods_name_the_clusters(world):
    for est in (E.KEC(4), E.KECCAE(4)):
        est.fit(world["X"], knowledge=world["kf"])
        for c, name in zip(est.clusters_, est.cluster_names_):
            members = world["y"][est.labels_ == c["cluster"]]
            assert name == c["name"] == NAMES[np.bincount(members).argmax()]
            assert c["attributes"] and c["concepts"][0]["name"] == name
        json.dumps(est.clusters_)
    with pytest.raises(AttributeError, match="no cluster names"):
        E.TAC(4).fit(world["X"], nouns=world["nouns"]).cluster_names_  # noqa: B018


def test_knowledge_as_document_or_file_is_embedded_with_the_text_encoder(world, tmp_path):
    path = tmp_path / "k.json"
    save_knowledge(world["doc"], path)
    ref = E.KEC(4).fit(world["X"], knowledge=world["kf"])
    for knowledge in (world["doc"], path, str(path)):
        enc = HashEncoder(dim=16, anchors=world["enc"].anchors, weight=2.0)
        est = E.KEC(4, text_encoder=enc, keep_flagged=True).fit(world["X"],
                                                                 knowledge=knowledge)
        assert enc.calls, "the given encoder embeds the knowledge"
        assert est.lint_["kept_flagged"] and not est.lint_["dropped"]
        np.testing.assert_array_equal(est.labels_, ref.labels_)
        assert est.cluster_names_ == ref.cluster_names_
        assert sorted(est.knowledge_.names) == NAMES


def test_a_document_is_linted_and_flagged_items_dropped_by_default(world):
    doc = json.loads(json.dumps(world["doc"]))
    doc["concepts"][0]["attributes"].append("A")  # a placeholder answer
    enc = HashEncoder(dim=16, anchors=world["enc"].anchors, weight=2.0)
    est = E.KEC(4, text_encoder=enc).fit(world["X"], knowledge=doc)
    dropped = [d["text"] for d in est.lint_["dropped"]]
    assert "A" in dropped and "A" not in est.knowledge_.attr_texts
    kept = E.KEC(4, text_encoder=enc, keep_flagged=True).fit(world["X"], knowledge=doc)
    assert "A" in kept.knowledge_.attr_texts
    est.fit(world["X"], knowledge=world["kf"])  # embedded knowledge: nothing linted
    assert est.lint_ is None
    with pytest.raises(ClusteringInputError, match="knowledge"):
        E.KEC(4, text_encoder=enc).fit(world["X"], knowledge={"concepts": "not a list"})


def test_a_document_without_a_text_encoder_is_refused(world):
    with pytest.raises(ClusteringInputError, match="needs a text encoder"):
        E.KEC(4).fit(world["X"], knowledge=world["doc"])
    with pytest.raises(ClusteringInputError, match="spec string or an object"):
        E.KEC(4, text_encoder=42).fit(world["X"], knowledge=world["doc"])
    with pytest.raises(ClusteringInputError, match="knowledge must be"):
        E.KEC(4).fit(world["X"], knowledge=3.5)


CLIP = {"kind": "open_clip", "model": "ViT-B-32-quickgelu", "pretrained": "openai"}
MINILM = {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2", "pretrained": None}


class DescribedEncoder(HashEncoder):
    """The toy encoder, claiming to be a given real one."""

    def __init__(self, description, **kwargs):
        super().__init__(**kwargs)
        self.description = description

    def describe(self):
        return dict(self.description)


def _image_set(world, encoder=CLIP):
    return FeatureSet(world["X"], [f"img{i}" for i in range(len(world["X"]))],
                      metadata={"kind": "image", "encoder": dict(encoder)})


def test_feature_set_brings_its_encoder(world, monkeypatch):
    made = []

    def fake_create(spec):
        made.append(spec)
        return DescribedEncoder(MINILM if spec == "minilm" else CLIP, dim=16,
                                anchors=world["enc"].anchors, weight=2.0)

    monkeypatch.setattr(E, "_create_encoder", fake_create)
    fs = _image_set(world)
    est = E.KEC(4)
    est.fit(fs, knowledge=world["doc"])
    est.fit(fs, knowledge=world["doc"])
    assert made == ["clip:ViT-B-32-quickgelu:openai"], "made once, reused on refit"
    assert cluster_accuracy(world["y"], est.labels_) >= 0.9
    twin = pickle.loads(pickle.dumps(est))
    assert "_encoder_cache" not in vars(twin), "the encoder model is not pickled"
    np.testing.assert_array_equal(twin.labels_, est.labels_)
    assert twin.cluster_names_ == est.cluster_names_
    with pytest.raises(ClusteringInputError, match="not the encoder of the image features"):
        est.set_params(text_encoder="minilm").fit(fs, knowledge=world["doc"])
    assert made[-1] == "minilm"
    other = DescribedEncoder(MINILM, dim=16)
    with pytest.raises(ClusteringInputError, match="model 'ViT-B-32-quickgelu' != 'all-Mini"):
        E.KEC(4, text_encoder=other).fit(fs, knowledge=world["doc"])
    # an encoder that does not describe itself is trusted
    silent = SimpleNamespace(encode=world["enc"].encode)
    assert E.KEC(4, text_encoder=silent).fit(fs, knowledge=world["doc"]).clusters_


def test_text_feature_sets_must_match_the_images(world):
    nouns = FeatureSet(world["nouns"], world["noun_texts"],
                       metadata={"kind": "text", "encoder": dict(MINILM)})
    with pytest.raises(KecError, match="re-encode the texts"):
        E.TAC(4).fit(_image_set(world), nouns=nouns)
    nouns.metadata["encoder"] = dict(CLIP)
    E.TAC(4).fit(_image_set(world), nouns=nouns)


def test_texts_as_strings_or_feature_sets(world):
    enc = HashEncoder(dim=16, anchors=world["enc"].anchors, weight=2.0)
    ref = E.TAC(4).fit(world["X"], nouns=world["nouns"])
    est = E.TAC(4, text_encoder=enc).fit(world["X"], nouns=world["noun_texts"])
    np.testing.assert_array_equal(est.labels_, ref.labels_)
    fs = FeatureSet(world["nouns"], world["noun_texts"], metadata={"kind": "text"})
    np.testing.assert_array_equal(E.TAC(4).fit(world["X"], nouns=fs).labels_, ref.labels_)
    with pytest.raises(ClusteringInputError, match="load_features"):
        E.TAC(4).fit(world["X"], nouns="nouns.safetensors")


def test_missing_and_unused_inputs(world):
    with pytest.raises(ClusteringInputError, match="--knowledge"):
        E.KECCAE(4).fit(world["X"], nouns=world["nouns"])
    with pytest.raises(ClusteringInputError, match="--nouns"):
        E.CAE(4).fit(world["X"])
    with pytest.warns(UserWarning, match="does not use nouns"):
        E.KMeansBaseline(4).fit(world["X"], nouns=world["nouns"])


def test_cae_takes_captions_from_the_knowledge(world):
    X, nouns = world["X"], world["nouns"]
    with_kf = E.CAE(4).fit(X, nouns=nouns, knowledge=world["kf"])
    assert with_kf.result_.params["captions"] is True
    assert "ot_captions" in with_kf.result_.info
    np.testing.assert_array_equal(
        with_kf.labels_, run_method("cae", X, 4, nouns=nouns,
                                    captions=world["kf"].caption_emb).labels)
    enc = HashEncoder(dim=16)
    E.CAE(4, text_encoder=enc).fit(X, nouns=nouns, captions=world["captions"],
                                   knowledge=world["doc"])
    assert not enc.calls, "given captions make the knowledge useless: not embedded"
    no_caps = knowledge_features(make_doc({n: ([n], [f"{n} x"]) for n in NAMES}, []),
                                 world["enc"])
    with pytest.raises(ClusteringInputError, match="holds no captions"):
        E.CAE(4).fit(X, nouns=nouns, knowledge=no_caps)


def test_method_params_pass_through(world, monkeypatch):
    import kec.cluster.methods as M

    seen = {}
    original = M.run_kec

    def run_kec(X, knowledge, n_clusters, *, probe=None, **kwargs):  # a new keyword
        seen["probe"] = probe
        return original(X, knowledge, n_clusters, **kwargs)

    monkeypatch.setattr(M, "run_kec", run_kec)
    E.KEC(4, method_params={"probe": "here"}).fit(world["X"], knowledge=world["kf"])
    assert seen == {"probe": "here"}
    monkeypatch.undo()
    est = E.KMeansBaseline(4, method_params={"keep_features": True})
    with pytest.raises(ClusteringInputError, match="repeats constructor parameters"):
        est.fit(world["X"])
    est = E.TAC(4, method_params={"n_classes": 4, "rule": "3k"})
    with pytest.raises(ClusteringInputError, match="repeats"):
        est.fit(world["X"], nouns=world["nouns"])
    est = E.KEC(4, method_params={"no_such_option": 1})
    with pytest.raises(ClusteringInputError, match=r"no_such_option.*not parameters of run_kec"):
        est.fit(world["X"], knowledge=world["kf"])
    with pytest.raises(ClusteringInputError, match="must be a dict"):
        E.KEC(4, method_params=[1]).fit(world["X"], knowledge=world["kf"])


def test_keep_features_and_errors_from_the_method(world):
    est = E.KMeansBaseline(4, keep_features=True).fit(world["X"])
    np.testing.assert_allclose(est.result_.features, world["X"], atol=1e-6)
    with pytest.raises(ClusteringInputError, match="dimension mismatch"):
        E.KEC(4).fit(world["X"][:, :8], knowledge=world["kf"])


@pytest.mark.parametrize("name", R.method_names())
def test_scikit_learn_api_checks(name):
    from sklearn.utils import estimator_checks as ec

    est = ESTIMATORS[name]()
    cls = type(est).__name__
    ec.check_no_attributes_set_in_init(cls, est)
    ec.check_parameters_default_constructible(cls, est)
    ec.check_get_params_invariance(cls, est)
    ec.check_estimator_cloneable(cls, est)
    ec.check_estimator_repr(cls, est)
    ec.check_do_not_raise_errors_in_init_or_set_params(cls, est)


def test_fit_leaves_the_parameters_alone(world):
    params = {"clusterer_params": {"n_init": 2}, "method_params": None}
    est = E.KEC(4, text_encoder=world["enc"], **params)
    before = est.get_params()
    est.fit(world["X"], knowledge=world["doc"])
    after = est.get_params()
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before)
    assert params["clusterer_params"] == {"n_init": 2}


@pytest.mark.parametrize("name", R.method_names())
@pytest.mark.parametrize("seed", [-1, 2**32, True, "0", 1.5])
def test_a_bad_random_state_is_a_value_error_before_any_work(world, name, seed):
    est = ESTIMATORS[name](n_clusters=4, random_state=seed)
    with pytest.raises(ValueError, match="random_state must be"):
        est.fit(world["X"], **_inputs(world, name))


@pytest.mark.parametrize("seed", [0, 2**32 - 1, None, np.random.default_rng(1)])
def test_every_valid_random_state_is_taken(world, seed):
    labels = ESTIMATORS["kmeans"](n_clusters=4, random_state=seed).fit_predict(world["X"])
    assert cluster_accuracy(world["y"], labels) >= 0.9
