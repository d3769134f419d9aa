"""Figures: the Hungarian-ordered contingency table, PCA, and valid PNGs."""

from __future__ import annotations

import io

import numpy as np

from kec.report import plots, representatives


def _open(png: bytes):
    from PIL import Image

    im = Image.open(io.BytesIO(png))
    im.load()
    return im


def test_contingency_orders_clusters_by_their_matched_class():
    labels = ["cat", "cat", "dog", "dog", "dog", "emu"]
    clusters = np.array([7, 7, 2, 2, 7, 5])
    table, classes, cols = plots.contingency(labels, clusters)
    assert classes == ["cat", "dog", "emu"] and cols == [7, 2, 5]
    assert table.tolist() == [[2, 0, 0], [1, 2, 0], [0, 0, 1]]
    # more clusters than classes: unmatched clusters come last
    table, _, cols = plots.contingency(["a", "a", "b"], np.array([0, 1, 2]))
    assert cols[:2] in ([0, 2], [1, 2]) and table.shape == (2, 3)


def test_pca_is_deterministic_and_explains_variance():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (50, 5)), rng.normal(8, 1, (50, 5))])
    a, ratio = plots.pca_2d(x)
    b, _ = plots.pca_2d(x[::-1].copy())
    assert a.shape == (100, 2) and ratio[0] > 0.8 and ratio.sum() <= 1
    np.testing.assert_allclose(a[::-1], b, atol=1e-9)
    assert abs(a[:50, 0].mean() - a[50:, 0].mean()) > 10
    assert plots.pca_2d(x[:1])[0].shape == (1, 2)


def test_figures_are_pngs_with_content():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(40, 6))
    clusters = np.repeat(np.arange(4), 10)
    labels = [f"class {c}" for c in np.repeat(np.arange(4), 10)]
    for png in (plots.confusion_png(labels, clusters, {0: "zero"}),
                plots.scatter_png(feats, clusters, {1: "one"})):
        im = _open(png).convert("RGB")
        assert im.size[0] > 300 and len(np.unique(np.asarray(im).reshape(-1, 3), axis=0)) > 20
    doc = {"concepts": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"},
                        {"id": "c", "name": "C"}],
           "pairs": [{"a": "a", "b": "b", "similarity": 0.9}, {"a": "a", "b": "zz"}]}
    assert _open(plots.knowledge_graph_png(doc, ["A"])).size[0] > 300
    assert _open(plots.knowledge_graph_png({"concepts": [], "pairs": []})).size[0] > 10
    many = plots.cluster_colours(30)
    assert len({tuple(c) for c in many}) == 30


def test_representatives_are_closest_to_the_centre():
    feats = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.7, 0.3], [1, 0.05]], dtype=float)
    members = [0, 2, 3, 4]
    # centre of members ~ (0.67, 0.34) normalised -> closest: 3, then 4/0, then 2
    assert representatives(feats, members, 2)[0] == 3
    assert representatives(feats, members, 4)[-1] == 2
    assert representatives(None, members, 2) == [0, 2]


MATH = ["$\\foo$ cats", "$x^2$ and $", "a $5 and $10 bill", "\\$", "$\\frac{1}{$"]


def test_names_with_math_text_are_drawn_as_text():
    """matplotlib parses $...$ as TeX: '$\\foo$ cats' raised ValueError in kec report."""
    import matplotlib

    rng = np.random.default_rng(2)
    clusters = np.repeat(np.arange(5), 4)
    labels = [MATH[c] for c in clusters]
    names = dict(enumerate(MATH))
    assert _open(plots.confusion_png(labels, clusters, names)).size[0] > 300
    assert _open(plots.scatter_png(rng.normal(size=(20, 4)), clusters, names)).size[0] > 300
    doc = {"concepts": [{"id": str(i), "name": n} for i, n in enumerate(MATH)], "pairs": []}
    assert _open(plots.knowledge_graph_png(doc, MATH[:2])).size[0] > 300
    assert matplotlib.rcParams["text.parse_math"] is True  # the caller's setting is back
