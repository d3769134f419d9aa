"""The protocols every layer shares, defined once and importable from anywhere.

Nothing here imports numpy at run time, torch, or any other kec module, so the clustering
math (``kec.cluster``), the knowledge builder (``kec.knowledge``) and the encoders
(``kec.encoders``) can all depend on it without depending on each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np


@runtime_checkable
class TextEncoder(Protocol):
    """Turns strings into L2-normalised float32 vectors.

    Only :meth:`encode` is required everywhere; kec's own encoders also provide ``dim``
    and :meth:`describe` (provenance recorded in feature files and knowledge files), and
    code that needs them says so.
    """

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``texts`` into an ``(n, dim)`` float32 array with unit-norm rows."""
        ...


@runtime_checkable
class DescribedTextEncoder(TextEncoder, Protocol):
    """A :class:`TextEncoder` that knows its dimension and describes itself."""

    dim: int

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable provenance: ``kind``, ``model``, ``pretrained``, ``dim``, ..."""
        ...


__all__ = ["DescribedTextEncoder", "TextEncoder"]
