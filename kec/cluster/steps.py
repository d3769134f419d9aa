"""Steps the clustering methods share: timed stages, input checks, the final clusterer,
text selection by over-clustering, and the JSON-ready diagnostics of OT and fusion.

:mod:`kec.cluster.methods` (the ``run_*`` functions) and :mod:`kec.cluster.strategies`
(the fusion strategies) both build on these; neither imports the other.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from kec.cluster._checks import as_features, check_n_clusters, same_dim
from kec.cluster.clusterers import create_clusterer
from kec.cluster.distributed import current_rows
from kec.cluster.ot import OTResult
from kec.cluster.scaffold import n_overclusters, overcluster, select_nouns, select_top_texts


class Stages:
    """Seconds per named stage: ``with stages("ground"): ...`` adds to ``timings``."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Time the block and add its seconds (4 decimals) to ``timings[name]``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0)
                                       + time.perf_counter() - t0, 4)


def jsonable(d: dict[str, Any] | None) -> dict[str, Any]:
    """The scalar entries of ``d`` (numpy scalars as Python ones); others are dropped."""
    out: dict[str, Any] = {}
    for k, v in (d or {}).items():
        if isinstance(v, (bool, int, float, str)) or v is None:
            out[k] = v
        elif isinstance(v, (np.integer, np.floating)):
            out[k] = v.item()
    return out


def cluster_features(
    features: np.ndarray, n_clusters: int, clusterer: str, random_state: Any,
    clusterer_params: dict[str, Any] | None, device: str | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Labels of the final ``clusterer`` on ``features`` and what it reports
    (``{"name", "implementation", "random_state", "n_init", "n_iter", "objective", ...}``).
    """
    est = create_clusterer(clusterer, n_clusters, random_state, device=device,
                           **(clusterer_params or {}))
    labels = np.asarray(est.fit_predict(features), dtype=np.int64)
    info: dict[str, Any] = {"name": clusterer, "implementation":
                            f"{type(est).__module__}.{type(est).__name__}",
                            "random_state": random_state, **jsonable(clusterer_params)}
    for attr in ("n_init_", "n_iter_", "objective_", "device_"):
        if hasattr(est, attr):
            info[attr.rstrip("_")] = getattr(est, attr)
    if clusterer != "kmeans":
        info["sklearn_params"] = jsonable(getattr(est, "params", {}))
    return labels, info


def check_images(X: Any, n_clusters: int) -> tuple[np.ndarray, int]:
    """``X`` as a finite float32 ``(N, d)`` matrix and ``n_clusters`` checked against N."""
    X = as_features(X, "image features")
    n = current_rows().total(X.shape[0])  # every rank's rows (kec.cluster.distributed)
    return X, check_n_clusters(n_clusters, n, "number of clusters (k)")


def check_texts(T: Any, X: np.ndarray, name: str) -> np.ndarray:
    """Text features ``T`` as a float32 matrix in the dimension of ``X``."""
    T = as_features(T, name)
    same_dim(X, T, "image features", name)
    return T


def overcluster_and_select(
    X: np.ndarray, texts: list[tuple[str, np.ndarray]], stages: Stages, *,
    n_over: int | None, rule: str | int, n_classes: int | None, top_k: int,
    selector: str, selection_temperature: float, random_state: Any,
    overcluster_params: dict[str, Any] | None, device: str | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Over-cluster ``X`` and keep, per text set, the indices of the texts nearest the
    over-cluster centres (TAC's softmax selection, ``selector="tac"``, or CAE's top-k,
    ``"top"``; docs/methods.md §1.2, §3.1)."""
    n = current_rows().total(X.shape[0])
    L = (check_n_clusters(n_over, n, "n_overclusters") if n_over is not None
         else n_overclusters(n, rule, n_classes=n_classes))
    with stages("overcluster"):
        params = dict(overcluster_params or {})
        if device is not None:
            params.setdefault("device", device)
        _, centres = overcluster(X, L, random_state=random_state, **params)
    selected: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {"n_overclusters": L}
    with stages("select"):
        for name, T in texts:
            sel = (select_nouns(centres, T, top_k, temperature=selection_temperature)
                   if selector == "tac" else select_top_texts(centres, T, top_k))
            selected[name] = sel.indices
            info[f"n_selected_{name}"] = int(sel.indices.size)
    return selected, info


def ot_kwargs(ot_params: dict[str, Any] | None, device: str | None) -> dict[str, Any]:
    """The OT solver's keyword arguments: ``ot_params`` with ``device`` unless set."""
    out = dict(ot_params or {})
    if device is not None:
        out.setdefault("device", device)
    return out


def mean_weights(names: list[str], w: np.ndarray) -> dict[str, float]:
    """Mean fusion weight of every modality, rounded to 4 decimals."""
    return {n: round(float(v), 4) for n, v in zip(names, w.mean(axis=0))}


def ot_info(res: OTResult) -> dict[str, Any]:
    """The JSON-ready diagnostics of one OT solve."""
    return {"method": res.method, "n_iter": res.n_iter, "converged": res.converged,
            "marginal_error": res.marginal_error, "seconds": round(res.seconds, 3),
            **{k: v for k, v in res.info.items() if isinstance(v, (int, float, str, bool))}}


__all__ = ["Stages", "check_images", "check_texts", "cluster_features", "jsonable",
           "mean_weights", "ot_info", "ot_kwargs", "overcluster_and_select"]
