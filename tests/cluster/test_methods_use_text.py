"""Tests that fail when a method ignores its text side.

The data: every item is a strong *nuisance* direction (one of M, drawn independently of
the class, like a photo's background) plus a weaker *class* direction. k-means on the
raw features finds the nuisance (ACC <= 0.6); only the text side (nouns, concepts and
attributes that point along the class directions) can recover the classes.

Second half: each method's clustered matrix (``keep_features=True``) is rebuilt by hand
from its equation (docs/methods.md), with POT as the independent OT solver, so that a
wrong temperature, a transposed plan or a dropped level is caught.
"""

from __future__ import annotations

import numpy as np
import pytest

from kec.cluster import cluster_accuracy
from kec.cluster.knowledge_features import knowledge_features
from kec.cluster.methods import run_cae, run_kec, run_kec_cae, run_kmeans, run_tac
from tests.cluster.helpers import unit

K, M, PER, D = 4, 3, 30, 32
NAMES = ["apple", "boat", "cloud", "drum"]


class AnchorEncoder:
    """A text's vector is the class direction of the class word it names, plus a small
    deterministic perturbation per text (so that texts differ)."""

    def __init__(self, classes: np.ndarray, dim: int) -> None:
        self.classes = classes
        self.dim = dim

    def encode(self, texts):
        out = []
        for t in texts:
            seed = sum(ord(ch) * (i + 1) for i, ch in enumerate(t)) % 2**32
            v = 0.3 * np.random.default_rng(seed).standard_normal(self.dim) / np.sqrt(self.dim)
            for k, name in enumerate(NAMES):
                if name in t:
                    v = v + self.classes[k]
            out.append(v)
        return unit(np.stack(out))

    def describe(self):
        return {"kind": "test-anchor", "model": "anchor", "dim": self.dim}


@pytest.fixture(scope="module")
def nuisance_world():
    rng = np.random.default_rng(7)
    basis = np.linalg.qr(rng.standard_normal((D, K + M)))[0].T  # orthonormal rows
    classes, nuisances = basis[:K], basis[K:]
    y = np.repeat(np.arange(K), PER * M)
    g = rng.permutation(np.tile(np.arange(M), K * PER))  # nuisance independent of class
    X = unit(2.2 * nuisances[g] + 1.0 * classes[y]
             + 0.35 * rng.standard_normal((y.size, D)) / np.sqrt(D))
    enc = AnchorEncoder(classes, D)
    nouns = np.concatenate([
        enc.encode([f"{n} {j}" for n in NAMES for j in range(4)]),
        unit(rng.standard_normal((12, D))),  # unrelated nouns
    ])
    doc = {
        "concepts": [{"id": f"c-00000000{i:02x}", "name": n, "description": f"an {n} thing",
                      "labels": [n], "attributes": [f"{n} shape", f"{n} colour"]}
                     for i, n in enumerate(NAMES)],
        "pairs": [{"a": "c-0000000000", "b": "c-0000000001", "similarity": 0.5,
                   "attributes": ["apple round not boat"]}],
    }
    kf = knowledge_features(doc, enc, name_template="{}")
    return X, y, g, nouns, kf


def test_raw_features_follow_the_nuisance(nuisance_world):
    X, y, g, _, _ = nuisance_world
    res = run_kmeans(X, K, random_state=0)
    assert cluster_accuracy(y, res.labels) <= 0.6
    assert cluster_accuracy(g, res.labels) >= 0.8  # it found the nuisance instead


@pytest.mark.parametrize("seed", [0, 1])
def test_knowledge_methods_recover_the_classes(nuisance_world, seed):
    X, y, _, _, kf = nuisance_world
    for runner in (run_kec, run_kec_cae):
        res = runner(X, kf, K, random_state=seed)
        assert res.info["guard"]["mode"] == "nuisance"
        assert cluster_accuracy(y, res.labels) >= 0.9, runner.__name__


def test_noun_methods_use_their_nouns(nuisance_world):
    X, y, _, nouns, _ = nuisance_world
    base = cluster_accuracy(y, run_kmeans(X, K, random_state=0).labels)
    for runner in (run_tac, run_cae):
        acc = cluster_accuracy(y, runner(X, nouns, K, random_state=0,
                                         n_overclusters=K * M).labels)
        assert acc >= base + 0.2, runner.__name__


def test_junk_knowledge_falls_back_to_the_data(nuisance_world):
    """Knowledge whose attributes do not describe its concepts is not trusted."""
    X, _, _, _, _ = nuisance_world
    rng = np.random.default_rng(3)
    junk = knowledge_features(
        {"concepts": [{"id": f"c-00000000{i:02x}", "name": f"thing{i}", "description": "A",
                       "labels": [f"thing{i}"], "attributes": ["A", "shape"]}
                      for i in range(K)], "pairs": []},
        type("Rand", (), {"encode": lambda self, t: unit(rng.standard_normal((len(t), D)))})())
    res = run_kec_cae(X, junk, K, random_state=0)
    km = run_kmeans(X, K, random_state=0)
    assert res.info["guard"]["mode"] == "data"
    np.testing.assert_array_equal(res.labels, km.labels)


# ----------------------------------------------------------------- matrices by hand
def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _pot_plan(X: np.ndarray, T: np.ndarray, reg: float) -> np.ndarray:
    ot = pytest.importorskip("ot")
    S = X.astype(np.float64) @ T.astype(np.float64).T
    a = np.full(X.shape[0], 1 / X.shape[0])
    b = np.full(T.shape[0], 1 / T.shape[0])
    return ot.sinkhorn(a, b, 1 - S, reg, method="sinkhorn_log", stopThr=1e-10,
                       numItermax=100000)


def _transport(X: np.ndarray, T: np.ndarray, reg: float) -> np.ndarray:
    """CAE's transported feature: normalize(sum_j T_ij S_ij t_j)."""
    P = _pot_plan(X, T, reg)
    S = X.astype(np.float64) @ T.astype(np.float64).T
    return unit((P * S) @ T.astype(np.float64))


def test_kmeans_and_tac_matrices(nuisance_world):
    from kec.cluster.scaffold import overcluster, select_nouns

    X, _, _, nouns, _ = nuisance_world
    np.testing.assert_array_equal(run_kmeans(X, K, keep_features=True).features, X)
    res = run_tac(X, nouns, K, random_state=0, n_overclusters=K * M, keep_features=True)
    _, centres = overcluster(X, K * M, random_state=0, init="k-means++")
    sel = nouns[select_nouns(centres, nouns, 5).indices]
    t_hat = unit(_softmax(X @ sel.T / 0.005) @ sel)
    np.testing.assert_allclose(res.features, np.concatenate([X, t_hat], axis=1), atol=1e-5)


def test_kec_concat_matrix(nuisance_world):
    X, _, _, _, kf = nuisance_world
    T = 0.01
    res = run_kec(X, kf, K, fusion="concat", temperature=T, keep_features=True)
    omega = _softmax(X @ kf.zeta.T / T)
    kappa = omega @ kf.zeta + X * (omega @ kf.attribute_means())
    np.testing.assert_allclose(res.features, np.concatenate([X, unit(kappa)], axis=1),
                               atol=1e-5)


def _residual_by_hand(X, k, seed=0):
    """x with the between-cluster subspace of k-means on x projected out (§4.3)."""
    from kec.cluster.kmeans import SphericalKMeans

    p_x = SphericalKMeans(n_clusters=k, random_state=seed).fit_predict(X)
    means = np.stack([X[p_x == j].mean(0) for j in range(k)]).astype(np.float64)
    vt = np.linalg.svd(means - means.mean(0))[2]
    Q = vt[: k - 1].T
    return unit(X - X @ Q @ Q.T)


def test_kec_guarded_matrix(nuisance_world):
    X, _, _, _, kf = nuisance_world
    T, beta = 0.01, 0.7
    res = run_kec(X, kf, K, temperature=T, beta=beta, keep_features=True,
                  random_state=0)
    assert res.info["guard"]["mode"] == "nuisance"
    c = _softmax(X @ kf.zeta.T / T) @ kf.zeta
    a = _softmax(X @ kf.attr_emb.T / T) @ kf.attr_emb
    want = np.concatenate([_residual_by_hand(X, K), beta * unit(c), beta * unit(a)], axis=1)
    np.testing.assert_allclose(res.features, want, atol=1e-4)


def test_kec_cae_guarded_matrix(nuisance_world):
    X, _, _, _, kf = nuisance_world
    reg, beta = 0.05, 1.0
    res = run_kec_cae(X, kf, K, reg=reg, beta=beta, keep_features=True, random_state=0)
    assert res.info["guard"]["mode"] == "nuisance"
    zeta_hat = unit(kf.zeta)
    c = _transport(X, zeta_hat, reg)
    a = _transport(X, kf.attr_emb, reg)
    want = np.concatenate([_residual_by_hand(X, K), beta * c, beta * a], axis=1)
    np.testing.assert_allclose(res.features, want, atol=2e-3)


def test_cae_matrix(nuisance_world):
    from kec.cluster.scaffold import overcluster, select_top_texts

    X, _, _, nouns, _ = nuisance_world
    reg, gamma = 0.05, 0.01
    res = run_cae(X, nouns, K, reg=reg, gamma=gamma, n_overclusters=K * M, random_state=0,
                  keep_features=True)
    _, centres = overcluster(X, K * M, random_state=0, init="k-means++")
    U = nouns[select_top_texts(centres, nouns, 5).indices]
    xu = _transport(X, U, reg)
    p = unit((X + xu) / 2)
    w = _softmax(np.stack([(unit(X) * p).sum(1), (xu * p).sum(1)], axis=1) / gamma)
    want = w[:, :1] * X + w[:, 1:] * xu
    np.testing.assert_allclose(res.features, want, atol=2e-3)


@pytest.mark.parametrize("runner", [run_kec, run_kec_cae])
def test_predict_maps_held_out_items_through_the_nuisance_projection(nuisance_world,
                                                                    runner):
    """Guarded fusion's nuisance mode clusters [x_perp ; beta c ; beta a]: new items are
    projected with the fitted basis and grounded, so they follow the classes, not the
    nuisance."""
    X, y, g, _, kf = nuisance_world
    held = np.arange(y.size) % 5 == 0
    res = runner(X[~held], kf, K, random_state=0, keep_features=True)
    assert res.info["guard"]["mode"] == "nuisance"
    np.testing.assert_allclose(res.feature_map(X[~held]), res.features, atol=2e-5)
    np.testing.assert_array_equal(res.predict(X[~held]), res.labels)
    predicted = res.predict(X[held])
    assert cluster_accuracy(y[held], predicted) >= 0.9
    assert cluster_accuracy(g[held], predicted) <= 0.6
