"""The report's figures, drawn with matplotlib (Agg) and returned as PNG bytes.

Every string drawn (class labels, cluster and concept names) is user text, drawn as is:
matplotlib's mathtext is off while a figure is made (:func:`_plain_text`), so that a name
such as ``$\\foo$ cats`` is printed, not parsed as TeX (which raised ``ValueError``).
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

logger = logging.getLogger(__name__)

MAX_SCATTER_POINTS = 20000


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - a dependency of kec
        from kec.errors import KecError

        raise KecError("kec report draws its figures with matplotlib: "
                       "pip install matplotlib") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


F = TypeVar("F", bound=Callable[..., bytes])


def _plain_text(draw: F) -> F:
    """Run ``draw`` with ``text.parse_math`` off (restored after, whatever happens)."""

    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> bytes:
        with _pyplot().rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _png(fig: Any, dpi: int = 100) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight",
                metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def cluster_colours(n: int) -> np.ndarray:
    """``(n, 4)`` RGBA colours, distinct for up to 20 clusters, a hue wheel beyond."""
    plt = _pyplot()
    if n <= 10:
        return plt.get_cmap("tab10")(np.arange(n))
    if n <= 20:
        return plt.get_cmap("tab20")(np.arange(n))
    return plt.get_cmap("hsv")(np.linspace(0, 1, n, endpoint=False))


def contingency(labels: Sequence[str], clusters: np.ndarray
                ) -> tuple[np.ndarray, list[str], list[int]]:
    """Counts ``(classes, clusters)`` with columns ordered by the Hungarian match.

    Returns the table, the class names (sorted) and the cluster id of each column:
    matched clusters first, in the order of their class, then the unmatched ones.
    """
    from scipy.optimize import linear_sum_assignment

    classes = sorted(set(labels))
    cl_ids = sorted(np.unique(clusters).tolist())
    ci = {c: i for i, c in enumerate(classes)}
    ki = {k: j for j, k in enumerate(cl_ids)}
    table = np.zeros((len(classes), len(cl_ids)), dtype=np.int64)
    for lab, k in zip(labels, clusters.tolist()):
        table[ci[lab], ki[k]] += 1
    rows, cols = linear_sum_assignment(-table)
    order = [c for _, c in sorted(zip(rows, cols))]
    order += [j for j in range(len(cl_ids)) if j not in set(order)]
    return table[:, order], classes, [cl_ids[j] for j in order]


@_plain_text
def confusion_png(labels: Sequence[str], clusters: np.ndarray,
                  cluster_names: dict[int, str] | None = None) -> bytes:
    """Heat map of the row-normalised class x cluster table (Hungarian-ordered columns)."""
    plt = _pyplot()
    table, classes, cols = contingency(labels, clusters)
    share = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
    n_r, n_c = share.shape
    side = min(12.0, max(4.0, 0.45 * max(n_r, n_c) + 2))
    fig, ax = plt.subplots(figsize=(side * 1.15, side))
    im = ax.imshow(share, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    names = cluster_names or {}
    if n_c <= 40:
        ax.set_xticks(range(n_c))
        ax.set_xticklabels([f"{c}: {names[c]}"[:28] if names.get(c) else str(c) for c in cols],
                           rotation=60, ha="right", fontsize=8)
    if n_r <= 40:
        ax.set_yticks(range(n_r))
        ax.set_yticklabels([c[:28] for c in classes], fontsize=8)
    if n_r * n_c <= 400:
        for r in range(n_r):
            for c in range(n_c):
                if table[r, c]:
                    ax.text(c, r, str(table[r, c]), ha="center", va="center", fontsize=7,
                            color="white" if share[r, c] < 0.6 else "black")
    ax.set_xlabel("cluster (matched to classes by the Hungarian algorithm)")
    ax.set_ylabel("true class")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the class")
    return _png(fig)


def pca_2d(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows onto their first two principal components.

    Returns the ``(n, 2)`` coordinates and the explained-variance ratios of the two axes.
    """
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    if x.shape[0] < 2:
        return np.zeros((x.shape[0], 2)), np.zeros(2)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    k = min(2, vt.shape[0])
    coords = np.zeros((x.shape[0], 2))
    coords[:, :k] = x @ vt[:k].T
    var = s**2
    ratio = np.zeros(2)
    ratio[:k] = var[:k] / max(float(var.sum()), 1e-12)
    # a deterministic sign: the largest |loading| of each axis is positive
    for j in range(k):
        if vt[j, np.argmax(np.abs(vt[j]))] < 0:
            coords[:, j] *= -1
    return coords, ratio


@_plain_text
def scatter_png(features: np.ndarray, clusters: np.ndarray,
                cluster_names: dict[int, str] | None = None, seed: int = 0) -> bytes:
    """PCA scatter of the features, one colour per cluster."""
    plt = _pyplot()
    n = features.shape[0]
    idx = np.arange(n)
    if n > MAX_SCATTER_POINTS:
        idx = np.sort(np.random.default_rng(seed).choice(n, MAX_SCATTER_POINTS, replace=False))
    coords, ratio = pca_2d(features[idx])
    cl = clusters[idx]
    ids = sorted(np.unique(clusters).tolist())
    colours = cluster_colours(len(ids))
    fig, ax = plt.subplots(figsize=(6.5, 5.2))
    size = 28 if len(idx) < 500 else 6 if len(idx) < 5000 else 2
    names = cluster_names or {}
    for colour, c in zip(colours, ids):
        sel = cl == c
        label = f"{c}: {names[c]}"[:32] if names.get(c) else f"cluster {c}"
        ax.scatter(coords[sel, 0], coords[sel, 1], s=size, color=colour, label=label,
                   alpha=0.8, linewidths=0)
    ax.set_xlabel(f"PC 1 ({100 * ratio[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * ratio[1]:.1f}% of variance)")
    title = "image features, PCA"
    if len(idx) < n:
        title += f" ({len(idx)} of {n} points)"
    ax.set_title(title)
    if len(ids) <= 20:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    return _png(fig)


@_plain_text
def knowledge_graph_png(doc: dict[str, Any], highlight: Sequence[str] = (), seed: int = 0
                        ) -> bytes:
    """Concepts as nodes, pairs (concepts with telling-apart attributes) as edges.

    Nodes named in ``highlight`` (e.g. the clusters' dominant concepts) are drawn larger.
    """
    plt = _pyplot()
    concepts = doc.get("concepts") or []
    pairs = doc.get("pairs") or []
    ids = [c["id"] for c in concepts]
    index = {cid: i for i, cid in enumerate(ids)}
    edges = [(index[p["a"]], index[p["b"]], float(p.get("similarity") or 0.0))
             for p in pairs if p.get("a") in index and p.get("b") in index]
    pos = _layout(len(ids), edges, seed)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for a, b, s in edges:
        ax.plot([pos[a, 0], pos[b, 0]], [pos[a, 1], pos[b, 1]], color="#8888aa",
                linewidth=0.6 + 2.0 * max(s, 0.0), alpha=0.7, zorder=1)
    hl = set(highlight)
    names = [c.get("name", c["id"]) for c in concepts]
    big = np.array([n in hl for n in names], dtype=bool)
    ax.scatter(pos[~big, 0], pos[~big, 1], s=60, color="#4c72b0", zorder=2)
    ax.scatter(pos[big, 0], pos[big, 1], s=160, color="#dd8452", zorder=3)
    if len(ids) <= 80:
        for (x, y), name in zip(pos, names):
            ax.annotate(name[:30], (x, y), xytext=(4, 4), textcoords="offset points",
                        fontsize=8)
    ax.set_title(f"knowledge: {len(ids)} concepts, {len(edges)} pairs")
    ax.axis("off")
    return _png(fig)


def _layout(n: int, edges: list[tuple[int, int, float]], seed: int) -> np.ndarray:
    if n == 0:
        return np.zeros((0, 2))
    try:
        import networkx as nx
    except ImportError:  # pragma: no cover - networkx comes with torch
        nx = None
    if nx is not None and n > 1:
        g = nx.Graph()
        g.add_nodes_from(range(n))
        g.add_edges_from((a, b) for a, b, _ in edges)
        layout = nx.spring_layout(g, seed=seed, k=1.5 / np.sqrt(n))
        return np.array([layout[i] for i in range(n)])
    angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(angle), np.sin(angle)], axis=1)
