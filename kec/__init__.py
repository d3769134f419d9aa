"""kec: knowledge-enhanced image clustering.

LLMs build reusable textual knowledge (concepts, discriminative attributes, pairs of
similar concepts) once; CLIP features, optimal transport and k-means use it to cluster
images without training.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kec")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
