"""Training-free clustering math: OT, spherical k-means, TAC scaffold, grounding, fusion.

Modules (pure functions or scikit-learn estimators over numpy arrays):

- :mod:`kec.cluster.registry` — the method table: names, inputs, defaults (plain data);
- :mod:`kec.cluster.estimators` — :class:`KMeansBaseline`, :class:`TAC`, :class:`KEC`,
  :class:`CAE`, :class:`KECCAE` (scikit-learn estimators);
- :mod:`kec.cluster.methods` — one ``run_*`` function per method, :func:`run_method`;
- :mod:`kec.cluster.ot` — entropic OT between images and texts (dense, streamed,
  semi-relaxed, partial) and CAE's transported features;
- :mod:`kec.cluster.kmeans` — :class:`SphericalKMeans`;
- :mod:`kec.cluster.clusterers` — ``create_clusterer("kmeans"|"spectral"|"agglomerative")``;
- :mod:`kec.cluster.metrics` — ACC (Hungarian), NMI, ARI;
- :mod:`kec.cluster.scaffold` — TAC's over-clustering, noun selection, text counterpart
  and KEC's over-cluster merging into label groups;
- :mod:`kec.cluster.grounding` — KEC's softmax grounding and the OT grounding of kec+cae;
- :mod:`kec.cluster.fusion` — CAE's adaptive fusion, KEC's (published) concatenation;
- :mod:`kec.cluster.guard`, :mod:`kec.cluster.strategies` — guarded fusion, the default of
  ``kec`` and ``kec+cae``, and the table of fusion strategies;
- :mod:`kec.cluster.knowledge_features` — :func:`knowledge_features` embeds a knowledge
  document.

Every name below is imported on first use (``import kec.cluster`` loads neither numpy
nor scikit-learn), so reading the registry from the command line costs nothing.
``kec.cluster.knowledge_features`` is the *function*; its module stays importable as
``from kec.cluster.knowledge_features import ...``.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kec._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from kec.cluster._checks import ClusteringInputError
    from kec.cluster.clusterers import create_clusterer
    from kec.cluster.estimators import CAE, KEC, KECCAE, TAC, KMeansBaseline
    from kec.cluster.kmeans import SphericalKMeans
    from kec.cluster.knowledge_features import KnowledgeFeatures, knowledge_features
    from kec.cluster.methods import (
        METHOD_NAMES,
        MethodResult,
        name_clusters,
        run_cae,
        run_kec,
        run_kec_cae,
        run_kmeans,
        run_method,
        run_tac,
    )
    from kec.cluster.metrics import ari, cluster_accuracy, evaluate, nmi
    from kec.cluster.ot import (
        OTResult,
        partial,
        semi_relaxed,
        sinkhorn_log,
        sinkhorn_log_chunked,
        solve_and_transport,
        solve_ot,
        transport_features,
    )
    from kec.cluster.registry import check_inputs, method_names, method_spec

_LAZY: dict[str, str] = {
    "ClusteringInputError": "kec.cluster._checks",
    "create_clusterer": "kec.cluster.clusterers",
    "CAE": "kec.cluster.estimators",
    "KEC": "kec.cluster.estimators",
    "KECCAE": "kec.cluster.estimators",
    "KMeansBaseline": "kec.cluster.estimators",
    "TAC": "kec.cluster.estimators",
    "SphericalKMeans": "kec.cluster.kmeans",
    "KnowledgeFeatures": "kec.cluster.knowledge_features",
    "knowledge_features": "kec.cluster.knowledge_features",
    "METHOD_NAMES": "kec.cluster.methods",
    "MethodResult": "kec.cluster.methods",
    "name_clusters": "kec.cluster.methods",
    "run_cae": "kec.cluster.methods",
    "run_kec": "kec.cluster.methods",
    "run_kec_cae": "kec.cluster.methods",
    "run_kmeans": "kec.cluster.methods",
    "run_method": "kec.cluster.methods",
    "run_tac": "kec.cluster.methods",
    "ari": "kec.cluster.metrics",
    "cluster_accuracy": "kec.cluster.metrics",
    "evaluate": "kec.cluster.metrics",
    "nmi": "kec.cluster.metrics",
    "OTResult": "kec.cluster.ot",
    "partial": "kec.cluster.ot",
    "semi_relaxed": "kec.cluster.ot",
    "sinkhorn_log": "kec.cluster.ot",
    "sinkhorn_log_chunked": "kec.cluster.ot",
    "solve_and_transport": "kec.cluster.ot",
    "solve_ot": "kec.cluster.ot",
    "transport_features": "kec.cluster.ot",
    "check_inputs": "kec.cluster.registry",
    "method_names": "kec.cluster.registry",
    "method_spec": "kec.cluster.registry",
}

__all__ = [
    "CAE",
    "KEC",
    "KECCAE",
    "METHOD_NAMES",
    "TAC",
    "ClusteringInputError",
    "KMeansBaseline",
    "KnowledgeFeatures",
    "MethodResult",
    "OTResult",
    "SphericalKMeans",
    "ari",
    "check_inputs",
    "cluster_accuracy",
    "create_clusterer",
    "evaluate",
    "knowledge_features",
    "method_names",
    "method_spec",
    "name_clusters",
    "nmi",
    "partial",
    "run_cae",
    "run_kec",
    "run_kec_cae",
    "run_kmeans",
    "run_method",
    "run_tac",
    "semi_relaxed",
    "sinkhorn_log",
    "sinkhorn_log_chunked",
    "solve_and_transport",
    "solve_ot",
    "transport_features",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


class _Package(ModuleType):
    """Keeps exported functions that share a submodule's name (``knowledge_features``)
    from being replaced by that submodule, which the import system binds to the package
    attribute of the same name when the submodule is first imported."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, ModuleType) and _LAZY.get(name) == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
