"""One clustering run from files, as ``kec cluster`` does it, for the command line and
for notebooks: :func:`run_clustering` reads the feature files, prepares the method's
inputs (:func:`kec.cluster.inputs.prepare_inputs`), runs the method, scores it when the
items carry labels, and returns a :class:`ClusterRun`; :meth:`ClusterRun.write` (or
:func:`write_result`) writes its result folder (``assignments.csv`` + ``summary.json``,
:func:`kec.report.result.write_result`), which ``kec report`` reads.

>>> import kec
>>> run = kec.run_clustering("photos.features.safetensors", k=10, method="kec",
...                          knowledge="photos.knowledge.json", seed=0)  # doctest: +SKIP
>>> run.metrics["acc"], run.result.clusters[0]["name"]                  # doctest: +SKIP
>>> kec.write_result(run, "result/")                                    # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kec.errors import KecError

logger = logging.getLogger(__name__)


def describe_file(path: str | os.PathLike[str], feats: Any) -> dict[str, Any]:
    """Provenance of a feature file (or sharded set) for result documents."""
    from kec.features import feature_set_sha256

    return {"path": str(path), "sha256": feature_set_sha256(path), "n": len(feats),
            "dim": feats.dim, "kind": feats.kind, "encoder": feats.encoder}


def empty_cluster_warnings(sizes: Any, features: Any) -> list[str]:
    """What to warn about a clustering with empty clusters (none when every cluster has a
    member): how many are empty and, when that is the cause, how few distinct feature rows
    there are."""
    import numpy as np

    empty = int(np.count_nonzero(np.asarray(sizes) == 0))
    if not empty:
        return []
    k = len(sizes)
    text = f"{empty} of the {k} clusters are empty"
    distinct = len(np.unique(np.asarray(features), axis=0))
    if distinct < k:
        text += (f": the {len(features)} feature rows hold only {distinct} distinct "
                 f"vector(s), fewer than --k {k}")
    return [text + " (recorded in summary.json, 'warnings')"]


def unconverged_notes(info: dict[str, Any]) -> list[str]:
    """One line per optimal-transport solve in ``info`` that did not converge."""
    return [f"optimal transport '{name}' did not converge within its budget (marginal "
            f"error {value.get('marginal_error')}); see info.{name} in summary.json"
            for name, value in sorted(info.items())
            if isinstance(value, dict) and value.get("converged") is False]


def matmul_dtypes(info: Any) -> set[str]:
    """Every GEMM precision the OT solves recorded (``matmul_dtype``) in ``info``."""
    if isinstance(info, dict):
        found = {str(info["matmul_dtype"])} if info.get("matmul_dtype") else set()
        for v in info.values():
            found |= matmul_dtypes(v)
        return found
    if isinstance(info, list):
        return set().union(*(matmul_dtypes(v) for v in info)) if info else set()
    return set()


@dataclass
class ClusterRun:
    """A finished clustering run: what :func:`run_clustering` returns.

    Attributes
    ----------
    method : str
        The method.
    k : int
        Number of clusters.
    seed : int or None
        ``random_state`` of the run.
    ids : list of str
        Item ids, in the order of the features.
    labels : list of str or None
        The items' true labels, when the feature file has them.
    kind : str
        ``"images"`` or ``"items"`` (a text collection).
    result : MethodResult
        The method's result: ``result.labels`` (the clusters), ``clusters`` (names),
        ``params``, ``timings``, ``info``.
    inputs : dict
        Every input file with its SHA-256 (and the knowledge linted).
    timings : dict
        Seconds per stage, ``total`` last.
    metrics : dict or None
        ACC/NMI/ARI when ``labels`` exist.
    warnings : list of str
        Recorded in ``summary.json`` (empty clusters).
    notes : list of str
        Printed only (OT solves that did not converge; their details are in ``info``).
    device : dict
        Where OT and k-means ran and at what precision.
    """

    method: str
    k: int
    seed: Any
    ids: list[str]
    labels: list[str] | None
    kind: str
    result: Any
    inputs: dict[str, Any]
    timings: dict[str, float]
    metrics: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    device: dict[str, Any] = field(default_factory=dict)

    @property
    def clusters(self) -> list[dict[str, Any]]:
        """Per cluster ``{"cluster", "size"}``, with names for knowledge methods."""
        import numpy as np

        if self.result.clusters is not None:
            return self.result.clusters
        sizes = np.bincount(self.result.labels, minlength=self.k)
        return [{"cluster": c, "size": int(s)} for c, s in enumerate(sizes)]

    def summary(self) -> dict[str, Any]:
        """The ``summary.json`` document (``kec/schemas/summary.schema.json``, less the
        fields :func:`kec.report.result.write_result` adds)."""
        return {
            "method": self.method,
            "parameters": {"k": self.k, "seed": self.seed, "method": self.method,
                           **self.result.params},
            "inputs": self.inputs,
            "timings": self.timings,
            "device": self.device,
            "metrics": self.metrics,
            "clusters": self.clusters,
            "warnings": self.warnings,
            "info": self.result.info,
        }

    def line(self, out: str | os.PathLike[str] | None = None) -> str:
        """One line for a terminal: what was clustered, the scores, what was written."""
        line = f"clustered {len(self.ids)} {self.kind} into {self.k} clusters with {self.method}"
        if self.metrics:
            m = self.metrics
            line += (f": ACC {100 * m['acc']:.1f}  NMI {100 * m['nmi']:.1f}  "
                     f"ARI {100 * m['ari']:.1f}")
        if out is not None:
            line += (f"; wrote {out}/assignments.csv and summary.json "
                     f"({self.timings['total']:.1f} s)")
        return line

    def write(self, folder: str | os.PathLike[str]) -> Path:
        """Write the result folder (:func:`write_result`)."""
        return write_result(self, folder)


def write_result(run: ClusterRun, folder: str | os.PathLike[str]) -> Path:
    """Write ``run`` as a result folder: ``assignments.csv`` (id, cluster, label) and
    ``summary.json``, together and atomically (:func:`kec.report.result.write_result`)."""
    from kec.report.result import write_result as write_folder

    return write_folder(folder, ids=run.ids, clusters=run.result.labels, labels=run.labels,
                        summary=run.summary())


def _load_text(path: Any, images: Any, what: str) -> Any:
    from kec.features import check_compatible, load_features

    feats = load_features(path, kind="text")
    check_compatible(images, feats)
    logger.info("%s: %d x %d from %s", what, len(feats), feats.dim, path)
    return feats


def _load(images_path: Any, k: int, method: str, files: dict[str, Any], phrasing: str,
          timings: dict[str, float]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The feature files read and described: ``(images, texts, inputs)``."""
    from kec.cluster.registry import method_spec, spell
    from kec.features import load_features

    t = time.perf_counter()
    images = load_features(images_path, kind="image")
    if k > len(images):
        raise KecError(f"{spell('n_clusters', phrasing)} {k} is larger than the number of "
                       f"{images.noun} ({len(images)}) in {images_path}")
    inputs: dict[str, Any] = {"features": describe_file(images_path, images)}
    texts: dict[str, Any] = {}
    for name in ("nouns", "captions"):
        if files.get(name) is not None and name in method_spec(method).inputs:
            texts[name] = _load_text(files[name], images, name)
            inputs[name] = describe_file(files[name], texts[name])
    timings["load"] = round(time.perf_counter() - t, 4)
    return images, texts, inputs


def run_clustering(
    images: str | os.PathLike[str],
    *,
    k: int,
    method: str = "kmeans",
    knowledge: Any = None,
    nouns: str | os.PathLike[str] | None = None,
    captions: str | os.PathLike[str] | None = None,
    text_encoder: Any = None,
    keep_flagged: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
    device: str = "auto",
    seed: int | None = 0,
    params: dict[str, Any] | None = None,
    phrasing: str = "api",
    rows: Any = None,
) -> ClusterRun:
    """Cluster the items of a feature file with ``method``: ``kec cluster`` as a call.

    Parameters
    ----------
    images : path
        Feature file of the items (``kec embed images`` or a text collection's).
    k : int
        Number of clusters.
    method : str
        A method of :data:`kec.cluster.registry.METHODS`.
    knowledge : path, dict or KnowledgeFeatures, optional
        For ``kec`` and ``kec+cae``; for ``cae`` without ``captions``, its captions.
    nouns, captions : path, optional
        Text feature files from the items' encoder.
    text_encoder : str or object, optional
        Embeds the knowledge (default: the features' own text encoder).
    keep_flagged : bool
        Keep the knowledge items lint flags (default: dropped, listed in ``inputs``).
    cache_dir : path, optional
        Embedding cache of knowledge texts (default: ``$KEC_CACHE_DIR`` or
        ``~/.cache/kec``); ``cache=False``: none.
    device : {"auto", "cpu", "cuda"}
        Where OT and k-means run.
    seed : int or None
        ``random_state`` of the method.
    params : dict, optional
        The method's other parameters (:func:`kec.cluster.params.method_params`).
    phrasing : {"api", "cli"}
        Whether errors name arguments (``n_clusters``) or flags (``--k``).
    rows : kec.cluster.distributed.RowGroup, optional
        The process group of a run under ``torchrun``, entered with
        :func:`kec.cluster.distributed.sharded`: this process clusters its block of rows
        (:func:`kec.cluster.distributed.block_of`), every row sum is all-reduced, and the
        labels of all ranks are gathered into the result (``info["distributed"]``).

    Returns
    -------
    ClusterRun
    """
    from kec.cluster.backend import method_device
    from kec.cluster.inputs import prepare_inputs
    from kec.cluster.methods import run_method
    from kec.cluster.metrics import evaluate
    from kec.cluster.registry import method_spec
    from kec.vocab import cache_dir as default_cache

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    files = {"nouns": nouns, "captions": captions}
    items, texts, inputs = _load(images, k, method, files, phrasing, timings)
    prepared = prepare_inputs(
        items, method,
        knowledge=knowledge if "knowledge" in method_spec(method).inputs else None,
        nouns=texts.get("nouns"), captions=texts.get("captions"), text_encoder=text_encoder,
        lint="keep" if keep_flagged else True,
        cache=default_cache(cache_dir) if cache else None, phrasing=phrasing)
    if prepared.lint and prepared.lint["dropped"]:
        logger.info("dropped %d knowledge item(s) flagged by lint (see summary.json; "
                    "--keep-flagged keeps them)", len(prepared.lint["dropped"]))
    inputs.update(prepared.described)
    timings.update(prepared.timings)
    used_device = method_device(device)
    if rows is None:
        block = prepared.features
    else:
        from kec.cluster.distributed import block_of

        block = block_of(items, rows)
    result = run_method(method, block, k, **prepared.method_inputs(),
                        **{**(params or {}), "random_state": seed, "device": used_device})
    if rows is not None:  # every rank's labels, in row order
        result.labels = rows.gather(result.labels)
        result.info["distributed"] = rows.describe()
    timings.update(result.timings)
    t = time.perf_counter()
    metrics = evaluate(items.labels, result.labels) if items.labels is not None else None
    timings["evaluate"] = round(time.perf_counter() - t, 4)
    import numpy as np

    warnings = empty_cluster_warnings(np.bincount(result.labels, minlength=k),
                                      items.features)
    timings["total"] = round(time.perf_counter() - t0, 4)
    return ClusterRun(
        method=method, k=k, seed=seed, ids=list(items.ids), labels=items.labels,
        kind="items" if items.kind == "items" else "images", result=result, inputs=inputs,
        timings=timings, metrics=metrics, warnings=warnings,
        notes=unconverged_notes(result.info),
        device={"requested": device, "used": result.params.get("device") or "cpu (numpy)",
                "precision": "float32", "ot_matmul": sorted(matmul_dtypes(result.info))})


__all__ = ["ClusterRun", "describe_file", "empty_cluster_warnings", "matmul_dtypes",
           "run_clustering", "unconverged_notes", "write_result"]
