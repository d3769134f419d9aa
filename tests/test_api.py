"""The top-level Python API: the README's snippet runs, the factories, the exports.

"Images" here are MiniLM embeddings of short scene descriptions of the ten CIFAR-10
classes (a real text space, so concept names and attributes ground meaningfully), saved
as a kec feature file that records MiniLM as its encoder; nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import io
import re
import runpy
from pathlib import Path

import numpy as np
import pytest

import kec
from kec.cluster import estimators as E
from kec.errors import InvalidKnowledgeError, KecError
from kec.features import save_features
from kec.knowledge.document import save_knowledge
from tests.knowledge.docs import make_doc

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]
SCENES = ["a photo of a {}.", "a blurry photo of the {}.", "a {} seen from the side.",
          "a close-up of a {}.", "a small {} in the distance.", "a {} on a sunny day.",
          "a black and white photo of a {}.", "a {} at night."]
ATTRIBUTES = {
    "airplane": ["long wings", "jet engines"], "automobile": ["four wheels", "car doors"],
    "bird": ["feathers", "a small beak"], "cat": ["whiskers", "pointed ears"],
    "deer": ["antlers", "slender legs"], "dog": ["floppy ears", "a wagging tail"],
    "frog": ["green moist skin", "bulging eyes"], "horse": ["a long mane", "hooves"],
    "ship": ["a hull on water", "a tall mast"], "truck": ["a cargo box", "large wheels"],
}


def readme_snippet() -> str:
    """The first ``python`` block of the README's "Python API" section."""
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("\n## Python API\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, minilm):
    """``photos.features.safetensors`` (120 rows, labelled) and ``photos.knowledge.json``."""
    folder = tmp_path_factory.mktemp("photos")
    texts = [s.format(c) for c in CLASSES for s in SCENES]
    labels = [c for c in CLASSES for _ in SCENES]
    X = minilm.encode(texts)
    save_features(folder / "photos.features.safetensors", X, ids=texts, labels=labels,
                  kind="image", encoder=minilm.describe())
    doc = make_doc({c: ([c], ATTRIBUTES[c]) for c in CLASSES},
                   [("cat", "dog", ["cats have slit pupils"]),
                    ("automobile", "truck", ["a car is low, a truck is tall"])])
    save_knowledge(doc, folder / "photos.knowledge.json")
    return folder, np.array(labels)


@pytest.fixture
def shared_minilm(monkeypatch, minilm):
    """Hand the session's MiniLM to the estimators (one model load per test session) and
    record which encoder specs they asked for."""
    asked: list[str] = []

    def create(spec: str):
        asked.append(spec)
        assert spec == "minilm", spec
        return minilm

    monkeypatch.setattr(E, "_create_encoder", create)
    return asked


def _majority_named(names, labels_pred, truth) -> int:
    hits = 0
    for c, name in enumerate(names):
        members = truth[labels_pred == c]
        if members.size and name == max(set(members), key=list(members).count):
            hits += 1
    return hits


@pytest.mark.slow
def test_readme_snippet_gives_named_clusters(photos, shared_minilm, monkeypatch):
    folder, truth = photos
    code = readme_snippet()
    lines = [ln for ln in code.splitlines() if ln.strip()]
    assert len(lines) <= 6, "the README promises at most 6 lines"
    monkeypatch.chdir(folder)
    out = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), namespace)
    model = namespace["model"]
    assert shared_minilm == ["minilm"], "the text encoder comes from the feature file"
    names = model.cluster_names_
    assert len(names) == 10 and set(names) <= set(CLASSES)
    assert len(set(names)) >= 8
    assert _majority_named(names, model.labels_, truth) >= 8
    printed = out.getvalue().splitlines()
    assert len(printed) == 10
    for line, c in zip(printed, model.clusters_):
        assert line.startswith(f"{c['cluster']} {c['size']} {c['name']} [")
    some = {a["text"] for c in model.clusters_ for a in c["attributes"]}
    assert some & {t for ts in ATTRIBUTES.values() for t in ts}


@pytest.mark.slow
def test_example_script_matches_the_readme(photos, shared_minilm, capsys):
    folder, _ = photos
    module = runpy.run_path(str(ROOT / "examples" / "notebook_example.py"))
    names = module["main"](str(folder / "photos.features.safetensors"),
                           str(folder / "photos.knowledge.json"), 10)
    assert len(capsys.readouterr().out.splitlines()) == 10
    assert len(set(names)) >= 8 and set(names) <= set(CLASSES)


def test_top_level_exports():
    from kec import (
        CAE,
        KEC,
        KECCAE,
        TAC,
        KMeansBaseline,
        SphericalKMeans,
        create_text_encoder,
        load_features,
        load_knowledge,
    )
    from kec.cluster.kmeans import SphericalKMeans as Original

    assert SphericalKMeans is Original
    for cls in (CAE, KEC, KECCAE, TAC, KMeansBaseline):
        assert cls.__module__ == "kec.cluster.estimators"
    assert all(callable(f) for f in (create_text_encoder, load_features, load_knowledge))
    assert kec.method_names() == ("kmeans", "tac", "kec", "cae", "kec+cae")


@pytest.mark.slow
def test_factories_read_and_validate(photos, tmp_path):
    folder, truth = photos
    fs = kec.load_features(folder / "photos.features.safetensors", kind="image")
    assert fs.features.shape == (80, 384) and fs.labels == list(truth)
    doc = kec.load_knowledge(folder / "photos.knowledge.json")
    assert sorted(c["name"] for c in doc["concepts"]) == CLASSES
    bad = tmp_path / "bad.json"
    bad.write_text('{"concepts": []}', "utf-8")
    with pytest.raises(InvalidKnowledgeError):
        kec.load_knowledge(bad)
    with pytest.raises(KecError, match="spec"):
        kec.create_text_encoder("nonsense")


@pytest.mark.slow
def test_embed_knowledge_once_for_several_fits(photos, minilm):
    folder, truth = photos
    kf = kec.embed_knowledge(folder / "photos.knowledge.json", minilm)
    assert kf.n_concepts == 10 and kf.dim == 384
    fs = kec.load_features(folder / "photos.features.safetensors")
    a = kec.KEC(10).fit(fs, knowledge=kf)
    b = kec.KECCAE(10).fit(fs.features, knowledge=kf)
    for model in (a, b):
        assert _majority_named(model.cluster_names_, model.labels_, truth) >= 8


CITATION = re.compile(r"(?:docs/methods\.md|\bMETHODS(?:\.md)?) §(\d+(?:\.\d+)?)"
                      r"(?:\s*[–-]\s*(\d+(?:\.\d+)?))?")


def test_every_cited_section_of_docs_methods_exists():
    text = (ROOT / "docs" / "methods.md").read_text("utf-8")
    sections = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)[. ]", text, re.M))
    anchors = set(re.findall(r'<a id="s([\d-]+)"></a>', text))
    assert {"1", "1.4", "2.4", "3.2", "4.4", "5.2", "6.2"} <= sections
    assert {s.replace(".", "-") for s in sections} == anchors, "one anchor per section"
    cited: dict[str, str] = {}
    files = [*sorted((ROOT / "kec").rglob("*.py")), ROOT / "README.md"]
    for path in files:
        for m in CITATION.finditer(path.read_text("utf-8")):
            for sec in filter(None, m.groups()):
                cited.setdefault(sec, str(path.relative_to(ROOT)))
    from kec.cluster.registry import method_names, method_spec

    for name in method_names():
        cited.setdefault(method_spec(name).section, "kec.cluster.registry")
    assert len(cited) > 10
    missing = {sec: where for sec, where in cited.items() if sec not in sections}
    assert not missing, f"cited but absent from docs/methods.md: {missing}"


def test_a_missing_knowledge_path_is_a_file_not_found_error(tmp_path):
    import numpy as np

    import kec
    from kec.errors import KecError

    for error in (FileNotFoundError, KecError):
        with pytest.raises(error, match="file not found"):
            kec.load_knowledge(tmp_path / "missing.json")
        with pytest.raises(error, match="file not found"):
            kec.KEC(2).fit(np.eye(4, 8, dtype=np.float32), knowledge=tmp_path / "missing.json")
