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

Every estimator takes its parameters in ``__init__`` only, and they are not written
here: ``__init__``, its signature, the numpydoc ``Parameters`` and
``_parameter_constraints`` are made from the method's declaration in the registry
(:class:`kec.cluster.registry.Param`; the same declaration fills the ``run_*``
function's keywords), plus the estimator's own ``n_clusters`` and, for methods with
text inputs, ``text_encoder``, ``cache_dir`` and (knowledge methods) ``keep_flagged``.
So :func:`sklearn.base.clone`, ``get_params`` and ``set_params`` work. ``fit(X, y=None,
*, nouns=None, captions=None, knowledge=None)`` takes

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

``fit`` checks every parameter first (scikit-learn's ``InvalidParameterError``, also a
:class:`~kec.cluster._checks.ClusteringInputError`), and refuses a parameter set away
from its default that the chosen ``fusion`` ignores (``KEC(clusterer="agglomerative")``
with the default guarded fusion).

This module imports the text-encoder and knowledge-file layers lazily, only when ``fit``
is given a spec string, strings or a path: the clustering math never imports them.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils._param_validation import (
    InvalidParameterError,
    validate_parameter_constraints,
)

from kec.cluster.inputs import prepare_inputs
from kec.cluster.methods import MethodResult, run_method
from kec.cluster.params import ParameterError, method_params, params_doc, sklearn_constraints
from kec.cluster.registry import method_spec

#: The estimators' own parameters (not parameters of a ``run_*``): default and doc.
OWN: dict[str, tuple[Any, str, str]] = {
    "n_clusters": (8, "int >= 1", "Number of clusters ``K``."),
    "text_encoder": (None, "str, object or None",
                     "Encodes texts given as strings and knowledge documents: a spec "
                     "string for :func:`kec.create_text_encoder`, an object with "
                     "``encode(texts)``, or ``None``: the encoder recorded in ``X``."),
    "keep_flagged": (False, "bool",
                     "Keep the knowledge items that :func:`kec.knowledge.lint."
                     "lint_knowledge` flags; by default they are dropped before "
                     "grounding, as ``kec cluster`` does (``lint_`` lists them). Embedded "
                     ":class:`KnowledgeFeatures` are not linted."),
    "cache_dir": (None, "path or None",
                  "Embedding cache of the knowledge and text strings; ``None``: none."),
}
#: Names of :data:`OWN`.
OWN_PARAMS = tuple(OWN)

_ATTRIBUTES = """\
Attributes
----------
labels_ : numpy.ndarray of shape (N,)
    Cluster of every item, int64 in ``0..K-1``.
result_ : MethodResult
    Timings, the parameters used (``result_.params``) and diagnostics
    (``result_.info``: its keys are listed in docs/api.md, "Result info").
n_features_in_ : int
    Dimension ``d`` of the features seen in ``fit``.
lint_ : dict or None
    Knowledge items dropped by lint (``None`` without a knowledge document)."""

_KNOWLEDGE_ATTRIBUTES = """
knowledge_ : KnowledgeFeatures
    The embedded (and linted) knowledge.
clusters_ : list of dict
    Per cluster: ``cluster``, ``size``, ``name``, top ``concepts`` and explaining
    ``attributes`` (docs/methods.md §4).
cluster_names_ : list of str or None
    The name of every cluster (``None`` for an empty one)."""


def _memo(estimator: Any) -> dict[str, Any]:
    """The estimator's encoders made from a spec (dropped when pickled)."""
    memo = getattr(estimator, "_encoder_memo", None)
    if memo is None:
        memo = {}
        estimator._encoder_memo = memo
    return memo


def _own_params(method: str) -> tuple[str, ...]:
    """``n_clusters``, plus the text options of a method that takes text inputs."""
    spec = method_spec(method)
    if not spec.inputs:
        return ("n_clusters",)
    if "knowledge" in spec.inputs:
        return ("n_clusters", "text_encoder", "keep_flagged", "cache_dir")
    return ("n_clusters", "text_encoder", "cache_dir")


def _make_init(names: tuple[str, ...], defaults: dict[str, Any]) -> Any:
    """``__init__(self, n_clusters=8, *, ...)`` storing every parameter unchanged (the
    scikit-learn contract), with the signature ``get_params`` reads."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = __init__.__signature__.bind(self, *args, **kwargs)  # TypeError as Python's
        for name in names:
            setattr(self, name, bound.arguments.get(name, defaults[name]))

    first = inspect.Parameter("n_clusters", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              default=defaults["n_clusters"])
    rest = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=defaults[n])
            for n in names if n != "n_clusters"]
    self_ = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    __init__.__signature__ = inspect.Signature([self_, first, *rest])  # type: ignore[attr-defined]
    return __init__


def _parameters_doc(method: str, own: tuple[str, ...]) -> str:
    lines = [f"{name} : {OWN[name][1]}\n    {OWN[name][2]} Default: ``{OWN[name][0]!r}``."
             for name in own]
    lines.insert(1, params_doc(method, indent=0))
    return "Parameters\n----------\n" + "\n".join(lines)


class _MethodEstimator(ClusterMixin, BaseEstimator):
    """Shared ``fit`` of the method estimators. A subclass names its ``_method`` and
    writes its docstring's head (with an ``Examples`` section); ``__init__``, the
    parameters and attributes of the docstring, and ``_parameter_constraints`` are made
    from the registry when the class is created."""

    _method: ClassVar[str] = ""
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = method_spec(cls._method)
        own = _own_params(cls._method)
        names = (own[0], *spec.params, *own[1:])
        defaults = {**{k: OWN[k][0] for k in own}, **spec.defaults}
        cls.__init__ = _make_init(names, defaults)  # type: ignore[method-assign]
        cls.__init__.__qualname__ = f"{cls.__name__}.__init__"
        cls.__init__.__doc__ = f"Store the parameters (see :class:`{cls.__name__}`)."
        cls._parameter_constraints = sklearn_constraints(cls._method, own)
        head, _, examples = inspect.cleandoc(cls.__doc__ or "").partition("Examples\n")
        attributes = _ATTRIBUTES + (_KNOWLEDGE_ATTRIBUTES if "knowledge" in spec.requires
                                    else "")
        cls.__doc__ = (f"{head.rstrip()}\n\n{_parameters_doc(cls._method, own)}\n\n"
                       f"{attributes}\n\nExamples\n{examples}")

    # ------------------------------------------------------------------ parameters
    def _check_params(self) -> dict[str, Any]:
        """Every parameter checked against its declaration (scikit-learn's
        ``InvalidParameterError``), then the keyword arguments of the ``run_*``
        function, with those the chosen fusion ignores refused."""
        name = type(self).__name__
        values = self.get_params(deep=False)
        try:
            validate_parameter_constraints(self._parameter_constraints, values,
                                           caller_name=name)
        except InvalidParameterError as exc:
            raise ParameterError(str(exc)) from None
        kwargs = {k: v for k, v in values.items() if k not in OWN}
        method_params(self._method, kwargs, caller=name)
        return kwargs

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
        """Cluster the items ``X`` with the method's text inputs.

        Parameters
        ----------
        X : array-like of shape (N, d) or FeatureSet
            Image or text-item features.
        y : None
            Ignored (scikit-learn API).
        nouns, captions : array-like of shape (M, d), FeatureSet or list of str, optional
            Text features in the items' space, or texts to encode with the text encoder.
        knowledge : KnowledgeFeatures, dict or path, optional
            Knowledge, embedded with the text encoder unless already embedded.

        Returns
        -------
        self

        Raises
        ------
        ClusteringInputError
            A required input is missing (the message names ``fit``'s argument), an
            input is invalid, or a parameter is outside its declaration or ignored by
            the chosen fusion (:class:`~kec.cluster.params.ParameterError`).
        """
        kwargs = self._check_params()
        prepared = prepare_inputs(
            X, self._method, knowledge=knowledge, nouns=nouns, captions=captions,
            text_encoder=getattr(self, "text_encoder", None),
            lint="keep" if getattr(self, "keep_flagged", False) else True,
            cache=getattr(self, "cache_dir", None), phrasing="api", memo=_memo(self))
        self.lint_ = prepared.lint
        features = prepared.features
        inputs = prepared.method_inputs()
        result = run_method(self._method, features, self.n_clusters, **inputs, **kwargs)
        self.result_: MethodResult = result
        self.labels_ = np.asarray(result.labels, dtype=np.int64)
        self.n_features_in_ = int(np.shape(features)[1])
        if prepared.knowledge is not None:
            self.knowledge_ = prepared.knowledge
        if result.clusters is not None:
            self.clusters_ = result.clusters
        return self

    def predict(self, X: Any) -> np.ndarray:
        r"""The cluster of new items: the nearest fitted centre in the space that was
        clustered (docs: :mod:`kec.cluster.feature_maps`).

        New items are mapped as the fitted ones were: TAC's text counterpart, the
        knowledge grounded by a softmax per item (``kec``) or by optimal transport over
        the batch ``X`` (``cae``, ``kec+cae``), guarded fusion's fitted nuisance
        projection. Then :math:`\hat y = \arg\max_k \cos(f(x), \mu_k)`.

        Parameters
        ----------
        X : array-like of shape (M, d) or FeatureSet
            New items in the space of the fitted ones.

        Returns
        -------
        numpy.ndarray of shape (M,)
            int64 cluster indices.
        """
        from sklearn.utils.validation import check_is_fitted, validate_data

        check_is_fitted(self, "result_")
        X = validate_data(self, getattr(X, "features", X), reset=False, dtype=np.float32)
        return self.result_.predict(X)

    def fit_predict(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``fit(X, **fit_params)`` and return ``labels_``."""
        return self.fit(X, y, **fit_params).labels_

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the text encoder made from a spec (a whole model): it is
        made again, from the same spec, on the next ``fit``."""
        state = dict(super().__getstate__())
        state.pop("_encoder_memo", None)
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

    Examples
    --------
    >>> import numpy as np
    >>> from kec import KMeansBaseline
    >>> X = np.repeat(np.eye(3, 8, dtype=np.float32), 4, axis=0)
    >>> KMeansBaseline(3, random_state=0).fit(X).labels_.reshape(3, 4).std(axis=1)
    array([0., 0., 0.])
    """

    _method = "kmeans"


class TAC(_MethodEstimator):
    r"""TAC, training-free (docs/methods.md §1): cluster :math:`[x_i ; \hat t_i]`.

    .. math:: \hat t_i = \mathrm{normalize}\Big(\sum_j
              \mathrm{softmax}_j(x_i \cdot t_j / \tau)\, t_j\Big)

    over the nouns :math:`t_j` selected by over-clustering (Li et al., ICML 2024,
    "Image Clustering with External Guidance", arXiv:2310.11989). ``fit`` needs ``nouns``.

    Examples
    --------
    Three groups of items and noun features in the same space (in practice
    ``kec.load_features("images.safetensors")`` and the nouns' feature file):

    >>> import numpy as np
    >>> from kec import TAC
    >>> rng = np.random.default_rng(0)
    >>> directions = np.eye(3, 4)
    >>> X = np.repeat(directions, 10, axis=0) + 0.1 * rng.standard_normal((30, 4))
    >>> nouns = np.vstack([directions, rng.standard_normal((5, 4))])
    >>> tac = TAC(3, random_state=0).fit(X, nouns=nouns)
    >>> np.bincount(tac.labels_)
    array([10, 10, 10])
    >>> sorted(tac.result_.info)
    ['n_overclusters', 'n_selected_nouns']
    """

    _method = "tac"


class KEC(_MethodEstimator):
    r"""KEC (docs/methods.md §2): knowledge grounded by a softmax,

    .. math:: \omega_{iq} = \mathrm{softmax}_q(x_i \cdot \zeta_q / T), \quad
              \kappa_i = \sum_q \omega_{iq}\, \big(\zeta_q + \bar\xi_{iq}\big)

    (Zhong et al., CVPR 2026, arXiv:2604.11144), then fused with the image features.
    By default (``fusion="guarded"``, docs/methods.md §4.3) the data decides how far the
    knowledge is trusted: :math:`x` alone, the knowledge partition refined on :math:`x`,
    or :math:`[x^\perp ; \beta\hat c ; \beta\hat a]` with the data's nuisance structure
    projected out. ``fusion="concat"`` is KEC as published: the final clusterer on
    :math:`[x_i ; \kappa_i]`. ``fit`` needs ``knowledge``; the fitted ``clusters_`` name
    and explain every cluster.

    Examples
    --------
    A hand-written knowledge document, embedded by a toy text encoder (in practice a
    knowledge file, embedded by the text tower recorded in the images' feature file):

    >>> import numpy as np
    >>> from kec import KEC, make_knowledge
    >>> words = ["cat", "dog", "car"]
    >>> class WordEncoder:  # a text points to the words it names, plus a shared axis
    ...     def encode(self, texts):
    ...         v = np.array([[w in t for w in words] + [0.5] for t in texts], float)
    ...         return v / np.linalg.norm(v, axis=1, keepdims=True)
    >>> doc = make_knowledge({"cat": ["cat whiskers", "cat ears"],
    ...                       "dog": ["dog tail", "dog bark"],
    ...                       "car": ["car wheels", "car doors"]})
    >>> rng = np.random.default_rng(0)
    >>> X = np.repeat(np.eye(3, 4), 10, axis=0) + 0.1 * rng.standard_normal((30, 4))
    >>> kec = KEC(3, text_encoder=WordEncoder(), random_state=0).fit(X, knowledge=doc)
    >>> [kec.cluster_names_[c] for c in kec.labels_[::10]]
    ['cat', 'dog', 'car']
    >>> kec.result_.info["guard"]["mode"]
    'refine'
    """

    _method = "kec"


class CAE(_MethodEstimator):
    r"""CAE (docs/methods.md §3): nouns and captions aligned to the images by entropic
    optimal transport, adaptive fusion.

    .. math:: x^u_i = \mathrm{normalize}\Big(\sum_j T_{ij} S_{ij} u_j\Big), \quad
              w^m_i = \mathrm{softmax}_m\big(\cos(x^m_i, p_i)/\gamma\big)

    (Zhu et al., AAAI 2026, arXiv:2512.00904), then the weighted sum
    :math:`\sum_m w^m_i x^m_i` (``fusion="sum"``, default) or the weighted concatenation
    (``fusion="concat"``) is clustered. ``fit`` needs ``nouns``; ``captions`` are
    optional, and without them the captions of a ``knowledge`` file stand in.

    Examples
    --------
    Items, nouns and captions as features in one space (in practice feature files, or
    lists of strings with a ``text_encoder``):

    >>> import numpy as np
    >>> from kec import CAE
    >>> rng = np.random.default_rng(0)
    >>> directions = np.eye(3, 4)
    >>> X = np.repeat(directions, 10, axis=0) + 0.1 * rng.standard_normal((30, 4))
    >>> nouns = np.vstack([directions, rng.standard_normal((5, 4))])
    >>> captions = directions + 0.05 * rng.standard_normal((3, 4))
    >>> cae = CAE(3, random_state=0).fit(X, nouns=nouns, captions=captions)
    >>> np.bincount(cae.labels_)
    array([10, 10, 10])
    >>> sorted(cae.result_.info["mean_fusion_weights"])
    ['captions', 'image', 'nouns']
    """

    _method = "cae"


class KECCAE(_MethodEstimator):
    r"""kec+cae (docs/methods.md §4): KEC's knowledge grounded by CAE's optimal transport.

    .. math:: c_i = \mathrm{normalize}\Big(\sum_q T^c_{iq} S^c_{iq} \zeta_q\Big), \quad
              a_i = \mathrm{normalize}\Big(\sum_l T^a_{il} S^a_{il} \xi_l\Big)

    then, by default, guarded fusion with :math:`x_i` (docs/methods.md §4.3); CAE's
    adaptive weights (``fusion="adaptive"``) or KEC's :math:`[x_i ; c_i + a_i]`
    (``fusion="kec"``) can use the optional ``nouns`` and ``captions`` levels (the
    knowledge's own captions when it has some). ``fit`` needs ``knowledge``;
    ``clusters_`` names and explains every cluster.

    Examples
    --------
    As for :class:`KEC`: a hand-written document and a toy text encoder.

    >>> import numpy as np
    >>> from kec import KECCAE, make_knowledge
    >>> words = ["cat", "dog", "car"]
    >>> class WordEncoder:  # a text points to the words it names, plus a shared axis
    ...     def encode(self, texts):
    ...         v = np.array([[w in t for w in words] + [0.5] for t in texts], float)
    ...         return v / np.linalg.norm(v, axis=1, keepdims=True)
    >>> doc = make_knowledge({"cat": ["cat whiskers", "cat ears"],
    ...                       "dog": ["dog tail", "dog bark"],
    ...                       "car": ["car wheels", "car doors"]})
    >>> rng = np.random.default_rng(0)
    >>> X = np.repeat(np.eye(3, 4), 10, axis=0) + 0.1 * rng.standard_normal((30, 4))
    >>> model = KECCAE(3, text_encoder=WordEncoder(), random_state=0)
    >>> model.fit(X, knowledge=doc).cluster_names_[model.labels_[0]]
    'cat'
    >>> model.result_.info["concept_ot"]["converged"]
    True
    """

    _method = "kec+cae"


__all__ = ["CAE", "KEC", "KECCAE", "OWN", "OWN_PARAMS", "TAC", "KMeansBaseline"]
