r"""scikit-learn estimators for the clustering methods of :mod:`kec.cluster.registry`.

==============  =========  =====================================================
estimator       method     text inputs of ``fit`` (required, *optional*)
==============  =========  =====================================================
KMeansBaseline  kmeans     none
TAC             tac        ``nouns``
KEC             kec        ``knowledge``
CAE             cae        ``nouns``, *captions*, *knowledge* (its captions)
KECCAE          kec+cae    ``knowledge``, *nouns*, *captions*
==============  =========  =====================================================

Every estimator takes its parameters in ``__init__`` only (the keyword parameters of its
``run_*`` function in :mod:`kec.cluster.methods`, same names and defaults, plus
``n_clusters``, ``text_encoder`` and ``method_params``), so
:func:`sklearn.base.clone`, ``get_params`` and ``set_params`` work. ``fit(X, y=None, *,
nouns=None, captions=None, knowledge=None)`` takes

- ``X``: an ``(N, d)`` array of image features, or a
  :class:`~kec.features.FeatureSet` (from :func:`kec.load_features`), which also tells
  which text encoder matches the images;
- ``nouns`` / ``captions``: an ``(M, d)`` array, a ``FeatureSet``, or a list of strings
  (encoded with ``text_encoder``);
- ``knowledge``: a :class:`~kec.cluster.knowledge_features.KnowledgeFeatures`, a knowledge
  document (``dict``) or the path of a knowledge file (embedded with ``text_encoder``).

``text_encoder`` is a spec string for :func:`kec.create_text_encoder`
(``"clip:ViT-B-32-quickgelu:openai"``), an object with ``encode(texts) -> (n, d)``, or
``None``: the encoder recorded in ``X`` when ``X`` is a ``FeatureSet``. Texts must be
embedded in the images' space (CLIP's text tower for CLIP image features).

After ``fit``: ``labels_`` (``(N,)`` int64), ``result_``
(:class:`~kec.cluster.methods.MethodResult`: timings, parameters, diagnostics),
``n_features_in_``, and for the knowledge methods ``clusters_`` (per cluster its
``name``, top ``concepts`` and explaining ``attributes``; docs/methods.md §4) and
``knowledge_`` (the embedded knowledge).

This module imports the text-encoder and knowledge-file layers lazily, only when ``fit``
is given a spec string, strings or a path: the clustering math never imports them.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from kec.cluster._checks import ClusteringInputError, check_random_state
from kec.cluster.knowledge_features import KnowledgeFeatures, knowledge_features
from kec.cluster.methods import MethodResult
from kec.cluster.registry import check_inputs, resolve, unused_inputs

#: Estimator parameters that are not keyword parameters of the ``run_*`` function.
OWN_PARAMS = ("n_clusters", "text_encoder", "keep_flagged", "method_params")


# --------------------------------------------------------------------------- inputs
def _image_features(X: Any) -> tuple[np.ndarray, Mapping[str, Any] | None]:
    """The feature matrix of ``X`` and, for a FeatureSet, its encoder description."""
    if _is_feature_set(X):
        return np.asarray(X.features), dict(getattr(X, "encoder", {}) or {})
    return X, None


def _is_strings(value: Any) -> bool:
    return (isinstance(value, Sequence) and not isinstance(value, (str, bytes))
            and len(value) > 0 and all(isinstance(v, str) for v in value))


def _create_encoder(spec: str) -> Any:
    """A text encoder from a spec string (imports kec.encoders, and torch, only now)."""
    from kec.encoders.factory import create_text_encoder

    return create_text_encoder(spec)


def _encoder_spec(image_encoder: Mapping[str, Any] | None) -> str:
    from kec.encoders.factory import spec_from_description

    return spec_from_description(image_encoder or {})


def _is_feature_set(value: Any) -> bool:
    return hasattr(value, "features") and hasattr(value, "metadata")


def _check_same_space(image_encoder: Mapping[str, Any] | None, encoder: Any) -> None:
    """Refuse a text encoder other than the one that made the image features."""
    describe = getattr(encoder, "describe", None)
    if not image_encoder or not callable(describe):
        return
    described = dict(describe())
    if "kind" not in described:
        return
    from kec.features import encoder_differences

    diffs = encoder_differences(image_encoder, described)
    if diffs:
        raise ClusteringInputError(
            f"the text encoder is not the encoder of the image features ({'; '.join(diffs)})"
            ": its vectors live in another space; use the images' own text tower")


class _EncodeOnce:
    """A text encoder that embeds each distinct text once (the other attributes are the
    wrapped encoder's): linting and grounding a document read the same texts."""

    def __init__(self, encoder: Any) -> None:
        self._encoder = encoder
        self._rows: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        new = list(dict.fromkeys(t for t in texts if t not in self._rows))
        if new:
            self._rows.update(zip(new, np.asarray(self._encoder.encode(new))))
        if not texts:
            return np.asarray(self._encoder.encode([]))
        return np.stack([self._rows[t] for t in texts])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)


def _load_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    from kec.knowledge.document import load_knowledge

    return load_knowledge(path)


class _MethodEstimator(ClusterMixin, BaseEstimator):
    """Shared ``fit`` of the method estimators; subclasses set ``_method`` and ``_run``."""

    _method: ClassVar[str] = ""

    # ------------------------------------------------------------------ parameters
    def _method_kwargs(self, function: Any) -> dict[str, Any]:
        """Keyword arguments of the ``run_*`` ``function``: every parameter but
        :data:`OWN_PARAMS`, then ``method_params`` on top."""
        params = {k: v for k, v in self.get_params(deep=False).items() if k not in OWN_PARAMS}
        extra = self.method_params or {}
        if not isinstance(extra, Mapping):
            raise ClusteringInputError(
                f"method_params must be a dict of extra keyword arguments, got {extra!r}")
        clash = sorted(set(extra) & set(params))
        if clash:
            raise ClusteringInputError(
                f"method_params repeats constructor parameters {clash}: set them directly")
        known = {k for k, p in inspect.signature(function).parameters.items()
                 if p.kind is p.KEYWORD_ONLY}
        unknown = sorted(set(extra) - known)
        if unknown:
            raise ClusteringInputError(
                f"method_params {unknown} are not parameters of {function.__name__}; "
                f"it takes {', '.join(sorted(known))}")
        return {**params, **extra}

    # ------------------------------------------------------------------ text encoder
    def _text_encoder(self, image_encoder: Mapping[str, Any] | None) -> Any:
        """The encoder for texts: the ``text_encoder`` object, one made from its spec,
        or the one recorded in the image feature file."""
        enc = getattr(self, "text_encoder", None)
        if enc is not None and not isinstance(enc, str):
            if not callable(getattr(enc, "encode", None)):
                raise ClusteringInputError(
                    f"text_encoder must be a spec string or an object with encode(texts), "
                    f"got {type(enc).__name__}")
            _check_same_space(image_encoder, enc)
            return enc
        if enc is None:
            if not image_encoder:
                raise ClusteringInputError(
                    f"{type(self).__name__} needs a text encoder to embed texts: pass "
                    "text_encoder='clip:MODEL:PRETRAINED' (the images' encoder), or X "
                    "loaded with kec.load_features, which records its encoder")
            spec = _encoder_spec(image_encoder)
        else:
            spec = enc
        cached = getattr(self, "_encoder_cache", None)
        if cached is not None and cached[0] == spec:
            return cached[1]
        encoder = _create_encoder(spec)
        _check_same_space(image_encoder, encoder)
        self._encoder_cache = (spec, encoder)
        return encoder

    def _texts(self, value: Any, name: str, X: Any) -> Any:
        """``nouns``/``captions`` as an array: FeatureSet rows (checked against ``X``'s
        encoder when both are feature sets), or encoded strings."""
        if value is None:
            return None
        image_encoder = _image_features(X)[1]
        if _is_feature_set(value):
            if _is_feature_set(X):
                from kec.features import check_compatible

                check_compatible(X, value)
            return np.asarray(value.features)
        if _is_strings(value):
            return np.asarray(self._text_encoder(image_encoder).encode(list(value)))
        if isinstance(value, (str, bytes, os.PathLike)):
            raise ClusteringInputError(
                f"{name} must be an array, a FeatureSet or a list of strings; to read a "
                f"feature file use kec.load_features({str(value)!r})")
        return value

    def _knowledge(self, value: Any, image_encoder: Mapping[str, Any] | None
                   ) -> KnowledgeFeatures | None:
        """``knowledge`` as :class:`KnowledgeFeatures` (embedding a document or file)."""
        self.lint_ = None  # set again below when a document is linted
        if value is None or isinstance(value, KnowledgeFeatures):
            return value
        if isinstance(value, (str, os.PathLike)):
            doc, source = _load_document(value), os.fspath(value)
        elif isinstance(value, Mapping):
            doc, source = value, "<knowledge>"
        else:
            raise ClusteringInputError(
                "knowledge must be KnowledgeFeatures, a knowledge document (dict) or the "
                f"path of a knowledge file, got {type(value).__name__}")
        encoder = _EncodeOnce(self._text_encoder(image_encoder))  # lint, then grounding
        from kec.errors import KecError
        from kec.knowledge.document import validate_knowledge
        from kec.knowledge.lint import lint_and_drop

        try:
            validate_knowledge(doc, source)
            doc, self.lint_ = lint_and_drop(doc, encoder,
                                            keep_flagged=getattr(self, "keep_flagged", False))
        except KecError as exc:
            raise ClusteringInputError(f"knowledge {source}: {exc}") from exc
        return knowledge_features(doc, encoder, source=source)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        nouns: Any = None,
        captions: Any = None,
        knowledge: Any = None,
    ) -> _MethodEstimator:
        """Cluster the images ``X`` with the method's text inputs.

        Parameters
        ----------
        X : array-like of shape (N, d) or FeatureSet
            Image features.
        y : None
            Ignored (scikit-learn API).
        nouns, captions : array-like of shape (M, d), FeatureSet or list of str, optional
            Text features in the images' space, or texts to encode with the text encoder.
        knowledge : KnowledgeFeatures, dict or path, optional
            Knowledge, embedded with the text encoder unless already embedded.

        Returns
        -------
        self

        Raises
        ------
        ClusteringInputError
            A required input is missing (the message names it), an input is invalid, or
            ``random_state`` is not None, an integer in [0, 2**32 - 1] or a Generator.
        """
        check_random_state(self.random_state)
        given = {"nouns": nouns, "captions": captions, "knowledge": knowledge}
        provided = {k for k, v in given.items() if v is not None}
        check_inputs(self._method, provided)
        for name in unused_inputs(self._method, provided):
            warnings.warn(f"{type(self).__name__} does not use {name}; ignored",
                          UserWarning, stacklevel=2)
            given[name] = None
        self._drop_unneeded(given)
        features, image_encoder = _image_features(X)
        kf = self._knowledge(given["knowledge"], image_encoder)
        inputs = {"nouns": self._texts(given["nouns"], "nouns", X),
                  "captions": self._texts(given["captions"], "captions", X),
                  "knowledge": kf}
        function = resolve(self._method, "function")
        result = self._run(function, features, inputs, self._method_kwargs(function))
        self.result_: MethodResult = result
        self.labels_ = np.asarray(result.labels, dtype=np.int64)
        self.n_features_in_ = int(np.shape(features)[1])
        if kf is not None:
            self.knowledge_ = kf
        if result.clusters is not None:
            self.clusters_ = result.clusters
        return self

    def fit_predict(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``fit(X, **fit_params)`` and return ``labels_``."""
        return self.fit(X, y, **fit_params).labels_

    def _run(self, run: Any, X: Any, inputs: dict[str, Any], kwargs: dict[str, Any]
             ) -> MethodResult:
        raise NotImplementedError

    def _drop_unneeded(self, given: dict[str, Any]) -> None:
        """Set to ``None`` the inputs that the given ones make useless (none by default)."""

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the text encoder made from a spec (a whole model): it is
        made again, from the same spec, on the next ``fit``."""
        state = dict(super().__getstate__())
        state.pop("_encoder_cache", None)
        return state

    @property
    def cluster_names_(self) -> list[str | None]:
        """Knowledge methods: the name of every cluster (``None`` for an empty one)."""
        clusters = getattr(self, "clusters_", None)
        if clusters is None:
            raise AttributeError(f"{type(self).__name__} has no cluster names "
                                 "(fit it first; only knowledge methods name clusters)")
        return [c["name"] for c in clusters]


class KMeansBaseline(_MethodEstimator):
    """The baseline: cluster the image features alone (``kmeans`` in the registry).

    Parameters
    ----------
    n_clusters : int
        Number of clusters ``K``.
    clusterer : {"kmeans", "spectral", "agglomerative"}
        Final clusterer; ``"kmeans"`` is :class:`~kec.cluster.kmeans.SphericalKMeans`.
    random_state : int or None
        Seed.
    clusterer_params : dict or None
        Passed to the clusterer (e.g. ``{"n_init": 10}``).
    device : str or None
        Where OT and k-means run: ``"auto"``, ``"cpu"``, ``"cuda"``; ``None``: numpy.
    keep_features : bool
        Keep the clustered matrix in ``result_.features``.
    method_params : dict or None
        Extra keyword arguments of :func:`~kec.cluster.methods.run_kmeans`.
    """

    _method = "kmeans"

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        clusterer: str = "kmeans",
        random_state: int | None = 0,
        clusterer_params: dict[str, Any] | None = None,
        keep_features: bool = False,
        device: str | None = None,
        method_params: dict[str, Any] | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.clusterer = clusterer
        self.random_state = random_state
        self.clusterer_params = clusterer_params
        self.keep_features = keep_features
        self.device = device
        self.method_params = method_params

    def _run(self, run: Any, X: Any, inputs: dict[str, Any], kwargs: dict[str, Any]
             ) -> MethodResult:
        return run(X, self.n_clusters, **kwargs)


class TAC(_MethodEstimator):
    r"""TAC, training-free (docs/methods.md §1): cluster :math:`[x_i ; \hat t_i]`.

    .. math:: \hat t_i = \mathrm{normalize}\Big(\sum_j
              \mathrm{softmax}_j(x_i \cdot t_j / \tau)\, t_j\Big)

    over the nouns :math:`t_j` selected by over-clustering (Li et al., ICML 2024,
    "Image Clustering with External Guidance", arXiv:2310.11989). ``fit`` needs ``nouns``.

    Parameters
    ----------
    n_clusters : int
        Number of clusters ``K``.
    n_overclusters : int or None
        Over-clusters for noun selection; ``None``: from ``rule``.
    rule : {"n/300", "3k"} or int
        Over-cluster rule when ``n_overclusters`` is ``None``.
    n_classes : int or None
        Number of classes, for the ``"3k"`` rule.
    top_k : int
        Nouns kept per over-cluster.
    tau : float
        Temperature :math:`\tau` of the text counterpart (TAC: 0.005).
    selection_temperature : float
        Temperature of the noun-to-centre softmax.
    clusterer, random_state, clusterer_params, keep_features
        As :class:`KMeansBaseline`.
    overcluster_params : dict or None
        Passed to the over-clustering k-means.
    text_encoder : str, object or None
        Encodes ``nouns`` given as strings (see the module docstring).
    method_params : dict or None
        Extra keyword arguments of :func:`~kec.cluster.methods.run_tac`.
    """

    _method = "tac"

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        n_overclusters: int | None = None,
        rule: str | int = "auto",
        n_classes: int | None = None,
        top_k: int = 5,
        tau: float = 0.005,
        selection_temperature: float = 0.01,
        clusterer: str = "kmeans",
        random_state: int | None = 0,
        overcluster_params: dict[str, Any] | None = None,
        clusterer_params: dict[str, Any] | None = None,
        keep_features: bool = False,
        device: str | None = None,
        text_encoder: Any = None,
        method_params: dict[str, Any] | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_overclusters = n_overclusters
        self.rule = rule
        self.n_classes = n_classes
        self.top_k = top_k
        self.tau = tau
        self.selection_temperature = selection_temperature
        self.clusterer = clusterer
        self.random_state = random_state
        self.overcluster_params = overcluster_params
        self.clusterer_params = clusterer_params
        self.keep_features = keep_features
        self.device = device
        self.text_encoder = text_encoder
        self.method_params = method_params

    def _run(self, run: Any, X: Any, inputs: dict[str, Any], kwargs: dict[str, Any]
             ) -> MethodResult:
        return run(X, inputs["nouns"], self.n_clusters, **kwargs)


class KEC(_MethodEstimator):
    r"""KEC (docs/methods.md §2): knowledge grounded by a softmax, cluster
    :math:`[x_i ; \kappa_i]`.

    .. math:: \omega_{iq} = \mathrm{softmax}_q(x_i \cdot \zeta_q / T), \quad
              \kappa_i = \sum_q \omega_{iq}\, \big(\zeta_q + \bar\xi_{iq}\big)

    (Zhong et al., CVPR 2026, arXiv:2604.11144). ``fit`` needs ``knowledge``; the fitted
    ``clusters_`` name and explain every cluster.

    Parameters
    ----------
    n_clusters : int
        Number of clusters ``K``.
    temperature : float
        Grounding softmax temperature ``T`` (kec's choice; the paper gives none).
    pair_attributes : bool
        Ground pair (bi-)attributes too; ``False`` for the uni-attribute ablation.
    fusion : {"guarded", "concat"}
        Guarded fusion (default) or KEC's published concatenation :math:`[x ; \kappa]`.
    beta : float
        Weight of the knowledge views in guarded fusion's ``nuisance`` mode.
    corroboration_threshold, agreement_threshold : float
        Guarded fusion's thresholds (docs/methods.md §4.3, :mod:`kec.cluster.guard`).
    agreement_margin, objective_tolerance, anchor_weight : float
        Guarded fusion's graded trust: trust ramps from 0 at ``agreement_threshold -
        agreement_margin`` to 1 at ``agreement_threshold``; trusted knowledge may cost
        up to ``trust * objective_tolerance`` of the data's k-means objective, and pulls
        its clusters' centres with weight ``trust * anchor_weight``.
    spread_ratio, spread_margin : float
        Guarded fusion's check that the data cannot tell the knowledge's partition from
        its own: trusted when it is at most ``spread_ratio - spread_margin`` times as far
        from the data's k-means partition as k-means runs from other seeds are from each
        other, not at all from ``spread_ratio`` times (``inf``: not measured).
    normalize_parts : bool
        L2-normalise :math:`x_i` and :math:`\kappa_i` before joining them.
    clusterer, random_state, clusterer_params, keep_features
        As :class:`KMeansBaseline`.
    n_names, n_attributes : int
        Concepts and attributes listed per cluster in ``clusters_``.
    text_encoder : str, object or None
        Embeds a knowledge document (see the module docstring).
    keep_flagged : bool
        Keep the knowledge items that :func:`kec.knowledge.lint.lint_knowledge` flags;
        by default they are dropped before grounding, as ``kec cluster`` does
        (``lint_`` lists them). Embedded :class:`KnowledgeFeatures` are not linted.
    method_params : dict or None
        Extra keyword arguments of :func:`~kec.cluster.methods.run_kec`.
    """

    _method = "kec"

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        temperature: float = 0.01,
        pair_attributes: bool = True,
        normalize_parts: bool = True,
        fusion: str = "guarded",
        beta: float = 0.25,
        corroboration_threshold: float = 0.2,
        agreement_threshold: float = 0.5,
        agreement_margin: float = 0.1,
        objective_tolerance: float = 0.05,
        anchor_weight: float = 0.1,
        spread_ratio: float = 2.0,
        spread_margin: float = 0.5,
        clusterer: str = "kmeans",
        random_state: int | None = 0,
        clusterer_params: dict[str, Any] | None = None,
        n_names: int = 3,
        n_attributes: int = 3,
        keep_features: bool = False,
        device: str | None = None,
        text_encoder: Any = None,
        keep_flagged: bool = False,
        method_params: dict[str, Any] | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.temperature = temperature
        self.pair_attributes = pair_attributes
        self.normalize_parts = normalize_parts
        self.fusion = fusion
        self.beta = beta
        self.corroboration_threshold = corroboration_threshold
        self.agreement_threshold = agreement_threshold
        self.agreement_margin = agreement_margin
        self.objective_tolerance = objective_tolerance
        self.anchor_weight = anchor_weight
        self.spread_ratio = spread_ratio
        self.spread_margin = spread_margin
        self.clusterer = clusterer
        self.random_state = random_state
        self.clusterer_params = clusterer_params
        self.n_names = n_names
        self.n_attributes = n_attributes
        self.keep_features = keep_features
        self.device = device
        self.text_encoder = text_encoder
        self.keep_flagged = keep_flagged
        self.method_params = method_params

    def _run(self, run: Any, X: Any, inputs: dict[str, Any], kwargs: dict[str, Any]
             ) -> MethodResult:
        return run(X, inputs["knowledge"], self.n_clusters, **kwargs)


class CAE(_MethodEstimator):
    r"""CAE (docs/methods.md §3): nouns and captions aligned to the images by entropic
    optimal transport, adaptive fusion.

    .. math:: x^u_i = \mathrm{normalize}\Big(\sum_j T_{ij} S_{ij} u_j\Big), \quad
              w^m_i = \mathrm{softmax}_m\big(\cos(x^m_i, p_i)/\gamma\big)

    (Zhu et al., AAAI 2026, arXiv:2512.00904). ``fit`` needs ``nouns``; ``captions`` are
    optional, and without them the captions of a ``knowledge`` file stand in.

    Parameters
    ----------
    n_clusters : int
        Number of clusters ``K``.
    n_overclusters, rule, n_classes, top_k, overcluster_params
        Text selection by over-clustering, as :class:`TAC`.
    reg : float
        Entropic regularisation :math:`\varepsilon`.
    ot_method : str
        OT solver: ``"auto"``, ``"sinkhorn"``, ``"chunked"``, ``"semi_relaxed"``,
        ``"partial"``.
    ot_params : dict or None
        Passed to the solver.
    gamma : float
        Fusion temperature :math:`\gamma`.
    fusion : {"sum", "concat"}
        Weighted sum or weighted concatenation of the modalities.
    clusterer, random_state, clusterer_params, keep_features
        As :class:`KMeansBaseline`.
    text_encoder : str, object or None
        Encodes texts given as strings and knowledge documents.
    keep_flagged : bool
        Keep the knowledge items that :func:`kec.knowledge.lint.lint_knowledge` flags;
        by default they are dropped before grounding, as ``kec cluster`` does
        (``lint_`` lists them). Embedded :class:`KnowledgeFeatures` are not linted.
    method_params : dict or None
        Extra keyword arguments of :func:`~kec.cluster.methods.run_cae`.
    """

    _method = "cae"

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        n_overclusters: int | None = None,
        rule: str | int = "auto",
        n_classes: int | None = None,
        top_k: int = 5,
        reg: float = 0.01,
        ot_method: str = "auto",
        ot_params: dict[str, Any] | None = None,
        gamma: float = 0.01,
        fusion: str = "sum",
        clusterer: str = "kmeans",
        random_state: int | None = 0,
        overcluster_params: dict[str, Any] | None = None,
        clusterer_params: dict[str, Any] | None = None,
        keep_features: bool = False,
        device: str | None = None,
        text_encoder: Any = None,
        keep_flagged: bool = False,
        method_params: dict[str, Any] | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_overclusters = n_overclusters
        self.rule = rule
        self.n_classes = n_classes
        self.top_k = top_k
        self.reg = reg
        self.ot_method = ot_method
        self.ot_params = ot_params
        self.gamma = gamma
        self.fusion = fusion
        self.clusterer = clusterer
        self.random_state = random_state
        self.overcluster_params = overcluster_params
        self.clusterer_params = clusterer_params
        self.keep_features = keep_features
        self.device = device
        self.text_encoder = text_encoder
        self.keep_flagged = keep_flagged
        self.method_params = method_params

    def _drop_unneeded(self, given: dict[str, Any]) -> None:
        if given["captions"] is not None:  # the knowledge only stands in for captions
            given["knowledge"] = None

    def _run(self, run: Any, X: Any, inputs: dict[str, Any], kwargs: dict[str, Any]
             ) -> MethodResult:
        captions = inputs["captions"]
        kf = inputs["knowledge"]
        if captions is None and kf is not None:
            if kf.caption_emb is None or kf.caption_emb.shape[0] == 0:
                raise ClusteringInputError(
                    "the knowledge holds no captions (build it with --n-captions > 0); "
                    "pass captions= instead")
            captions = kf.caption_emb
        return run(X, inputs["nouns"], self.n_clusters, captions=captions, **kwargs)


class KECCAE(_MethodEstimator):
    r"""kec+cae (docs/methods.md §4): KEC's knowledge grounded by CAE's optimal transport.

    .. math:: c_i = \mathrm{normalize}\Big(\sum_q T^c_{iq} S^c_{iq} \zeta_q\Big), \quad
              a_i = \mathrm{normalize}\Big(\sum_l T^a_{il} S^a_{il} \xi_l\Big)

    fused with :math:`x_i` by CAE's adaptive weights (or KEC's :math:`[x_i ; c_i + a_i]`).
    ``fit`` needs ``knowledge``; ``nouns`` and ``captions`` add optional levels (the
    knowledge's own captions are used when it has some). ``clusters_`` names and
    explains every cluster.

    Parameters
    ----------
    n_clusters : int
        Number of clusters ``K``.
    reg, ot_method, ot_params, gamma
        As :class:`CAE`.
    attribute_mode : {"transport", "elementwise"}
        Attribute level by OT over all attribute texts, or KEC's :math:`x_i \odot \xi`.
    pair_attributes : bool
        Use pair attributes too.
    fusion : {"guarded", "adaptive", "kec"}
        Guarded fusion (default), CAE's adaptive weights, or KEC's concatenation.
    beta : float
        Weight of the knowledge views in guarded fusion's ``nuisance`` mode.
    corroboration_threshold, agreement_threshold : float
        Guarded fusion's thresholds (docs/methods.md §4.3, :mod:`kec.cluster.guard`).
    agreement_margin, objective_tolerance, anchor_weight : float
        Guarded fusion's graded trust: trust ramps from 0 at ``agreement_threshold -
        agreement_margin`` to 1 at ``agreement_threshold``; trusted knowledge may cost
        up to ``trust * objective_tolerance`` of the data's k-means objective, and pulls
        its clusters' centres with weight ``trust * anchor_weight``.
    spread_ratio, spread_margin : float
        Guarded fusion's check that the data cannot tell the knowledge's partition from
        its own: trusted when it is at most ``spread_ratio - spread_margin`` times as far
        from the data's k-means partition as k-means runs from other seeds are from each
        other, not at all from ``spread_ratio`` times (``inf``: not measured).
    fusion_mode : {"sum", "concat"}
        For ``fusion="adaptive"``.
    n_overclusters, rule, n_classes, top_k, overcluster_params
        Text selection for the optional noun and caption levels, as :class:`TAC`.
    clusterer, random_state, clusterer_params, keep_features
        As :class:`KMeansBaseline`.
    n_names, n_attributes : int
        Concepts and attributes listed per cluster in ``clusters_``.
    text_encoder : str, object or None
        Embeds a knowledge document and texts given as strings.
    keep_flagged : bool
        Keep the knowledge items that :func:`kec.knowledge.lint.lint_knowledge` flags;
        by default they are dropped before grounding, as ``kec cluster`` does
        (``lint_`` lists them). Embedded :class:`KnowledgeFeatures` are not linted.
    method_params : dict or None
        Extra keyword arguments of :func:`~kec.cluster.methods.run_kec_cae`.
    """

    _method = "kec+cae"

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        reg: float = 0.01,
        ot_method: str = "auto",
        ot_params: dict[str, Any] | None = None,
        attribute_mode: str = "transport",
        pair_attributes: bool = True,
        fusion: str = "guarded",
        fusion_mode: str = "sum",
        gamma: float = 0.01,
        beta: float = 0.25,
        corroboration_threshold: float = 0.2,
        agreement_threshold: float = 0.5,
        agreement_margin: float = 0.1,
        objective_tolerance: float = 0.05,
        anchor_weight: float = 0.1,
        spread_ratio: float = 2.0,
        spread_margin: float = 0.5,
        n_overclusters: int | None = None,
        rule: str | int = "auto",
        n_classes: int | None = None,
        top_k: int = 5,
        clusterer: str = "kmeans",
        random_state: int | None = 0,
        overcluster_params: dict[str, Any] | None = None,
        clusterer_params: dict[str, Any] | None = None,
        n_names: int = 3,
        n_attributes: int = 3,
        keep_features: bool = False,
        device: str | None = None,
        text_encoder: Any = None,
        keep_flagged: bool = False,
        method_params: dict[str, Any] | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.reg = reg
        self.ot_method = ot_method
        self.ot_params = ot_params
        self.attribute_mode = attribute_mode
        self.pair_attributes = pair_attributes
        self.fusion = fusion
        self.fusion_mode = fusion_mode
        self.gamma = gamma
        self.beta = beta
        self.corroboration_threshold = corroboration_threshold
        self.agreement_threshold = agreement_threshold
        self.agreement_margin = agreement_margin
        self.objective_tolerance = objective_tolerance
        self.anchor_weight = anchor_weight
        self.spread_ratio = spread_ratio
        self.spread_margin = spread_margin
        self.n_overclusters = n_overclusters
        self.rule = rule
        self.n_classes = n_classes
        self.top_k = top_k
        self.clusterer = clusterer
        self.random_state = random_state
        self.overcluster_params = overcluster_params
        self.clusterer_params = clusterer_params
        self.n_names = n_names
        self.n_attributes = n_attributes
        self.keep_features = keep_features
        self.device = device
        self.text_encoder = text_encoder
        self.keep_flagged = keep_flagged
        self.method_params = method_params

    def _run(self, run: Any, X: Any, inputs: dict[str, Any], kwargs: dict[str, Any]
             ) -> MethodResult:
        return run(X, inputs["knowledge"], self.n_clusters, nouns=inputs["nouns"],
                           captions=inputs["captions"], **kwargs)


__all__ = ["CAE", "KEC", "KECCAE", "OWN_PARAMS", "TAC", "KMeansBaseline"]
