"""Training-free clustering math: OT, spherical k-means, TAC scaffold, grounding, fusion.

Modules (all pure functions or scikit-learn-style estimators over numpy arrays):

- :mod:`kec.cluster.ot` — entropic OT between images and texts (dense, streamed,
  semi-relaxed, partial) and CAE's transported features;
- :mod:`kec.cluster.kmeans` — :class:`SphericalKMeans`;
- :mod:`kec.cluster.clusterers` — ``create_clusterer("kmeans"|"spectral"|"agglomerative")``;
- :mod:`kec.cluster.metrics` — ACC (Hungarian), NMI, ARI;
- :mod:`kec.cluster.scaffold` — TAC's over-clustering, noun selection, text counterpart
  and KEC's over-cluster merging into label groups;
- :mod:`kec.cluster.grounding` — KEC's softmax grounding and the OT grounding of kec+cae;
- :mod:`kec.cluster.fusion` — CAE's adaptive fusion, KEC's concatenation;
- :mod:`kec.cluster.knowledge_features` — embed a knowledge document;
- :mod:`kec.cluster.methods` — ``run_method("kmeans"|"tac"|"kec"|"cae"|"kec+cae", ...)``.
"""

from kec.cluster._checks import ClusteringInputError
from kec.cluster.clusterers import create_clusterer
from kec.cluster.kmeans import SphericalKMeans
from kec.cluster.methods import METHOD_NAMES, MethodResult, run_method
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

__all__ = [
    "METHOD_NAMES",
    "ClusteringInputError",
    "MethodResult",
    "OTResult",
    "SphericalKMeans",
    "ari",
    "cluster_accuracy",
    "create_clusterer",
    "evaluate",
    "nmi",
    "partial",
    "run_method",
    "semi_relaxed",
    "sinkhorn_log",
    "sinkhorn_log_chunked",
    "solve_and_transport",
    "solve_ot",
    "transport_features",
]
