"""kec: knowledge-enhanced image clustering.

LLMs build reusable textual knowledge (concepts, discriminative attributes, pairs of
similar concepts) once; CLIP features, optimal transport and k-means use it to cluster
images without training.

>>> import kec
>>> X = kec.load_features("images.safetensors")                   # doctest: +SKIP
>>> model = kec.KEC(n_clusters=10).fit(X, knowledge="knowledge.json")  # doctest: +SKIP
>>> [c["name"] for c in model.clusters_]                          # doctest: +SKIP

Estimators (scikit-learn): :class:`KMeansBaseline`, :class:`TAC`, :class:`KEC`,
:class:`CAE`, :class:`KECCAE`, :class:`SphericalKMeans`. Factories:
:func:`load_features`, :func:`load_knowledge`, :func:`create_text_encoder`,
:func:`embed_knowledge`, :func:`build_knowledge`, :func:`make_knowledge`. A ``kec
cluster`` run as a call: :func:`run_clustering` (a :class:`ClusterRun`) and
:func:`write_result`. All are imported on first use, so ``import kec`` (and ``kec
--help``) loads no numpy, torch or model library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kec._lazy import lazy_exports
from kec._version import __version__

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from kec.api import create_text_encoder, embed_knowledge, load_features, load_knowledge
    from kec.cluster.estimators import CAE, KEC, KECCAE, TAC, KMeansBaseline
    from kec.cluster.kmeans import SphericalKMeans
    from kec.cluster.metrics import evaluate
    from kec.cluster.registry import method_names
    from kec.cluster_run import ClusterRun, run_clustering, write_result
    from kec.knowledge.handwritten import make_knowledge
    from kec.llm.build import build_knowledge

_LAZY: dict[str, str] = {
    "CAE": "kec.cluster.estimators",
    "KEC": "kec.cluster.estimators",
    "KECCAE": "kec.cluster.estimators",
    "KMeansBaseline": "kec.cluster.estimators",
    "TAC": "kec.cluster.estimators",
    "SphericalKMeans": "kec.cluster.kmeans",
    "ClusterRun": "kec.cluster_run",
    "run_clustering": "kec.cluster_run",
    "write_result": "kec.cluster_run",
    "build_knowledge": "kec.llm.build",
    "create_text_encoder": "kec.api",
    "embed_knowledge": "kec.api",
    "evaluate": "kec.cluster.metrics",
    "load_features": "kec.api",
    "load_knowledge": "kec.api",
    "make_knowledge": "kec.knowledge.handwritten",
    "method_names": "kec.cluster.registry",
}

__all__ = [
    "CAE",
    "KEC",
    "KECCAE",
    "TAC",
    "ClusterRun",
    "KMeansBaseline",
    "SphericalKMeans",
    "__version__",
    "build_knowledge",
    "create_text_encoder",
    "embed_knowledge",
    "evaluate",
    "load_features",
    "load_knowledge",
    "make_knowledge",
    "method_names",
    "run_clustering",
    "write_result",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
