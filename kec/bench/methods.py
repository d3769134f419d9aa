"""What ``kec bench`` runs per step, on top of :mod:`kec.cluster`: the scaffold's label
groups, one method run, its scores, and its result folder (the ``kec cluster`` layout, so
``kec report`` reads it)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from kec._io import write_json
from kec.features import FeatureSet

logger = logging.getLogger(__name__)


def scaffold_groups(images: FeatureSet, nouns: FeatureSet, *, over_clusters: int | None,
                    seed: int, out: Path) -> list[list[str]]:
    """TAC's over-clustering and noun selection with KEC's merging (docs/methods.md §1.2-1.3,
    §2.2): the label groups the knowledge builder condenses, also saved as
    ``out/groups.json`` (readable by ``kec knowledge build --groups``)."""
    from kec.cluster.scaffold import build_groups

    doc = build_groups(images.features, nouns.features, nouns.ids,
                       n_overclusters=over_clusters, random_state=seed)
    write_json(Path(out) / "groups.json", doc)
    groups = [list(g["labels"]) for g in doc["groups"]]
    logger.info("scaffold: %d over-clusters -> %d label groups, %d nouns",
                doc["params"]["n_overclusters"], len(groups), sum(len(g) for g in groups))
    return groups


def prepared_inputs(method: str, inputs: dict[str, Any]) -> Any:
    """The inputs of ``method`` through :func:`kec.cluster.inputs.prepare_inputs`, the
    path ``kec cluster`` takes (lint, the features' own text encoder, the name template
    of their kind), made once per method and kept in ``inputs["_cache"]``.

    ``method`` gets its required inputs; ``cae`` also gets the caption corpus: the
    ``captions`` texts when given, else the knowledge file's
    (:func:`kec.cluster.inputs.knowledge_captions`), else none (CAE's no-caption
    ablation).
    """
    from kec.cluster.inputs import prepare_inputs
    from kec.cluster.registry import method_spec

    cache = inputs.setdefault("_cache", {})
    if method not in cache:
        needs = method_spec(method).requires
        given: dict[str, Any] = {
            "nouns": inputs.get("nouns") if "nouns" in needs else None,
            "knowledge": inputs.get("knowledge") if "knowledge" in needs else None}
        if method == "cae":
            given["captions"] = inputs.get("captions") or None
            if given["captions"] is None:
                given["knowledge"] = inputs.get("knowledge")
        cache[method] = prepare_inputs(inputs["images"], method, **given,
                                       cache=inputs.get("cache_dir"))
    return cache[method]


def run_one(method: str, inputs: dict[str, Any], seed: int) -> dict[str, Any]:
    """Run ``method`` once with ``seed`` through :func:`kec.cluster.run_method`.

    ``inputs``: ``images`` and ``nouns`` (feature sets), ``k``, ``over_clusters``,
    ``knowledge`` (path or None), ``captions`` (texts or None) and ``cache_dir`` (the
    embedding cache of the knowledge texts). Returns ``{"clusters", "summary"}``.
    """
    from kec.cluster import run_method

    prepared = prepared_inputs(method, inputs)
    params: dict[str, Any] = {"random_state": seed}
    over = inputs.get("over_clusters")
    if method in ("tac", "cae") and over is not None:
        params["n_overclusters"] = over
    result = run_method(method, prepared.features, inputs["k"], **prepared.method_inputs(),
                        **params)
    summary = {"parameters": result.params, "timings": result.timings, "info": result.info}
    if result.clusters is not None:
        summary["clusters"] = result.clusters
    return {"clusters": result.labels, "summary": summary}


def score(labels: list[str] | None, clusters: np.ndarray) -> dict[str, float]:
    """ACC, NMI, ARI in [0, 1] (empty without labels)."""
    if labels is None:
        return {}
    from kec.cluster.metrics import evaluate

    m = evaluate(labels, clusters)
    return {k: float(m[k]) for k in ("acc", "nmi", "ari")}


def write_run(folder: Path, images: FeatureSet, clusters: np.ndarray, *, method: str,
              seed: int, metrics: dict[str, float], seconds: float,
              extra: dict[str, Any] | None, features_path: Path,
              knowledge_path: Path | None) -> None:
    """``assignments.csv`` + ``summary.json`` through the one result writer of ``kec cluster``
    (:func:`kec.report.result.write_result`), so ``kec report`` reads both alike."""
    from kec.report.result import write_result

    extra = extra or {}
    k = int(np.max(clusters)) + 1 if len(clusters) else 0
    sizes = np.bincount(clusters, minlength=k)
    inputs: dict[str, Any] = {"features": {"path": str(Path(features_path).resolve())}}
    if knowledge_path is not None and method in ("kec", "kec+cae"):
        inputs["knowledge"] = {"path": str(Path(knowledge_path).resolve())}
    params = {"seed": seed, "method": method, **extra.get("parameters", {})}
    if "n_clusters" in params and "k" not in params:
        params["k"] = params["n_clusters"]
    write_result(folder, ids=list(images.ids), clusters=clusters, labels=images.labels,
                 summary={
                     "method": method,
                     "parameters": params,
                     "inputs": inputs,
                     "timings": {**extra.get("timings", {}), "total": round(seconds, 4)},
                     "metrics": metrics or None,
                     "clusters": extra.get("clusters")
                     or [{"cluster": c, "size": int(s)} for c, s in enumerate(sizes)],
                     "info": extra.get("info", {}),
                 })
