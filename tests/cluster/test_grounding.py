"""KEC's grounding equations on a hand-sized example, and the OT grounding."""

from __future__ import annotations

import numpy as np
import pytest

from kec.cluster import ClusteringInputError
from kec.cluster.grounding import (
    attribute_means,
    concept_weights,
    ground_ot,
    ground_softmax,
    mean_weights_per_cluster,
)
from kec.cluster.ot import plan_from_duals, solve_ot
from tests.cluster.helpers import random_unit, unit


@pytest.fixture()
def tiny():
    X = unit(np.array([[1.0, 0.2, 0.0], [0.1, 1.0, 0.3], [0.2, 0.1, 1.0]]))
    phi = unit(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    psi = unit(np.array([[1.0, 0.1, 0.1], [0.1, 1.0, 0.0]]))
    xi = unit(np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))
    owners = [np.array([0, 1]), np.array([2])]  # concept 0 has two attributes, 1 has one
    return X, phi + psi, xi, owners


def test_equations_exactly_as_written(tiny):
    X, zeta, xi, owners = tiny
    T = 0.1
    g = ground_softmax(X, zeta, attribute_means(xi, owners), T)
    for i in range(3):
        logits = np.array([X[i] @ zeta[q] for q in range(2)]) / T
        omega = np.exp(logits - logits.max())
        omega /= omega.sum()
        np.testing.assert_allclose(g.concept_weights[i], omega, rtol=1e-5)
        xibar = [np.mean([X[i] * xi[j] for j in owners[q]], axis=0) for q in range(2)]
        c = sum(omega[q] * zeta[q] for q in range(2))
        a = sum(omega[q] * xibar[q] for q in range(2))
        np.testing.assert_allclose(g.concept[i], c, atol=1e-6)
        np.testing.assert_allclose(g.attribute[i], a, atol=1e-6)
        np.testing.assert_allclose(g.kappa[i], c + a, atol=1e-6)
    assert g.method == "softmax"


def test_concept_without_attributes_adds_nothing(tiny):
    X, zeta, xi, _ = tiny
    means = attribute_means(xi, [np.array([0]), np.array([], dtype=np.int64)])
    np.testing.assert_array_equal(means[1], 0)
    g = ground_softmax(X, zeta, means, 0.05)
    np.testing.assert_allclose(g.attribute, X * (g.concept_weights[:, :1] * xi[0]), atol=1e-6)


def test_low_temperature_is_argmax_and_weights_sum_to_one(tiny):
    X, zeta, _, _ = tiny
    w = concept_weights(X, zeta, 1e-4)
    np.testing.assert_allclose(w.sum(1), 1, rtol=1e-6)
    np.testing.assert_array_equal(w.argmax(1), (X @ zeta.T).argmax(1))
    assert w.max(1).min() > 0.99


def test_ground_ot_matches_its_plans():
    X = random_unit(60, 8, seed=1)
    zeta = random_unit(5, 8, seed=2) * 1.8
    attrs = random_unit(12, 8, seed=3)
    g = ground_ot(X, zeta, attrs, reg=0.05, ot_params={"tol": 1e-9})
    Zn = unit(zeta)
    T = plan_from_duals(X, Zn, g.concept_ot)
    np.testing.assert_allclose(g.concept_weights, T / T.sum(1, keepdims=True), atol=1e-5)
    S = X.astype(float) @ Zn.T.astype(float)
    np.testing.assert_allclose(g.concept, unit((T * S) @ Zn), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(g.attribute, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(g.kappa, g.concept + g.attribute, atol=1e-6)
    # every concept receives its 1/Q share of the images (the column constraint)
    np.testing.assert_allclose(g.concept_weights.sum(0) / 60, 1 / 5, atol=1e-4)


def test_ground_ot_elementwise_attributes():
    X = random_unit(30, 6, seed=4)
    attrs = random_unit(7, 6, seed=5)
    g = ground_ot(X, random_unit(3, 6, seed=6), attrs, reg=0.05,
                  attribute_mode="elementwise", ot_params={"tol": 1e-9})
    T = plan_from_duals(X, attrs, g.attribute_ot)
    P = T / T.sum(1, keepdims=True)
    np.testing.assert_allclose(g.attribute, X * (P @ attrs), atol=1e-5)


def test_mean_weights_per_cluster():
    X = random_unit(20, 4, seed=7)
    U = random_unit(6, 4, seed=8)
    labels = np.arange(20) % 3
    got = mean_weights_per_cluster(X, U, labels, 4, temperature=0.2)
    logits = X.astype(float) @ U.T / 0.2
    w = np.exp(logits - logits.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    for c in range(3):
        np.testing.assert_allclose(got[c], w[labels == c].mean(0), atol=1e-6)
    np.testing.assert_array_equal(got[3], 0)  # empty cluster
    res = solve_ot(X, U, reg=0.1)
    T = plan_from_duals(X, U, res)
    got = mean_weights_per_cluster(X, U, labels, 3, ot=res)
    np.testing.assert_allclose(got[0], (T / T.sum(1, keepdims=True))[labels == 0].mean(0),
                               atol=1e-5)


def test_errors(tiny):
    X, zeta, xi, owners = tiny
    with pytest.raises(ClusteringInputError, match="dimension mismatch"):
        ground_softmax(X[:, :2], zeta, attribute_means(xi, owners))
    with pytest.raises(ClusteringInputError, match="one row per concept"):
        ground_softmax(X, zeta, attribute_means(xi, owners)[:1])
    with pytest.raises(ClusteringInputError, match="temperature"):
        concept_weights(X, zeta, 0.0)
    with pytest.raises(ClusteringInputError, match="attribute_mode"):
        ground_ot(X, zeta, xi, attribute_mode="mean")


def test_torch_weight_blocks_match_numpy():
    """One code path: torch tensors (CPU here, CUDA on a GPU) give numpy's weights."""
    torch = pytest.importorskip("torch")
    from kec.cluster.grounding import mean_weights_per_cluster, weight_blocks
    from kec.cluster.ot import solve_ot

    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 16)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    U = rng.standard_normal((7, 16)).astype(np.float32)
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    labels = rng.integers(0, 4, 300)
    res = solve_ot(X, U)
    for kw in ({"temperature": 0.05}, {"ot": res}):
        ref = np.concatenate([w for _, w in weight_blocks(X, U, **kw)])
        got = [w for _, w in weight_blocks(torch.from_numpy(X), U, **kw)]
        assert all(isinstance(w, torch.Tensor) for w in got)
        np.testing.assert_allclose(torch.cat(got).numpy(), ref, rtol=1e-5, atol=1e-6)
        m_ref = mean_weights_per_cluster(X, U, labels, 4, **kw)
        m_t = mean_weights_per_cluster(torch.from_numpy(X), U, labels, 4, **kw)
        np.testing.assert_allclose(m_t, m_ref, rtol=1e-5, atol=1e-7)
        # the means really are per cluster: cluster 0's row is its members' mean
        np.testing.assert_allclose(m_ref[0], ref[labels == 0].mean(0), rtol=1e-5, atol=1e-7)
