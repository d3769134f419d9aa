"""kec's Python face: factories for the inputs, estimators for the methods.

>>> import kec
>>> X = kec.load_features("images.safetensors")                   # doctest: +SKIP
>>> model = kec.KEC(n_clusters=10).fit(X, knowledge="knowledge.json")  # doctest: +SKIP
>>> model.cluster_names_                                          # doctest: +SKIP

Factories, one per concern (as open_clip's ``create_model``):

- :func:`load_features`: a feature file written by ``kec embed`` (features, ids,
  labels and the encoder that made them);
- :func:`load_knowledge`: a knowledge file written by ``kec knowledge build``,
  validated against its schema;
- :func:`create_text_encoder`: a text encoder from a spec string (``"minilm"``,
  ``"clip:ViT-B-32-quickgelu:openai"``, ``"sentence-transformers:NAME"``);
- :func:`embed_knowledge`: a knowledge document embedded by a text encoder
  (:class:`~kec.cluster.knowledge_features.KnowledgeFeatures`), to reuse one embedding
  across several fits.

The estimators (:class:`KMeansBaseline`, :class:`TAC`, :class:`KEC`, :class:`CAE`,
:class:`KECCAE`, :class:`SphericalKMeans`) live in :mod:`kec.cluster`; the method table in
:mod:`kec.cluster.registry`. Each factory imports its layer when called, so importing
this module loads no model library.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from kec.cluster.knowledge_features import KnowledgeFeatures
    from kec.encoders.base import TextEncoder
    from kec.features import FeatureSet


def load_features(path: str | os.PathLike[str], *, kind: str | None = None) -> FeatureSet:
    """Read a kec feature file (safetensors with provenance), checking it first.

    Parameters
    ----------
    path : str or path-like
        File written by ``kec embed images`` or ``kec embed texts``.
    kind : {"image", "text"} or None
        Expected kind; ``None`` accepts both.

    Returns
    -------
    FeatureSet
        ``.features`` (``(n, d)`` float32), ``.ids``, ``.labels``, ``.encoder``.
    """
    from kec.features import load_features as _load

    return _load(path, kind=kind)


def load_knowledge(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a knowledge file and validate it against its JSON Schema.

    Raises
    ------
    kec.errors.InvalidKnowledgeError
        The file breaks the schema or a semantic rule (one line per problem).
    """
    from kec.knowledge.document import load_knowledge as _load

    return _load(path)


def create_text_encoder(spec: str | None = None, **kwargs: Any) -> TextEncoder:
    """A text encoder from a spec string; keyword arguments as
    :func:`kec.encoders.factory.create_text_encoder` (``device``, ``batch_size``,
    ``templates``, ``precision``).

    ``None`` or ``"minilm"`` is the offline all-MiniLM-L6-v2; for clustering CLIP image
    features use the same CLIP model's text tower, ``"clip:MODEL:PRETRAINED"``.
    """
    from kec.encoders.factory import create_text_encoder as _create

    return _create(spec, **kwargs)


def embed_knowledge(
    knowledge: Mapping[str, Any] | str | os.PathLike[str],
    text_encoder: Any,
    *,
    kind: str = "image",
    lint: bool | str = True,
    cache: str | os.PathLike[str] | None = None,
) -> KnowledgeFeatures:
    """Embed every text of a knowledge document once, as ``fit`` and ``kec cluster`` do.

    Parameters
    ----------
    knowledge : dict or path
        A knowledge document (e.g. from :func:`make_knowledge`) or the path of a
        knowledge file.
    text_encoder : str or object with ``encode``
        Spec string for :func:`create_text_encoder`, or an encoder, in the space of the
        features the knowledge will ground.
    kind : {"image", "items"}
        Kind of those features: concept names go into CLIP's photo prompt for images and
        are embedded bare for the items of a text collection.
    lint : {True, "keep", False}
        Drop what ``kec knowledge lint`` flags (default), keep everything, or skip lint.
    cache : path-like or None
        Embedding cache root (``~/.cache/kec`` is the command line's); ``None``: none.

    Returns
    -------
    KnowledgeFeatures
        Pass it as ``fit(X, knowledge=...)`` to several estimators.

    See Also
    --------
    kec.cluster.inputs.embed_knowledge : the function this calls.
    """
    from kec.cluster.inputs import embed_knowledge as _embed

    return _embed(knowledge, text_encoder, kind=kind, lint=lint, cache=cache)


def lint_and_drop(
    doc: Mapping[str, Any], text_encoder: Any, *, keep_flagged: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`kec.knowledge.lint.lint_and_drop`: what ``kec cluster`` does to a knowledge
    document by default before grounding (``keep_flagged=True`` keeps everything)."""
    from kec.knowledge.lint import lint_and_drop as _lint_and_drop

    return _lint_and_drop(doc, text_encoder, keep_flagged=keep_flagged)


__all__ = ["create_text_encoder", "embed_knowledge", "lint_and_drop", "load_features",
           "load_knowledge"]
