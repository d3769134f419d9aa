import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kec.knowledge.grouping import group_by_similarity, select_pairs


def test_components_of_thresholded_graph_hand_example():
    # a~b (cos .96), b~c (cos .96) but a,c only .85: chained into one component at .9
    e = np.array([[1.0, 0.0], [0.96, 0.28], [0.85, 0.527], [0.0, 1.0]])
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    assert group_by_similarity(e, 0.9) == [[0, 1, 2], [3]]
    assert group_by_similarity(e, 0.99) == [[0], [1], [2], [3]]
    assert group_by_similarity(e, -1.0) == [[0, 1, 2, 3]]


def test_grouping_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        group_by_similarity(np.array([[np.nan, 1.0]]), 0.5)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 12), st.just(4)),
              elements=st.floats(-1, 1, allow_nan=False)).filter(
    lambda a: (np.linalg.norm(a, axis=1) > 1e-3).all()),
       st.floats(-0.5, 0.99))
def test_grouping_is_a_partition(emb, thr):
    groups = group_by_similarity(emb, thr)
    flat = sorted(i for g in groups for i in g)
    assert flat == list(range(len(emb)))


def test_pairs_hand_example():
    # two tight couples {0, 1} and {2, 3}, far apart: with a sharp softmax the first
    # partner already carries the mass beta, so only the couples are paired
    e = np.array([[1.0, 0.0, 0.0, 0.0], [0.9, 0.436, 0.0, 0.0],
                  [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.9, 0.436]])
    pairs = select_pairs(e, mass=0.8, temperature=0.05, max_per_concept=3)
    assert {(i, j) for i, j, _ in pairs} == {(0, 1), (2, 3)}
    # a flat softmax (high temperature) needs more partners to reach the mass
    flat = select_pairs(e, mass=0.8, temperature=10.0, max_per_concept=3)
    assert len(flat) > 2
    sim01 = next(s for i, j, s in pairs if (i, j) == (0, 1))
    assert sim01 == pytest.approx(0.9 / np.linalg.norm([0.9, 0.436]), abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 10), st.just(3)),
              elements=st.floats(-1, 1, allow_nan=False)).filter(
    lambda a: (np.linalg.norm(a, axis=1) > 1e-3).all()),
       st.floats(0.05, 1.0), st.integers(1, 4))
def test_pair_laws(emb, mass, cap):
    pairs = select_pairs(emb, mass=mass, temperature=0.1, max_per_concept=cap)
    keys = [(i, j) for i, j, _ in pairs]
    assert len(keys) == len(set(keys))
    assert all(i < j for i, j in keys)
    # every concept has at least one partner (its nearest neighbour), never more than cap
    # from its own selection
    partners = {i: set() for i in range(len(emb))}
    for i, j in keys:
        partners[i].add(j)
        partners[j].add(i)
    assert all(partners[i] for i in partners)
    assert len(keys) <= cap * len(emb)


def test_pairs_parameters_validated():
    e = np.eye(3)
    with pytest.raises(ValueError):
        select_pairs(e, mass=0)
    with pytest.raises(ValueError):
        select_pairs(e, temperature=0)
    assert select_pairs(e[:1]) == []


def test_scaffold_groups_match_their_schema_and_bad_ones_are_refused(tmp_path):
    import json

    import numpy as np
    import pytest

    from kec.cluster.scaffold import build_groups
    from kec.knowledge.labels import LabelError, groups_errors, read_groups

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 8)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    T = rng.standard_normal((20, 8)).astype(np.float32)
    T /= np.linalg.norm(T, axis=1, keepdims=True)
    doc = build_groups(X, T, [f"noun{i}" for i in range(20)], n_overclusters=6)
    assert groups_errors(doc) == []
    path = tmp_path / "groups.json"
    path.write_text(json.dumps(doc))
    assert read_groups(path)
    doc["groups"][0]["labels"] = []  # a kec groups file that breaks its schema
    path.write_text(json.dumps(doc))
    with pytest.raises(LabelError, match="not a valid kec groups file"):
        read_groups(path)
