"""Guarded fusion: the three modes, Lloyd's fixed point, and the data's last word."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kec.cluster import guard
from kec.cluster.guard import (
    decide,
    guarded_cluster,
    lloyd_refine,
    nuisance_residual,
    spread_trust,
    trust_weight,
)
from tests.cluster.helpers import blobs, unit


def test_knowledge_that_matches_the_data_refines():
    X, y, centres = blobs(40, 4, d=16, spread=0.4, seed=1)
    c = unit(centres[y] + 0.05)  # concept view: the true class directions
    dec = decide(X, c, 4)
    assert dec.mode == "refine" and dec.agreement > 0.9 and dec.corroboration is None


def test_random_knowledge_is_not_used():
    X, _, _ = blobs(40, 4, d=16, spread=0.4, seed=1)
    rng = np.random.default_rng(0)
    c, a = unit(rng.standard_normal(X.shape)), unit(rng.standard_normal(X.shape))
    labels, feats, dec = guarded_cluster(X, c, a, 4)
    assert dec.mode == "data" and dec.corroboration < 0.2
    np.testing.assert_array_equal(labels, dec.data_labels)
    assert feats.shape == X.shape


def test_consistent_knowledge_the_data_does_not_corroborate_is_not_used():
    # self-consistent knowledge of a partition that nothing in X shows: it must not lead
    X, _, _ = blobs(40, 4, d=16, spread=0.4, seed=1)
    rng = np.random.default_rng(0)
    other = rng.permutation(X.shape[0]) % 4  # a partition independent of X's clusters
    dirs = unit(rng.standard_normal((4, 16)))
    c = unit(dirs[other] + 0.05 * rng.standard_normal(X.shape))
    labels, _, dec = guarded_cluster(X, c, c, 4)
    assert dec.mode == "data" and dec.agreement < 0.2 and dec.corroboration < 0.2
    np.testing.assert_array_equal(labels, dec.data_labels)


def _nuisance_blobs(seed=0, k=4, m=4, d=48, per=40):
    """Classes along k directions, a stronger nuisance along m others, independent."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, k + m)))[0].T
    y = np.repeat(np.arange(k), per)
    g = rng.permutation(y.size) % m
    X = unit(2.5 * basis[k + g] + 1.0 * basis[y] + 0.3 * rng.standard_normal((y.size, d)))
    return X, y, g, basis[:k]


def test_nuisance_is_projected_out_when_the_knowledge_is_corroborated():
    from kec.cluster.metrics import cluster_accuracy

    X, y, g, classes = _nuisance_blobs()
    assert cluster_accuracy(g, decide(X, X, 4).data_labels) > 0.9  # x follows the nuisance
    c = unit(classes[y] + 0.8 * np.random.default_rng(1).standard_normal((y.size, 48)) / 7)
    labels, feats, dec = guarded_cluster(X, c, None, 4)
    assert dec.mode == "nuisance" and dec.corroboration > max(0.5, dec.agreement)
    assert cluster_accuracy(y, labels) >= 0.95
    assert feats.shape == (X.shape[0], 2 * X.shape[1])
    # x_perp (the first block) carries no nuisance: its k-means finds the classes
    assert cluster_accuracy(y, dec.residual_labels) >= 0.9
    # beta = 0: the partition is the (checked) refinement on x_perp alone
    labels0, _, dec0 = guarded_cluster(X, c, None, 4, beta=0.0)
    assert dec0.info["kept"] in ("refined", "kmeans") and cluster_accuracy(y, labels0) >= 0.9


def test_junk_knowledge_on_nuisance_data_falls_back_to_the_data():
    X, _, _, _ = _nuisance_blobs()
    junk = unit(np.random.default_rng(2).standard_normal(X.shape))
    labels, _, dec = guarded_cluster(X, junk, junk, 4)
    assert dec.mode == "data"
    np.testing.assert_array_equal(labels, dec.data_labels)


def test_more_clusters_than_the_dimension_allows_projects_the_strongest_directions():
    """K - 1 > d/4: the d/4 most separating directions of the raw clusters go."""
    from kec.cluster.metrics import cluster_accuracy

    rng = np.random.default_rng(0)
    d, k, m, per = 128, 80, 10, 25
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0].T
    classes = unit(rng.standard_normal((k, d - m)) @ basis[m:])  # off the nuisance dims
    y = np.repeat(np.arange(k), per)
    g = rng.integers(0, m, y.size)
    X = unit(2.0 * basis[g] + classes[y] + 0.1 * rng.standard_normal((y.size, d)))
    c = unit(classes[y] + 0.1 * rng.standard_normal((y.size, d)))
    labels, _, dec = guarded_cluster(X, c, None, k)
    assert dec.mode == "nuisance" and dec.info["nuisance_rank"] == d // 4
    assert cluster_accuracy(y, labels) >= 0.9 > 0.5 > cluster_accuracy(y, dec.data_labels)
    junk = unit(rng.standard_normal(X.shape))
    assert guarded_cluster(X, junk, None, k)[2].mode == "data"


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 6))
def test_residual_is_orthogonal_to_the_between_cluster_subspace(seed, k):
    rng = np.random.default_rng(seed)
    X = unit(rng.standard_normal((50, 10)))
    labels = rng.integers(0, k, 50)
    R, rank = nuisance_residual(X, labels, k)
    present = np.unique(labels)
    assert rank == present.size - 1
    means = np.stack([X[labels == j].mean(0) for j in present])
    np.testing.assert_allclose(R @ (means - means.mean(0)).T, 0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(R, axis=1), 1, atol=1e-5)


def _split_and_merge(y, k):
    """A knowledge partition that merges classes 0 and 1 and splits class 2 in two."""
    bad = y.copy()
    bad[bad == 1] = 0
    idx = np.flatnonzero(y == 2)
    bad[idx[: idx.size // 2]] = 1
    return bad


@pytest.mark.parametrize(("tolerance", "kept"), [(0.0, False), (1.0, True)])
def test_trusted_knowledge_may_cost_only_the_allowed_share_of_the_objective(
        monkeypatch, tolerance, kept):
    """Full trust, a knowledge partition the data contradicts: the objective decides."""
    X, y, centres = blobs(40, 4, d=16, spread=0.4, seed=2)
    c = unit(centres[_split_and_merge(y, 4)] + 0.01)
    monkeypatch.setattr(guard, "nmi_above_chance", lambda a, b, **_: 0.9)
    monkeypatch.setattr(guard, "null_agreement", lambda *a, **k: 0.0)
    labels, _, dec = guarded_cluster(X, c, None, 4, objective_tolerance=tolerance,
                                     spread_ratio=np.inf)
    ref = dec.info["refinement"]
    assert dec.trust == 1.0 and ref["loss"] > 0.05 and ref["kept"] is kept
    assert dec.mode == ("refine" if kept else "data")
    assert "reason" in dec.info and "trust 1.00" in dec.info["reason"]
    if not kept:
        np.testing.assert_array_equal(labels, dec.data_labels)


@settings(max_examples=50, deadline=None)
@given(st.floats(-1, 1), st.floats(-1, 1), st.floats(0.0, 0.5), st.floats(0.2, 0.9))
def test_trust_is_monotone_and_continuous_in_the_agreement(a, b, margin, threshold):
    lo, hi = sorted((a, b))
    t_lo, t_hi = trust_weight(lo, threshold, margin), trust_weight(hi, threshold, margin)
    assert 0.0 <= t_lo <= t_hi <= 1.0
    assert trust_weight(threshold, threshold, margin) == 1.0
    assert trust_weight(threshold - margin - 1e-9, threshold, margin) == 0.0
    if margin > 0:  # Lipschitz: a small change of agreement is a small change of trust
        assert t_hi - t_lo <= (hi - lo) / margin + 1e-9


def test_near_the_threshold_trust_and_allowed_cost_change_gradually(monkeypatch):
    X, y, centres = blobs(40, 4, d=16, spread=0.4, seed=2)
    c = unit(centres[y] + 0.05)
    allowed = []
    for agreement in (0.39, 0.42, 0.45, 0.48, 0.51):
        monkeypatch.setattr(guard, "nmi_above_chance", lambda a, b, s=agreement, **_: s)
        monkeypatch.setattr(guard, "null_agreement", lambda *a, **k: 0.0)
        dec = decide(X, c, 4)
        allowed.append(dec.info.get("refinement", {}).get("allowed_loss", 0.0))
    assert allowed[0] == 0.0 and allowed[-1] == pytest.approx(0.05)
    assert np.all(np.diff(allowed) > 0)
    # quadratic in trust in between: t = 0.2, 0.5, 0.8 allow 0.05 t**2
    np.testing.assert_allclose(allowed[1:4], [0.002, 0.0125, 0.032], atol=1e-4)


def test_anchors_pull_clusters_towards_the_knowledge_where_x_is_ambiguous():
    """Two classes that overlap in x: plain Lloyd drifts, anchored Lloyd keeps the classes."""
    from kec.cluster.metrics import cluster_accuracy

    rng = np.random.default_rng(5)
    d, per = 24, 60
    base = unit(rng.standard_normal((2, d)))
    y = np.repeat([0, 1], per)
    # a strong direction splits every class in half: the data's own best 2-way split
    split = unit(rng.standard_normal(d))
    side = rng.permutation(y.size) % 2
    X = unit(0.8 * base[y] + 0.7 * np.where(side[:, None] == 1, split, -split)
             + 0.3 * rng.standard_normal((y.size, d)))
    start = y.copy()
    plain, _ = lloyd_refine(X, start, 2)
    anchored, _ = lloyd_refine(X, start, 2, anchors=base, anchor_weight=1.0)
    assert cluster_accuracy(y, anchored) >= 0.9
    assert cluster_accuracy(y, plain) < cluster_accuracy(y, anchored) - 0.2
    # the anchored result is a fixed point of the anchored iterations
    again, it = lloyd_refine(X, anchored, 2, anchors=base, anchor_weight=1.0)
    np.testing.assert_array_equal(again, anchored)
    assert it == 1


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 5), st.floats(0.0, 2.0))
def test_anchored_lloyd_never_lowers_its_objective(seed, k, weight):
    """J = sum_k ||S_k + lambda n_k A_k|| (the objective the iterations ascend)."""
    rng = np.random.default_rng(seed)
    F = unit(rng.standard_normal((60, 8)))
    A = unit(rng.standard_normal((k, 8)))
    start = rng.integers(0, k, 60)

    def J(labels):
        total = 0.0
        for j in range(k):
            members = labels == j
            if members.any():
                total += np.linalg.norm(F[members].sum(0) + weight * members.sum() * A[j])
        return total

    labels, _ = lloyd_refine(F, start, k, anchors=A, anchor_weight=weight)
    assert J(labels) >= J(start) - 1e-4


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 5))
def test_lloyd_returns_a_fixed_point(seed, k):
    rng = np.random.default_rng(seed)
    F = unit(rng.standard_normal((60, 8)))
    labels, _ = lloyd_refine(F, rng.integers(0, k, 60), k)
    again, it = lloyd_refine(F, labels, k)
    np.testing.assert_array_equal(again, labels)
    assert it == 1


def test_nuisance_mode_uses_the_knowledge_views_where_x_is_blind():
    """Two classes x cannot tell apart (same direction) are split by the concept view."""
    from kec.cluster.metrics import cluster_accuracy

    rng = np.random.default_rng(3)
    d, k, m, per = 48, 4, 4, 40
    basis = np.linalg.qr(rng.standard_normal((d, k + m)))[0].T
    y = np.repeat(np.arange(k), per)
    g = rng.permutation(y.size) % m
    seen = np.array([0, 1, 2, 2])  # classes 2 and 3 look the same in x
    X = unit(2.5 * basis[k + g] + 1.0 * basis[seen[y]] + 0.3 * rng.standard_normal((y.size, d)))
    c = unit(basis[y] + 0.1 * rng.standard_normal((y.size, d)))
    labels, feats, dec = guarded_cluster(X, c, None, k, beta=1.0)
    assert dec.mode == "nuisance"
    assert cluster_accuracy(y, labels) >= 0.95
    # the result is a Lloyd fixed point of the fused matrix it reports
    again, it = lloyd_refine(feats, labels, k)
    assert it == 1
    np.testing.assert_array_equal(again, labels)
    # while x_perp alone cannot separate classes 2 and 3
    assert cluster_accuracy(y, dec.residual_labels) < 0.9


def test_lloyd_on_torch_matches_numpy():
    torch = __import__("pytest").importorskip("torch")
    rng = np.random.default_rng(4)
    F = unit(rng.standard_normal((300, 12))).astype(np.float32)
    start = rng.integers(0, 5, 300)
    ref, it_ref = lloyd_refine(F, start, 5)
    got, it_got = lloyd_refine(torch.from_numpy(F), start, 5)
    assert isinstance(got, np.ndarray) and got.dtype == np.int64
    np.testing.assert_array_equal(got, ref)
    assert it_got == it_ref
    # a cluster emptied by the first assignment keeps its centre; labels stay in range
    one, _ = lloyd_refine(F, np.zeros(300, dtype=np.int64), 5)
    assert one.max() < 5


def test_random_knowledge_with_few_items_per_cluster_is_not_followed():
    """Raw NMI of unrelated partitions grows with K/N (about 0.3 at 200 items, K = 20);
    the guard's scores are above chance, so random knowledge stays unused."""
    from kec.cluster.metrics import nmi

    for seed in range(4):
        X, y, _ = blobs(10, 20, d=128, spread=0.3, seed=seed)
        c = unit(np.random.default_rng(seed + 10).standard_normal(X.shape))
        labels, _, dec = guarded_cluster(X, c, None, 20, random_state=seed)
        assert dec.mode in ("data", "refine"), (seed, dec.info)
        assert nmi(y, labels) >= nmi(y, dec.data_labels) - 0.02


def test_chance_corrected_nmi_is_near_zero_for_unrelated_partitions():
    from kec.cluster.guard import _nmi, nmi_above_chance

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 20, 200), rng.integers(0, 20, 200)
    assert _nmi(a, b) > 0.25 and abs(nmi_above_chance(a, b)) < 0.05
    assert nmi_above_chance(a, a) > 0.6


def test_lloyd_never_uses_a_label_the_start_does_not():
    rng = np.random.default_rng(0)
    F = unit(rng.standard_normal((30, 5)))
    start = np.where(rng.random(30) < 0.5, 0, 4)
    labels, _ = lloyd_refine(F, start, 5)
    assert set(np.unique(labels)) <= {0, 4}


def test_too_few_items_per_cluster_skips_the_residual():
    X, _, _ = blobs(3, 10, d=32, spread=0.4, seed=1)
    c = unit(np.random.default_rng(0).standard_normal(X.shape))
    dec = decide(X, c, 10, agreement_threshold=1.01)
    assert dec.mode == "data" and "fewer than" in dec.info["note"]


@pytest.mark.parametrize(("agreement", "corroboration", "mode"), [
    (0.35, 0.25, "data"),      # the knowledge sees the raw clusters better: not a nuisance
    (0.25, 0.35, "nuisance"),  # it sees what is under them better
    (0.10, 0.15, "data"),      # below the corroboration threshold
    (0.60, 0.90, "refine"),    # trusted: the residual is not measured
    (0.45, 0.90, "refine"),    # half trusted, and the knowledge costs the data nothing
])
def test_the_decision_rule(monkeypatch, agreement, corroboration, mode):
    X, _, _ = blobs(20, 3, d=16, spread=0.4, seed=0)
    scores = iter([agreement, corroboration])
    monkeypatch.setattr(guard, "nmi_above_chance", lambda a, b, **_: next(scores))
    monkeypatch.setattr(guard, "null_agreement", lambda *a, **k: 0.0)
    dec = decide(X, X, 3)
    assert dec.mode == mode
    assert dec.corroboration == (None if mode == "refine" else corroboration)
    assert dec.trust == pytest.approx(trust_weight(agreement))


def test_the_strict_rule_of_kec_0_1_is_margin_and_tolerance_zero(monkeypatch):
    """margin 0, tolerance 0, no anchors: refine only from 0.5 up, only when it fits x
    at least as well as k-means (the ablation's "strict" column)."""
    X, y, centres = blobs(40, 4, d=16, spread=0.4, seed=2)
    c = unit(centres[_split_and_merge(y, 4)] + 0.01)
    monkeypatch.setattr(guard, "nmi_above_chance", lambda a, b, **_: 0.49)
    monkeypatch.setattr(guard, "null_agreement", lambda *a, **k: 0.0)
    strict = {"agreement_margin": 0.0, "objective_tolerance": 0.0, "anchor_weight": 0.0}
    assert decide(X, c, 4, **strict).trust == 0.0
    monkeypatch.setattr(guard, "nmi_above_chance", lambda a, b, **_: 0.5)
    monkeypatch.setattr(guard, "null_agreement", lambda *a, **k: 0.0)
    dec = decide(X, c, 4, **strict)
    assert dec.trust == 1.0 and dec.mode == "data"
    assert dec.info["refinement"]["allowed_loss"] == 0.0


@settings(max_examples=50, deadline=None)
@given(st.floats(0, 10), st.floats(0, 10), st.floats(0.01, 1.0), st.floats(1.0, 4.0))
def test_spread_trust_is_monotone_and_continuous_in_the_ratio(a, b, margin, max_ratio):
    lo, hi = sorted((a, b))
    t_lo, t_hi = (spread_trust(lo, max_ratio, margin), spread_trust(hi, max_ratio, margin))
    assert 0.0 <= t_hi <= t_lo <= 1.0
    assert spread_trust(max_ratio - margin, max_ratio, margin) == 1.0
    assert spread_trust(max_ratio, max_ratio, margin) == 0.0
    assert t_lo - t_hi <= (hi - lo) / margin + 1e-9
    assert spread_trust(1e9, np.inf, margin) == 1.0


def test_a_partition_the_data_tells_apart_is_not_kept_however_cheap(monkeypatch):
    """Well separated blobs: every k-means run finds the same partition, so a knowledge
    partition that splits one class and merges two is far outside the data's spread."""
    X, y, centres = blobs(40, 4, d=16, spread=0.4, seed=2)
    c = unit(centres[_split_and_merge(y, 4)] + 0.01)
    monkeypatch.setattr(guard, "nmi_above_chance", lambda a, b, **_: 0.9)
    monkeypatch.setattr(guard, "null_agreement", lambda *a, **k: 0.0)
    labels, _, dec = guarded_cluster(X, c, None, 4, objective_tolerance=1.0)
    ref = dec.info["refinement"]
    assert ref["spread_ratio"] > 2.0 and ref["spread_trust"] == 0.0
    assert not ref["kept"] and dec.mode == "data"
    assert "times as far" in dec.info["reason"]
    np.testing.assert_array_equal(labels, dec.data_labels)


def test_where_the_data_cannot_tell_partitions_apart_the_knowledge_decides(monkeypatch):
    """No cluster structure: k-means runs from other seeds disagree as much as the
    knowledge's partition disagrees with them, so the knowledge's partition is kept."""
    rng = np.random.default_rng(0)
    X = unit(rng.standard_normal((240, 8)))
    direction = unit(rng.standard_normal((1, 8)))[0]
    y = np.digitize(X @ direction, [-0.3, 0.0, 0.3])  # 4 slabs along one direction
    c = unit(rng.standard_normal((4, 8)))[y]
    monkeypatch.setattr(guard, "nmi_above_chance", lambda a, b, **_: 0.9)
    monkeypatch.setattr(guard, "null_agreement", lambda *a, **k: 0.0)
    labels, _, dec = guarded_cluster(X, c, None, 4, objective_tolerance=1.0)
    ref = dec.info["refinement"]
    assert ref["data_spread"] > 0.1 and ref["spread_ratio"] < 2.0 and ref["spread_trust"] > 0
    assert ref["kept"] and dec.mode == "refine"
    np.testing.assert_array_equal(labels, dec.refined_labels)


def test_random_directions_agree_with_clustered_data_and_knowledge_must_beat_them():
    """In few dimensions random directions already split clusters apart (the null level
    of agreement); in many, they hardly do. Trust needs the agreement above that level."""
    from kec.cluster.guard import null_agreement

    X, y, _ = blobs(40, 4, d=8, spread=0.3, seed=0)
    high = null_agreement(X, y, 4)
    rng = np.random.default_rng(0)
    noise = unit(rng.standard_normal((400, 384)))
    low = null_agreement(noise, rng.integers(0, 4, 400), 4)
    assert high > 0.3 and abs(low) < 0.05
    # knowledge as good as random directions is not trusted, whatever its agreement
    c = unit(rng.standard_normal((4, 8)))[(X @ unit(rng.standard_normal((4, 8))).T).argmax(1)]
    dec = decide(X, c, 4, agreement_threshold=0.0, agreement_margin=0.1)
    assert dec.agreement - dec.info["null_agreement"] < 0.1 and dec.trust == 0.0
    assert dec.mode == "data"
