"""CAE's adaptive fusion and KEC's concatenation."""

from __future__ import annotations

import numpy as np
import pytest

from kec.cluster import ClusteringInputError
from kec.cluster.fusion import (
    adaptive_fusion,
    adaptive_weights,
    concat,
    kec_concat,
    weighted_concat,
    weighted_sum,
)
from tests.cluster.helpers import random_unit, unit


def test_adaptive_weights_hand_example():
    x = unit(np.array([[1.0, 0.0]]))
    xu = unit(np.array([[0.0, 1.0]]))
    xv = unit(np.array([[0.6, 0.8]]))
    gamma = 0.5
    p = unit((x + xu + xv) / 3)
    cos = np.array([float(m[0] @ p[0]) for m in (x, xu, xv)])
    expected = np.exp(cos / gamma) / np.exp(cos / gamma).sum()
    np.testing.assert_allclose(adaptive_weights([x, xu, xv], gamma)[0], expected, rtol=1e-5)
    # gamma = 0.01 (CAE) nearly selects the modality closest to the prototype
    assert adaptive_weights([x, xu, xv])[0].argmax() == 2


def test_sum_and_concat():
    mods = [random_unit(5, 3, seed=s) for s in range(3)]
    w = adaptive_weights(mods)
    np.testing.assert_allclose(w.sum(1), 1, rtol=1e-6)
    fused, w2 = adaptive_fusion(mods, mode="sum")
    np.testing.assert_allclose(fused, sum(w[:, [k]] * mods[k] for k in range(3)), atol=1e-6)
    np.testing.assert_array_equal(w, w2)
    cat, _ = adaptive_fusion(mods, mode="concat")
    assert cat.shape == (5, 9)
    np.testing.assert_allclose(cat[:, 3:6], w[:, [1]] * mods[1], atol=1e-6)
    np.testing.assert_allclose(weighted_sum(mods, w), fused)
    np.testing.assert_allclose(weighted_concat(mods, w), cat)


def test_kec_concat_and_concat():
    X = random_unit(4, 3, seed=1)
    kappa = 1.8 * random_unit(4, 3, seed=2)
    out = kec_concat(X, kappa)
    np.testing.assert_allclose(out[:, :3], X, atol=1e-6)
    np.testing.assert_allclose(out[:, 3:], kappa / 1.8, atol=1e-6)
    np.testing.assert_allclose(kec_concat(X, kappa, normalize=False)[:, 3:], kappa)
    assert concat([X, X[:, :2]]).shape == (4, 5)


def test_errors():
    X = random_unit(4, 3)
    with pytest.raises(ClusteringInputError, match="modality 1 has shape"):
        adaptive_weights([X, X[:3]])
    with pytest.raises(ClusteringInputError, match="at least one"):
        adaptive_weights([])
    with pytest.raises(ClusteringInputError, match="gamma"):
        adaptive_weights([X, X], gamma=-1)
    with pytest.raises(ClusteringInputError, match="fusion mode"):
        adaptive_fusion([X, X], mode="max")
    with pytest.raises(ClusteringInputError, match="weights have shape"):
        weighted_sum([X, X], np.ones((4, 3)))
    with pytest.raises(ClusteringInputError, match="kappa has shape"):
        kec_concat(X, X[:, :2])
    with pytest.raises(ClusteringInputError, match="different numbers of rows"):
        concat([X, X[:2]])


def test_adaptive_fusion_on_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    from kec.cluster.fusion import _sum_of, _weights_of, adaptive_fusion

    rng = np.random.default_rng(5)
    mods = [rng.standard_normal((200, 8)).astype(np.float32) for _ in range(3)]
    ref_f, ref_w = adaptive_fusion(mods, 0.05)
    # the device path (what device="cuda" runs), on CPU tensors
    tmods = [torch.from_numpy(m) for m in mods]
    got_w = _weights_of(tmods, 0.05)
    got_f = _sum_of(tmods, got_w)
    assert isinstance(got_f, torch.Tensor) and got_w.dtype == torch.float32
    np.testing.assert_allclose(got_w.numpy(), ref_w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got_f.numpy(), ref_f, rtol=1e-4, atol=1e-5)
    # the weights follow the agreement with the mean direction: a modality that is the
    # negation of another gets (near) zero weight everywhere
    _, w = adaptive_fusion([mods[0], mods[0], -mods[0]], 0.05)
    assert w[:, 2].max() < 1e-6
