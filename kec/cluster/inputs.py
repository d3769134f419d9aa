"""One path from a method's inputs to the arrays its function takes: :func:`prepare_inputs`.

``kec cluster``, the estimators (:mod:`kec.cluster.estimators`) and both ``kec bench``
harnesses call :func:`prepare_inputs`, and nothing else embeds knowledge, so the three
give the same clusters and the same names on the same inputs. It

1. checks that the method has the inputs it requires (:func:`kec.cluster.registry.
   check_inputs`) and drops, with a warning, those it does not use;
2. reads the feature kind (``"image"`` or ``"items"``, a text collection) from a
   :class:`~kec.features.FeatureSet`, or takes it from ``kind`` for an array;
3. makes the text encoder once: the object given, one made from a spec string, or the
   one recorded in the feature set; behind the on-disk embedding cache when ``cache`` is
   a folder; checked to live in the features' space;
4. lints a knowledge document and drops what lint flags (``lint=True``), then embeds it
   with the concept-name template of the feature kind (:data:`NAME_TEMPLATES`: CLIP's
   photo prompt for images, the bare name for text items);
5. for ``cae`` without captions, turns the knowledge into a caption corpus
   (:func:`knowledge_captions`);
6. turns ``nouns``/``captions`` given as feature sets or strings into arrays.

This is the one :mod:`kec.cluster` module that reaches up, lazily, to the model layer
(:mod:`kec.encoders`: only when it must make an encoder from a spec string or cache its
embeddings) and to the knowledge-file reader and linter (only when given a path or a
document). Given arrays and :class:`KnowledgeFeatures` it runs on the math alone.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from kec.cluster._checks import ClusteringInputError
from kec.cluster.knowledge_features import NAME_TEMPLATE, KnowledgeFeatures, knowledge_features
from kec.cluster.registry import check_inputs, spell, unused_inputs
from kec.errors import InvalidKnowledgeError, KecError

logger = logging.getLogger(__name__)

#: The concept-name template for each feature kind: CLIP's zero-shot prompt for images,
#: the bare name for the items of a text collection (a name is itself a short text).
NAME_TEMPLATES: Mapping[str, str] = MappingProxyType({"image": NAME_TEMPLATE, "items": "{}"})

#: ``lint`` values: drop what lint flags (``True``), lint but keep everything
#: (``"keep"``: the report is still recorded), or do not lint (``False``).
LINT_MODES = (True, "keep", False)


class UnusableKnowledgeError(ClusteringInputError):
    """A knowledge file or document that cannot be grounded (breaks the schema, has no
    concepts): an input error, with its first problem on one line."""


@dataclass
class MethodInputs:
    """What :func:`prepare_inputs` returns: a method's inputs, ready for its function.

    Attributes
    ----------
    method : str
        The method they were prepared for.
    features : numpy.ndarray
        ``(N, d)`` float32 item features.
    kind : str
        ``"image"`` or ``"items"`` (a text collection).
    nouns, captions : numpy.ndarray or None
        ``(M, d)`` text features, when the method uses them.
    knowledge : KnowledgeFeatures or None
        The embedded (and linted) knowledge.
    lint : dict or None
        What lint found and dropped (:func:`kec.knowledge.lint.lint_and_drop`), when a
        document was linted.
    described : dict
        For ``summary.json``'s ``inputs``: ``knowledge`` (path, SHA-256, counts, text
        encoder, lint) and, when the knowledge made the caption corpus, ``captions``.
    timings : dict
        Seconds spent embedding (``embed_knowledge``, ``embed_captions``, ``embed_texts``).
    """

    method: str
    features: np.ndarray
    kind: str
    nouns: np.ndarray | None = None
    captions: np.ndarray | None = None
    knowledge: KnowledgeFeatures | None = None
    lint: dict[str, Any] | None = None
    described: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def method_inputs(self) -> dict[str, Any]:
        """``nouns``, ``captions`` and ``knowledge`` as keyword arguments of
        :func:`kec.cluster.methods.run_method`."""
        return {"nouns": self.nouns, "captions": self.captions, "knowledge": self.knowledge}


# --------------------------------------------------------------------------- helpers
def name_template(kind: str) -> str:
    """The concept-name template for features of ``kind`` (:data:`NAME_TEMPLATES`)."""
    try:
        return NAME_TEMPLATES[kind]
    except KeyError:
        raise ClusteringInputError(
            f"kind must be one of {', '.join(NAME_TEMPLATES)}, got {kind!r}") from None


def features_noun(kind: str) -> str:
    """How messages call features of ``kind``: ``"image features"`` or ``"item
    features"`` (the items of a text collection)."""
    return "item features" if kind == "items" else "image features"


def is_feature_set(value: Any) -> bool:
    """Whether ``value`` is a :class:`~kec.features.FeatureSet` (duck-typed)."""
    return hasattr(value, "features") and hasattr(value, "metadata")


def _is_strings(value: Any) -> bool:
    return (isinstance(value, Sequence) and not isinstance(value, (str, bytes))
            and len(value) > 0 and all(isinstance(v, str) for v in value))


def knowledge_captions(doc: Mapping[str, Any]) -> list[str]:
    """A caption corpus made from a knowledge document, so that ``cae`` needs no caption
    dataset: the concepts' own ``captions`` where a concept has them, else its
    description and ``"<name>, <attribute>"`` for each of its uni-attributes (a kec
    choice). Distinct texts, in document order."""
    out: list[str] = []
    for c in doc.get("concepts") or []:
        caps = [s for s in c.get("captions") or [] if isinstance(s, str) and s.strip()]
        if caps:
            out.extend(caps)
            continue
        if c.get("description"):
            out.append(str(c["description"]))
        out.extend(f"{c['name']}, {a}" for a in c.get("attributes") or [])
    return list(dict.fromkeys(s.strip() for s in out if s.strip()))


def make_text_encoder(spec: str) -> Any:
    """A text encoder from a spec string (imports :mod:`kec.encoders`, and a model
    library, only now); the one seam where kec makes text encoders for clustering."""
    from kec.encoders.factory import create_text_encoder

    return create_text_encoder(spec)


class EncodeOnce:
    """A text encoder that embeds each distinct text once (other attributes are the
    wrapped encoder's): linting and grounding a document read the same texts."""

    def __init__(self, encoder: Any) -> None:
        self._encoder = encoder
        self._rows: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Rows of ``texts``, each distinct text sent to the wrapped encoder once."""
        texts = list(texts)
        new = list(dict.fromkeys(t for t in texts if t not in self._rows))
        if new:
            self._rows.update(zip(new, np.asarray(self._encoder.encode(new))))
        if not texts:
            return np.asarray(self._encoder.encode([]))
        return np.stack([self._rows[t] for t in texts])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)


def _describe(encoder: Any) -> dict[str, Any] | None:
    describe = getattr(encoder, "describe", None)
    return dict(describe()) if callable(describe) else None


def _check_same_space(features_encoder: Mapping[str, Any] | None, encoder: Any,
                      dim: int | None, label: str, phrasing: str, kind: str) -> None:
    """Refuse a text encoder of another dimension, or another model, than the features'."""
    what = features_noun(kind)
    enc_dim = getattr(encoder, "dim", None) if dim is not None else None
    if enc_dim is not None and int(enc_dim) != dim:
        raise ClusteringInputError(
            f"text encoder {label} gives {int(enc_dim)}-d vectors but the {what} are "
            f"{dim}-d; use their own encoder ({spell('text_encoder', phrasing)}"
            "clip:MODEL:PRETRAINED for CLIP image features)")
    described = _describe(encoder)
    if not features_encoder or not described or "kind" not in described:
        return
    from kec.features import encoder_differences

    diffs = encoder_differences(features_encoder, described)
    if diffs:
        raise ClusteringInputError(
            f"text encoder {label} is not the encoder of the {what} ({'; '.join(diffs)})"
            ": its vectors live in another space; use their own text tower")


def resolve_text_encoder(
    text_encoder: Any, features_encoder: Mapping[str, Any] | None, dim: int | None, *,
    cache: str | os.PathLike[str] | None = None, phrasing: str = "api",
    memo: MutableMapping[str, Any] | None = None, kind: str = "image",
) -> Any:
    """The encoder for a method's texts, checked to live in the features' space.

    Parameters
    ----------
    text_encoder : str, object with ``encode``, or None
        A spec string (``"clip:MODEL:PRETRAINED"``, ``"minilm"``), an encoder, or
        ``None``: the encoder recorded in the features (``features_encoder``).
    features_encoder : dict or None
        ``describe()`` of the encoder that made the features.
    dim : int or None
        Dimension of the features (``None``: not checked).
    cache : path-like or None
        kec's cache root: embeddings are read from and written to
        ``<cache>/embeddings/`` (:class:`kec.encoders.cache.CachedTextEncoder`); a model
        made from a spec is then loaded only when a text is not cached. ``None``: no cache.
    phrasing : {"api", "cli"}
        How errors name ``text_encoder``.
    memo : dict, optional
        Encoders made from a spec, by spec and cache: reused instead of loading a model
        again (the estimators keep one per estimator).
    kind : {"image", "items"}
        What the features are, for messages.

    Raises
    ------
    ClusteringInputError
        No encoder given and none recorded; an object without ``encode``; another
        dimension or another model than the features'.
    """
    if text_encoder is not None and not isinstance(text_encoder, str):
        if not callable(getattr(text_encoder, "encode", None)):
            raise ClusteringInputError(
                f"{spell('text_encoder', phrasing)} must be a spec string or an object "
                f"with encode(texts), got {type(text_encoder).__name__}")
        encoder = text_encoder
        if cache is not None and _describe(text_encoder) is not None:
            from kec.encoders.cache import CachedTextEncoder

            encoder = CachedTextEncoder(text_encoder, cache)
        _check_same_space(features_encoder, encoder, dim, type(text_encoder).__name__,
                          phrasing, kind)
        return encoder
    spec = (text_encoder if text_encoder is not None
            else _spec_of(features_encoder, phrasing, kind))
    key = f"{spec}\0{os.fspath(cache) if cache is not None else ''}"
    if memo is not None and key in memo:
        return memo[key]
    if cache is None:
        encoder = make_text_encoder(spec)
    else:
        from kec.encoders.cache import CachedTextEncoder

        encoder = CachedTextEncoder(factory=lambda: make_text_encoder(spec), cache_dir=cache,
                                    key={"spec": spec})
    _check_same_space(features_encoder, encoder, dim, repr(spec), phrasing, kind)
    if memo is not None:
        memo[key] = encoder
    return encoder


def _spec_of(features_encoder: Mapping[str, Any] | None, phrasing: str, kind: str) -> str:
    """The text encoder spec recorded in the features' encoder description."""
    give = spell("text_encoder", phrasing)
    what = features_noun(kind)
    if not features_encoder:
        raise ClusteringInputError(
            f"embedding texts needs a text encoder: give {give}'clip:MODEL:PRETRAINED' "
            f"(the encoder of the {what}), or {what} loaded with kec.load_features, "
            "which record their encoder" if phrasing == "api" else
            f"embedding texts needs a text encoder: give {give} (the {what} record none)")
    from kec.encoders.factory import spec_from_description

    try:
        return spec_from_description(features_encoder)
    except KecError as exc:
        raise ClusteringInputError(
            f"cannot tell which text encoder matches the {what} ({exc}); give "
            f"{give}") from None


def _unusable(exc: InvalidKnowledgeError, source: str) -> UnusableKnowledgeError:
    first = exc.errors[0] if exc.errors else ("$", "invalid")
    more = f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""
    hint = f"; see kec knowledge validate {source}" if not source.startswith("<") else ""
    return UnusableKnowledgeError(
        f"{source} is not usable knowledge: {first[0]}: {first[1]}{more}{hint}")


def knowledge_document(value: Any) -> tuple[dict[str, Any], str, str | None]:
    """``(document, source, sha256)`` of a knowledge file path or a document.

    A path is read and validated against the schema (:func:`kec.load_knowledge`); a
    document with a ``provenance`` block is validated the same way; a minimal document
    (``concepts``, and ``pairs`` if any, as :func:`kec.make_knowledge` writes them
    without the bookkeeping) is checked by the grounding itself.

    Raises
    ------
    UnusableKnowledgeError
        The file or document breaks the schema (first problem on one line).
    """
    if isinstance(value, (str, os.PathLike)):
        from kec._io import sha256_file
        from kec.knowledge.document import load_knowledge

        source = os.fspath(value)
        try:
            return load_knowledge(value), source, sha256_file(value)
        except InvalidKnowledgeError as exc:
            raise _unusable(exc, source) from None
    if isinstance(value, Mapping):
        if "provenance" in value:
            from kec.knowledge.document import validate_knowledge

            try:
                validate_knowledge(value, "<knowledge>")
            except InvalidKnowledgeError as exc:
                raise _unusable(exc, "<knowledge>") from None
        return dict(value), "<knowledge>", None
    raise ClusteringInputError(
        "knowledge must be KnowledgeFeatures, a knowledge document (dict) or the path of "
        f"a knowledge file, got {type(value).__name__}")


def _lint(doc: dict[str, Any], encoder: Any, lint: bool | str, source: str
          ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    if lint is False:
        return doc, None
    from kec.knowledge.lint import lint_and_drop

    try:
        return lint_and_drop(doc, encoder, keep_flagged=lint == "keep")
    except InvalidKnowledgeError as exc:
        raise _unusable(exc, source) from None
    except KecError as exc:
        raise UnusableKnowledgeError(f"knowledge {source}: {exc}") from None


def _embed(doc: dict[str, Any], encoder: Any, kind: str, source: str) -> KnowledgeFeatures:
    try:
        return knowledge_features(doc, encoder, name_template=name_template(kind),
                                  pair_attributes="both", source=source)
    except InvalidKnowledgeError as exc:
        raise _unusable(exc, source) from None


def _knowledge_description(kf: KnowledgeFeatures, source: str, sha: str | None, kind: str,
                           encoder: Any, lint: dict[str, Any] | None) -> dict[str, Any]:
    """The knowledge's entry in ``summary.json``'s ``inputs``."""
    where = {"path": source} if sha is not None else {"source": source}
    return {**where, "sha256": sha, "n_concepts": kf.n_concepts,
            "n_attributes": len(kf.attr_texts), "n_pairs": len(kf.pairs),
            "name_template": name_template(kind), "text_encoder": _describe(encoder) or {},
            "lint": lint}


def embed_knowledge(
    knowledge: Any, text_encoder: Any, *, kind: str = "image", lint: bool | str = True,
    cache: str | os.PathLike[str] | None = None,
) -> KnowledgeFeatures:
    """A knowledge file or document embedded exactly as :func:`prepare_inputs` embeds it
    (lint, then the name template of ``kind``), to reuse one embedding across fits.

    Parameters
    ----------
    knowledge : dict or path
        A knowledge document (:func:`kec.make_knowledge` writes one) or file.
    text_encoder : str or object with ``encode``
        A spec string or an encoder, in the space of the features it will cluster.
    kind : {"image", "items"}
        The kind of the features it will ground: decides the concept-name template.
    lint : {True, "keep", False}
        As :func:`prepare_inputs`.
    cache : path-like or None
        Embedding cache root (:func:`resolve_text_encoder`).

    Returns
    -------
    KnowledgeFeatures
    """
    if lint not in LINT_MODES:
        raise ClusteringInputError(f"lint must be True, 'keep' or False, got {lint!r}")
    name_template(kind)
    encoder = EncodeOnce(resolve_text_encoder(text_encoder, None, None, cache=cache,
                                              kind=kind))
    doc, source, _ = knowledge_document(knowledge)
    doc, _ = _lint(doc, encoder, lint, source)
    return _embed(doc, encoder, kind, source)


def _text_rows(value: Any, name: str, features: Any, encoder: Callable[[], Any]) -> Any:
    """``nouns``/``captions`` as an array: feature-set rows (checked against the
    features' encoder when both are feature sets), encoded strings, or the array."""
    if value is None:
        return None
    if is_feature_set(value):
        if is_feature_set(features):
            from kec.features import check_compatible

            check_compatible(features, value)
        return np.asarray(value.features)
    if _is_strings(value):
        return np.asarray(encoder().encode(list(value)), dtype=np.float32)
    if isinstance(value, (str, bytes, os.PathLike)):
        raise ClusteringInputError(
            f"{name} must be an array, a FeatureSet or a list of strings; to read a "
            f"feature file use kec.load_features({str(value)!r})")
    return value


# --------------------------------------------------------------------------- the one path
def prepare_inputs(
    features: Any,
    method: str,
    *,
    knowledge: Any = None,
    nouns: Any = None,
    captions: Any = None,
    text_encoder: Any = None,
    lint: bool | str = True,
    cache: str | os.PathLike[str] | None = None,
    kind: str | None = None,
    phrasing: str = "api",
    memo: MutableMapping[str, Any] | None = None,
) -> MethodInputs:
    """Everything method ``method`` needs, as arrays and embedded knowledge.

    Parameters
    ----------
    features : array-like of shape (N, d) or FeatureSet
        Image features, or the item features of a text collection.
    method : str
        A method of :data:`kec.cluster.registry.METHODS`.
    knowledge : KnowledgeFeatures, dict or path, optional
        Knowledge: used as given when already embedded, else linted and embedded.
    nouns, captions : array-like, FeatureSet or list of str, optional
        Text features in the features' space, or texts to encode.
    text_encoder : str, object with ``encode``, or None
        See :func:`resolve_text_encoder`; made only when something must be encoded.
    lint : {True, "keep", False}
        Drop the knowledge items that :func:`kec.knowledge.lint.lint_knowledge` flags
        (default, as ``kec cluster`` does), lint but keep everything, or do not lint.
    cache : path-like or None
        Embedding cache root (:func:`resolve_text_encoder`); ``None``: no cache.
    kind : {"image", "items"} or None
        Feature kind of an array (default ``"image"``); a FeatureSet records its own.
    phrasing : {"api", "cli"}
        Whether errors name ``fit``'s arguments or the command-line flags.
    memo : dict, optional
        Encoders made from a spec, reused across calls (:func:`resolve_text_encoder`).

    Returns
    -------
    MethodInputs

    Raises
    ------
    ClusteringInputError
        A required input is missing, a text input is of the wrong type, the text encoder
        does not match the features, or ``cae`` gets knowledge without concepts.
    UnusableKnowledgeError
        The knowledge breaks the schema or has no concepts.
    """
    given = {"nouns": nouns, "captions": captions, "knowledge": knowledge}
    check_inputs(method, {k for k, v in given.items() if v is not None}, phrasing)
    for name in unused_inputs(method, [k for k, v in given.items() if v is not None]):
        said = name if phrasing == "api" else spell(name, phrasing).split()[0]
        warnings.warn(f"method {method!r} does not use {said}; ignored", UserWarning,
                      stacklevel=2)
        given[name] = None
    if method == "cae" and given["captions"] is not None:
        given["knowledge"] = None  # the knowledge only stands in for a caption corpus
    if lint not in LINT_MODES:
        raise ClusteringInputError(f"lint must be True, 'keep' or False, got {lint!r}")
    X, features_encoder = (np.asarray(features.features), dict(features.encoder or {})
                           ) if is_feature_set(features) else (features, None)
    if is_feature_set(features):
        kind = features.kind
    kind = kind or "image"
    name_template(kind)  # validates it
    dim = int(np.shape(X)[1]) if np.ndim(X) == 2 else 0
    encoders: list[Any] = []

    def encoder() -> Any:
        if not encoders:
            encoders.append(EncodeOnce(resolve_text_encoder(
                text_encoder, features_encoder, dim, cache=cache, phrasing=phrasing,
                memo=memo, kind=kind)))
        return encoders[0]

    out = MethodInputs(method=method, features=X, kind=kind)
    _knowledge_inputs(out, given["knowledge"], encoder, lint, method, phrasing)
    t = time.perf_counter()
    out.nouns = _text_rows(given["nouns"], "nouns", features, encoder)
    if out.captions is None:
        out.captions = _text_rows(given["captions"], "captions", features, encoder)
    if any(_is_strings(given[n]) for n in ("nouns", "captions")):
        out.timings["embed_texts"] = round(time.perf_counter() - t, 4)
    return out


def _check_knowledge_kind(doc: Mapping[str, Any], kind: str, source: str) -> None:
    """Warn when the knowledge was built for the other kind of features (its prompts asked
    how things look in photos for text items, or what texts are about for images)."""
    prov = doc.get("provenance")
    built = prov.get("kind") if isinstance(prov, Mapping) else None
    wanted = "items" if kind == "items" else "images"
    if built is not None and built != wanted:
        logger.warning("%s was built for %s (kec knowledge build --kind %s) but clusters %s; "
                       "rebuild it with --kind %s for knowledge that fits", source, built,
                       built, features_noun(kind), wanted)


def _knowledge_inputs(out: MethodInputs, value: Any, encoder: Callable[[], Any],
                      lint: bool | str, method: str, phrasing: str) -> None:
    """Fill ``out.knowledge`` (or, for ``cae``, ``out.captions``) from ``value``."""
    if value is None:
        return
    t = time.perf_counter()
    if isinstance(value, KnowledgeFeatures):
        if method == "cae":
            if value.caption_emb is None or value.caption_emb.shape[0] == 0:
                raise ClusteringInputError(
                    "embedded knowledge holds no captions to stand in for a caption corpus;"
                    " pass the knowledge document or file, or captions")
            out.captions = value.caption_emb
        else:
            out.knowledge = value
        return
    doc, source, sha = knowledge_document(value)
    _check_knowledge_kind(doc, out.kind, source)
    enc = encoder()
    doc, out.lint = _lint(doc, enc, lint, source)
    if method == "cae":
        texts = knowledge_captions(doc)
        if not texts:
            keep = "lint='keep'" if phrasing == "api" else "--keep-flagged"
            raise ClusteringInputError(
                f"{source} leaves no caption corpus: no captions, descriptions or "
                f"attributes that lint keeps; give {spell('captions', phrasing)} or {keep}")
        out.captions = np.asarray(enc.encode(texts), dtype=np.float32)
        out.described["captions"] = {"from_knowledge": source, "sha256": sha,
                                     "count": len(texts), "lint": out.lint}
        out.timings["embed_captions"] = round(time.perf_counter() - t, 4)
        return
    kf = _embed(doc, enc, out.kind, source)
    out.knowledge = kf
    out.described["knowledge"] = _knowledge_description(kf, source, sha, out.kind, enc,
                                                        out.lint)
    out.timings["embed_knowledge"] = round(time.perf_counter() - t, 4)


__all__ = ["LINT_MODES", "NAME_TEMPLATES", "EncodeOnce", "MethodInputs",
           "UnusableKnowledgeError", "embed_knowledge", "features_noun", "is_feature_set",
           "knowledge_captions", "knowledge_document", "make_text_encoder", "name_template",
           "prepare_inputs", "resolve_text_encoder"]
