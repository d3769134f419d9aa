"""docs/api.md documents every key of ``MethodResult.info``: the doc cannot drift.

Every method runs (with every fusion, with and without the optional text levels) on
small toy data, and guarded fusion in each of its modes; every key it reports must be in
the doc's tables, and every key the tables list must be reported by some run (only
``distributed`` comes from ``run_clustering`` and is not run here).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from kec.cluster.guard import guarded_cluster
from kec.cluster.methods import run_method
from tests.cluster.helpers import blobs, toy_world, unit

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def doc_table_keys(heading: str) -> set[str]:
    """The backticked names in the first column of the table under ``### heading``."""
    lines = API_DOC.read_text("utf-8").splitlines()
    start = lines.index(f"### {heading}")
    keys: set[str] = set()
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        first = line.split("|")[1]
        keys.update(re.findall(r"`([^`]+)`", first))
    assert keys, f"no table under '### {heading}' in {API_DOC}"
    return keys


@pytest.fixture(scope="module")
def runs() -> dict[str, dict]:
    """``info`` of every method and fusion on a toy world of three concepts."""
    X, _, nouns, captions, kf = toy_world(["apple", "boat", "cat"], 12, spread=0.3, seed=0)
    levels = {"nouns": nouns, "captions": captions}
    cases = {
        "kmeans": ("kmeans", {}, {}),
        "tac": ("tac", {"nouns": nouns}, {}),
        "cae": ("cae", {"nouns": nouns}, {}),
        "cae+captions": ("cae", levels, {}),
        "kec": ("kec", {"knowledge": kf}, {}),
        "kec concat": ("kec", {"knowledge": kf}, {"fusion": "concat"}),
        "kec+cae": ("kec+cae", {"knowledge": kf}, {}),
        "kec+cae guarded, levels": ("kec+cae", {"knowledge": kf, **levels}, {}),
        "kec+cae adaptive": ("kec+cae", {"knowledge": kf, **levels}, {"fusion": "adaptive"}),
        "kec+cae kec": ("kec+cae", {"knowledge": kf, "nouns": nouns}, {"fusion": "kec"}),
    }
    return {name: run_method(method, X, 3, random_state=0, **inputs, **params).info
            for name, (method, inputs, params) in cases.items()}


def _nuisance_world() -> tuple[np.ndarray, np.ndarray]:
    """Classes under a stronger independent nuisance, and a concept view of the classes
    (as in test_guard.py): guarded fusion projects the nuisance out."""
    rng = np.random.default_rng(0)
    k, m, d, per = 4, 4, 48, 40
    basis = np.linalg.qr(rng.standard_normal((d, k + m)))[0].T
    y = np.repeat(np.arange(k), per)
    g = rng.permutation(y.size) % m
    X = unit(2.5 * basis[k + g] + 1.0 * basis[y] + 0.3 * rng.standard_normal((y.size, d)))
    c = unit(basis[:k][y] + 0.8 * np.random.default_rng(1).standard_normal((y.size, d)) / 7)
    return X, c


@pytest.fixture(scope="module")
def guard_infos() -> dict[str, dict]:
    """``info["guard"]`` in every mode and on every path to it."""
    X, c = _nuisance_world()
    junk = unit(np.random.default_rng(2).standard_normal(X.shape))
    Xb, _, _ = blobs(20, 3, d=16, spread=0.2, seed=0)
    few = unit(np.random.default_rng(0).standard_normal((9, 16)))
    # knowledge that merges classes 0 and 1 and splits class 2: trusted, but too costly
    Xs, ys, centres = blobs(40, 4, d=16, spread=0.4, seed=2)
    wrong = np.where(ys == 1, 0, ys)
    wrong[np.flatnonzero(ys == 2)[:20]] = 1
    cases = {
        "nuisance": (X, c, c, 4, {}),
        "data, residual tested": (X, junk, junk, 4, {}),
        "refine": (Xb, Xb, None, 3, {}),
        "refine, spread not checked": (Xb, Xb, None, 3, {"spread_ratio": float("inf")}),
        "data, refinement refused": (Xs, unit(centres[wrong] + 0.01), None, 4, {}),
        "data, too few items": (Xb[:9], few, None, 3, {}),
    }
    out = {}
    for name, (x, concept, attribute, k, kw) in cases.items():
        out[name] = guarded_cluster(x, concept, attribute, k, **kw)[2].info
    return out


def test_every_top_level_info_key_is_documented(runs: dict[str, dict]) -> None:
    documented = doc_table_keys("Top-level keys")
    for name, info in runs.items():
        assert not set(info) - documented, f"{name}: undocumented info keys " \
                                           f"{sorted(set(info) - documented)} (docs/api.md)"
    produced = set().union(*runs.values())
    assert documented - produced == {"distributed"}, "documented but never produced"
    assert runs["kmeans"] == {} and runs["kec concat"] == {}


def test_guard_keys_are_documented_in_every_mode(runs: dict[str, dict],
                                                  guard_infos: dict[str, dict]) -> None:
    assert {info["mode"] for info in guard_infos.values()} == {"data", "refine", "nuisance"}
    assert guard_infos["data, refinement refused"]["refinement"]["kept"] is False
    documented = doc_table_keys("`guard`: guarded fusion's decision")
    infos = {**guard_infos, **{n: i["guard"] for n, i in runs.items() if "guard" in i}}
    for name, info in infos.items():
        assert not set(info) - documented, f"guard ({name}): undocumented keys " \
                                           f"{sorted(set(info) - documented)}"
    assert set().union(*infos.values()) == documented, "documented but never produced"
    refinement = doc_table_keys("`guard.refinement`")
    tried = [i["refinement"] for i in infos.values() if "refinement" in i]
    for r in tried:
        assert not set(r) - refinement, f"undocumented refinement keys {set(r) - refinement}"
    assert set().union(*tried) == refinement


def test_ot_summary_keys_are_documented(runs: dict[str, dict]) -> None:
    """Concept and attribute OT summaries: the table's keys; the level solves: those
    keys plus the solver details the paragraph under the table names."""
    documented = doc_table_keys("OT summaries")
    text = API_DOC.read_text("utf-8").split("### OT summaries", 1)[1]
    details = set(re.findall(r"`([a-z_]+)`", text.split("\n\n")[-1]))
    for name, info in runs.items():
        for key in ("concept_ot", "attribute_ot"):
            if key in info:
                assert set(info[key]) <= documented, (name, key)
        for key in ("ot_nouns", "ot_captions"):
            if key in info:
                assert set(info[key]) <= documented | details, \
                    (name, key, sorted(set(info[key]) - documented - details))
