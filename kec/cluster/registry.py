"""The clustering methods, as one table of plain data.

Every consumer reads :data:`METHODS`: the estimators (:mod:`kec.cluster.estimators`),
``kec cluster`` (``--method`` choices, which input files a method needs), ``kec bench``
and the report. Adding a method is one entry here plus its estimator class.

An entry holds

- ``estimator``: ``"module:Class"`` of its scikit-learn estimator;
- ``function``: ``"module:function"`` of its ``run_*`` function, which returns a
  :class:`~kec.cluster.methods.MethodResult`;
- ``requires`` / ``optional``: the text inputs, from :data:`INPUTS`, that the method
  cannot run without / can use when given;
- ``params``: every keyword parameter of the function, declared once as a
  :class:`Param` (default, allowed values, doc, ``kec cluster`` flag): the function
  fills and checks its arguments from it (:mod:`kec.cluster.params`), the estimator
  builds its constructor, docstring and ``_parameter_constraints`` from it, and
  ``kec cluster`` its flags;
- ``fusions`` (methods with several pipelines): each value of the ``fusion`` parameter,
  the function that runs it (:mod:`kec.cluster.strategies`) and the parameters only it
  reads; a parameter set away from its default that the chosen strategy ignores is an
  error (:func:`ignored_params`);
- ``section``: the section of ``docs/methods.md`` that states its equations;
- ``description``: one line for ``--help`` and reports.

Nothing here imports numpy or the methods themselves (looking a method up is free);
:func:`resolve` imports the estimator or function on demand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from importlib import import_module
from types import MappingProxyType
from typing import Any

from kec.errors import KecError

#: What each text input is and where it comes from on the command line.
INPUTS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "nouns": {
        "what": "noun features from the images' encoder",
        "flag": "--nouns NOUNS.safetensors",
        "made_by": "kec embed texts",
        "fit_arg": "nouns",
        "api": "fit(X, nouns=...)",
    },
    "captions": {
        "what": "caption features from the images' encoder",
        "flag": "--captions CAPTIONS.safetensors",
        "made_by": "kec embed texts",
        "fit_arg": "captions",
        "api": "fit(X, captions=...)",
    },
    "knowledge": {
        "what": "a knowledge file",
        "flag": "--knowledge KNOWLEDGE.json",
        "made_by": "kec knowledge build",
        "fit_arg": "knowledge",
        "api": "fit(X, knowledge=...)",
    },
})

#: How an error names an argument: for the Python API or for the command line.
PHRASINGS = ("api", "cli")

#: Arguments that are not inputs of a method but that errors name: how each caller
#: spells them.
ARGUMENTS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "text_encoder": {"api": "text_encoder=", "cli": "--text-encoder"},
    "n_clusters": {"api": "n_clusters", "cli": "--k"},
})


@dataclass(frozen=True)
class Param:
    """One parameter of a method, declared once: the ``run_*`` function fills and checks
    its keyword arguments from it, the estimator builds ``__init__``, its numpydoc
    ``Parameters`` and ``_parameter_constraints`` from it, and ``kec cluster`` its flag.

    Attributes
    ----------
    default : object
        Default value.
    rule : tuple
        The values allowed, as plain data (one match suffices): ``None``; ``"boolean"``;
        ``"dict"``; ``"str"``; ``"random_state"`` (None, an int in [0, 2**32 - 1], a
        RandomState or a Generator); ``("real" | "int", low, high, closed)`` an interval
        (``None`` bound: unbounded; ``closed`` as scikit-learn's ``Interval``);
        ``("options", (...))`` one of these strings; ``"inf"`` beside an interval: and
        infinity (which the command line otherwise refuses). :mod:`kec.cluster.params`
        turns it into scikit-learn constraints.
    doc : str
        What it does, for docstrings and ``--help``.
    type_doc : str
        The numpydoc type line (``"float > 0"``).
    flag : str or None
        The ``kec cluster`` flag (``"--top-k"``); ``None``: not on the command line.
    """

    default: Any
    rule: tuple[Any, ...]
    doc: str
    type_doc: str
    flag: str | None = None


def _p(default: Any, rule: tuple[Any, ...], type_doc: str, doc: str, *,
       flag: bool | str = True) -> Param:
    """A :class:`Param`; ``flag=True``: ``kec cluster`` flag ``--name-with-dashes`` (filled
    in by :func:`method_spec`), a string: that flag, ``False``: none."""
    return Param(default, rule, doc, type_doc,
                 flag if isinstance(flag, str) else "" if flag else None)


_POSITIVE = (("real", 0, None, "neither"),)
_NONNEGATIVE = (("real", 0, None, "left"),)
_COUNT = (("int", 1, None, "left"),)

#: Names of the final clusterers (:func:`kec.cluster.clusterers.create_clusterer`).
CLUSTERERS: tuple[str, ...] = ("kmeans", "spectral", "agglomerative")
#: Optimal-transport solvers (:func:`kec.cluster.ot.solve_ot`).
OT_METHODS: tuple[str, ...] = ("auto", "sinkhorn", "chunked", "semi_relaxed", "partial")

_CLUSTERING = {
    "clusterer": _p("kmeans", (("options", CLUSTERERS),),
                    '{"kmeans", "spectral", "agglomerative"}',
                    'Final clusterer; ``"kmeans"`` is spherical k-means '
                    "(:class:`~kec.cluster.kmeans.SphericalKMeans`)."),
    "random_state": _p(None, ("random_state",), "int, Generator or None",
                       "Seed of every random choice; ``None`` (scikit-learn's default): "
                       "fresh entropy at every fit.", flag=False),
    "clusterer_params": _p(None, ("dict", None), "dict or None",
                           'Keyword arguments of the final clusterer (``{"n_init": 10}``).',
                           flag=False),
    "keep_features": _p(False, ("boolean",), "bool",
                        "Keep the clustered matrix in ``result_.features``.", flag=False),
    "device": _p(None, ("str", None), '{"auto", "cpu", "cuda"} or None',
                 "Where OT and k-means run; ``None``: numpy on the CPU. Inputs and "
                 "outputs stay numpy.", flag=False),
}
_SCAFFOLD = {
    "n_overclusters": _p(None, (*_COUNT, None), "int or None",
                         "Over-clusters for text selection; ``None``: from ``rule``.",
                         flag="--overclusters"),
    "rule": _p("auto", ("str", *_COUNT), "str or int",
               'Over-cluster count when ``n_overclusters`` is None: ``"auto"``, '
               '``"n/300"``, ``"3k"`` (:func:`kec.cluster.scaffold.n_overclusters`).',
               flag="--overclusters"),
    "n_classes": _p(None, (*_COUNT, None), "int or None",
                    'For the ``"3k"`` rule; ``None``: ``n_clusters``.'),
    "top_k": _p(5, _COUNT, "int >= 1", "Texts kept per over-cluster."),
    "overcluster_params": _p(None, ("dict", None), "dict or None",
                             "Keyword arguments of the over-clustering k-means.", flag=False),
}
_OT = {
    "reg": _p(0.01, _POSITIVE, "float > 0",
              r"Entropic regularisation :math:`\varepsilon` of optimal transport."),
    "ot_method": _p("auto", (("options", OT_METHODS),),
                    '{"auto", "sinkhorn", "chunked", "semi_relaxed", "partial"}',
                    "Optimal-transport solver (docs/methods.md §5)."),
    "ot_params": _p(None, ("dict", None), "dict or None",
                    "Keyword arguments of the OT solver.", flag=False),
}
_GAMMA = {"gamma": _p(0.01, _POSITIVE, "float > 0",
                      r"Adaptive fusion temperature :math:`\gamma`.")}
_NAMING = {
    "n_names": _p(3, _COUNT, "int >= 1", "Concepts listed per cluster in ``clusters_``.",
                  flag=False),
    "n_attributes": _p(3, (("int", 0, None, "left"),), "int >= 0",
                       "Attributes listed per cluster in ``clusters_``.", flag=False),
}
_GUARD = {
    "beta": _p(0.25, _NONNEGATIVE, "float >= 0",
               "Guarded fusion: weight of the knowledge views in ``nuisance`` mode."),
    "corroboration_threshold": _p(0.2, _NONNEGATIVE, "float >= 0",
                                  r"Guarded fusion: :math:`\theta_r`, the corroboration "
                                  "that makes the data's dominant structure a nuisance."),
    "agreement_threshold": _p(0.5, _NONNEGATIVE, "float >= 0",
                              r"Guarded fusion: :math:`\theta_x`, the agreement at which "
                              "the knowledge is fully trusted."),
    "agreement_margin": _p(0.1, _NONNEGATIVE, "float >= 0",
                           "Guarded fusion: trust ramps from 0 at ``agreement_threshold - "
                           "agreement_margin`` to 1 at ``agreement_threshold``."),
    "objective_tolerance": _p(0.05, _NONNEGATIVE, "float >= 0",
                              "Guarded fusion: trusted knowledge may cost up to ``trust * "
                              "objective_tolerance`` of the data's k-means objective."),
    "anchor_weight": _p(0.1, _NONNEGATIVE, "float >= 0",
                        "Guarded fusion: pull of a cluster's knowledge direction on its "
                        "centre, times the trust."),
    "spread_ratio": _p(2.0, (*_NONNEGATIVE, "inf"), "float >= 0 or inf",
                       "Guarded fusion: the knowledge's partition is not trusted at all "
                       "from this many times the data's own spread (the distance between "
                       "k-means runs of other seeds) away from the data's partition; "
                       "``inf``: not measured."),
    "spread_margin": _p(0.5, _NONNEGATIVE, "float >= 0",
                        "Guarded fusion: fully trusted up to ``spread_ratio - "
                        "spread_margin`` times the data's spread."),
}
_PAIRS = {"pair_attributes": _p(True, ("boolean",), "bool",
                                "Ground pair (bi-)attributes too; ``False``: uni-attributes "
                                "only (ablation).")}

#: Parameters only the guarded fusion reads (``clusterer_params:n_init``: only that key).
GUARD_USES = (*_GUARD, "clusterer_params:n_init")
#: Parameters of kec+cae's optional noun and caption levels.
LEVEL_USES = tuple(_SCAFFOLD)

#: The method table: name -> entry (see the module docstring).
METHODS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "kmeans": {
        "estimator": "kec.cluster.estimators:KMeansBaseline",
        "function": "kec.cluster.methods:run_kmeans",
        "requires": (),
        "optional": (),
        "params": {**_CLUSTERING},
        "section": "6",
        "description": "baseline: spherical k-means (or another clusterer) on the image "
                       "features alone",
    },
    "tac": {
        "estimator": "kec.cluster.estimators:TAC",
        "function": "kec.cluster.methods:run_tac",
        "requires": ("nouns",),
        "optional": (),
        "params": {**_SCAFFOLD,
                   "tau": _p(0.005, _POSITIVE, "float > 0",
                             "Softmax temperature of TAC's text counterpart."),
                   "selection_temperature": _p(0.01, _POSITIVE, "float > 0",
                                               "Temperature of TAC's noun selection.",
                                               flag=False),
                   **_CLUSTERING},
        "section": "1",
        "description": "TAC, training-free: image features joined with their "
                       "softmax-weighted selected nouns",
    },
    "kec": {
        "estimator": "kec.cluster.estimators:KEC",
        "function": "kec.cluster.methods:run_kec",
        "requires": ("knowledge",),
        "optional": (),
        "params": {"temperature": _p(0.01, _POSITIVE, "float > 0",
                                     "Grounding softmax temperature ``T`` (kec's choice; "
                                     "the paper gives none)."),
                   **_PAIRS,
                   "normalize_parts": _p(True, ("boolean",), "bool",
                                         r"``concat`` fusion: L2-normalise :math:`x_i` and "
                                         r":math:`\kappa_i` before joining them."),
                   "fusion": _p("guarded", (("options", ("guarded", "concat")),),
                                '{"guarded", "concat"}',
                                "Guarded fusion (docs/methods.md §4.3), or KEC's published "
                                r"concatenation :math:`[x ; \kappa]`."),
                   **_GUARD, **_CLUSTERING, **_NAMING},
        "fusions": {
            "guarded": {"function": "kec.cluster.strategies:kec_guarded",
                        "uses": GUARD_USES},
            "concat": {"function": "kec.cluster.strategies:kec_concat_fusion",
                       "uses": ("normalize_parts", "clusterer", "clusterer_params")},
        },
        "section": "2",
        "description": "KEC: LLM knowledge (concepts, attributes, pairs) grounded per "
                       "image by a softmax; guarded fusion with the image features",
    },
    "cae": {
        "estimator": "kec.cluster.estimators:CAE",
        "function": "kec.cluster.methods:run_cae",
        "requires": ("nouns",),
        "optional": ("captions", "knowledge"),
        "params": {**_SCAFFOLD, **_OT, **_GAMMA,
                   "fusion": _p("sum", (("options", ("sum", "concat")),), '{"sum", "concat"}',
                                "CAE's adaptive fusion: weighted sum or weighted "
                                "concatenation of the modalities."),
                   **_CLUSTERING},
        "section": "3",
        "description": "CAE: nouns (and captions) aligned to the images by optimal "
                       "transport, adaptive fusion",
    },
    "kec+cae": {
        "estimator": "kec.cluster.estimators:KECCAE",
        "function": "kec.cluster.methods:run_kec_cae",
        "requires": ("knowledge",),
        "optional": ("nouns", "captions"),
        "params": {**_OT,
                   "attribute_mode": _p("transport",
                                        (("options", ("transport", "elementwise")),),
                                        '{"transport", "elementwise"}',
                                        "Attribute level by OT over all attribute texts, "
                                        r"or KEC's :math:`x_i \odot \xi`."),
                   **_PAIRS,
                   "fusion": _p("guarded", (("options", ("guarded", "adaptive", "kec")),),
                                '{"guarded", "adaptive", "kec"}',
                                "Guarded fusion (docs/methods.md §4.3), CAE's adaptive "
                                r"weights, or KEC's :math:`[x ; c + a]`."),
                   "fusion_mode": _p("sum", (("options", ("sum", "concat")),),
                                     '{"sum", "concat"}',
                                     "``adaptive`` fusion: weighted sum or concatenation.",
                                     flag="--fusion"),
                   **_GAMMA, **_GUARD, **_SCAFFOLD, **_CLUSTERING, **_NAMING},
        "fusions": {
            "guarded": {"function": "kec.cluster.strategies:kec_cae_guarded",
                        "uses": GUARD_USES},
            "adaptive": {"function": "kec.cluster.strategies:kec_cae_adaptive",
                         "uses": ("gamma", "fusion_mode", "clusterer", "clusterer_params",
                                  *LEVEL_USES), "levels": True},
            "kec": {"function": "kec.cluster.strategies:kec_cae_concat",
                    "uses": ("clusterer", "clusterer_params", *LEVEL_USES),
                    "levels": True},
        },
        "section": "4",
        "description": "kec's combination: KEC's knowledge grounded by CAE's optimal "
                       "transport; guarded fusion with the image features",
    },
})

#: Notes on optional inputs whose use is not obvious from their name.
OPTIONAL_NOTES: Mapping[tuple[str, str], str] = MappingProxyType({
    ("cae", "knowledge"): "without captions, the knowledge file's captions are the "
                          "caption corpus",
    ("kec+cae", "captions"): "default: the knowledge file's own captions, if any",
})


class UnknownMethodError(KecError, ValueError):
    """A method name that is not in :data:`METHODS`."""


@dataclass(frozen=True)
class MethodSpec:
    """One entry of :data:`METHODS`, typed.

    Attributes
    ----------
    name : str
        Method name (``"kec+cae"``).
    estimator, function : str
        ``"module:attribute"`` paths; :func:`resolve` imports them.
    requires, optional : tuple of str
        Input names (keys of :data:`INPUTS`).
    params : dict
        Every keyword parameter of the function: name -> :class:`Param` (with its
        ``flag`` filled in), in table order.
    fusions : dict
        Fusion strategy -> ``{"function": "module:function", "uses": (...),
        "levels": bool}``: the strategy of the ``fusion`` parameter, its function, and
        the parameters only it reads (a parameter another strategy uses and the chosen
        one does not is *ignored* by it: :func:`ignored_params`). Empty for methods with
        one pipeline.
    section : str
        Section of ``docs/methods.md`` with the method's equations.
    description : str
        One line.
    """

    name: str
    estimator: str
    function: str
    requires: tuple[str, ...]
    optional: tuple[str, ...]
    params: Mapping[str, Param]
    fusions: Mapping[str, Mapping[str, Any]]
    section: str
    description: str

    @property
    def defaults(self) -> Mapping[str, Any]:
        """Parameter name -> default value."""
        return MappingProxyType({k: p.default for k, p in self.params.items()})

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every input the method uses, required first."""
        return self.requires + self.optional

    @property
    def reference(self) -> str:
        """Where the equations are: ``"docs/methods.md §N"``."""
        return f"docs/methods.md §{self.section}"


def method_names() -> tuple[str, ...]:
    """Names of all methods, in table order.

    Returns
    -------
    tuple of str
        ``("kmeans", "tac", "kec", "cae", "kec+cae")``: the keys of :data:`METHODS`.
    """
    return tuple(METHODS)


def method_spec(name: str) -> MethodSpec:
    """The entry of method ``name``.

    Parameters
    ----------
    name : str
        A method name (:func:`method_names`).

    Returns
    -------
    MethodSpec
        Its inputs, parameters, defaults and fusion strategies (read-only).

    Raises
    ------
    UnknownMethodError
        ``name`` is not a method; the message lists the known ones.
    """
    entry = METHODS.get(name)
    if entry is None:
        raise UnknownMethodError(
            f"unknown method {name!r}; choose from {', '.join(method_names())}")
    params = {k: p if p.flag != "" else replace(p, flag="--" + k.replace("_", "-"))
              for k, p in entry["params"].items()}
    fusions = {k: MappingProxyType(dict(v)) for k, v in entry.get("fusions", {}).items()}
    return MethodSpec(name=name, estimator=entry["estimator"], function=entry["function"],
                      requires=tuple(entry["requires"]), optional=tuple(entry["optional"]),
                      params=MappingProxyType(params), fusions=MappingProxyType(fusions),
                      section=entry["section"], description=entry["description"])


def parameter_names() -> tuple[str, ...]:
    """Every parameter of every method, each once, in table order."""
    return tuple(dict.fromkeys(k for e in METHODS.values() for k in e["params"]))


def ignored_params(name: str, fusion: str | None) -> dict[str, tuple[str, ...]]:
    """The parameters of method ``name`` that its fusion strategy ``fusion`` ignores:
    those another of its strategies uses and ``fusion`` does not.

    Returns ``{parameter: keys still read}``: ``()`` when the strategy ignores the whole
    parameter, or the keys of a dict parameter it reads (a strategy whose ``uses`` holds
    ``"clusterer_params:n_init"`` reads that key of ``clusterer_params`` and ignores
    the others).
    """
    spec = method_spec(name)
    if fusion not in spec.fusions:
        return {}
    used = spec.fusions[fusion]["uses"]
    reads: dict[str, list[str]] = {}
    for u in used:
        base, _, key = u.partition(":")
        reads.setdefault(base, []).append(key)
    out: dict[str, tuple[str, ...]] = {}
    for f, strategy in spec.fusions.items():
        for u in strategy["uses"]:
            base = u.partition(":")[0]
            if f == fusion or base in out:
                continue
            keys = reads.get(base)
            if keys is None:
                out[base] = ()
            elif "" not in keys:  # the chosen strategy reads only these keys
                out[base] = tuple(keys)
    return {k: out[k] for k in spec.params if k in out}


def resolve_fusion(name: str, fusion: str) -> Any:
    """Import and return the function of fusion strategy ``fusion`` of method ``name``
    (its ``"fusions"`` entry; :mod:`kec.cluster.strategies`).

    Raises
    ------
    KecError
        ``name`` has no strategy ``fusion``; the message lists its strategies.
    """
    spec = method_spec(name)
    if fusion not in spec.fusions:
        raise KecError(f"method {name!r} has no fusion {fusion!r}; choose from "
                       f"{', '.join(spec.fusions) or 'none (one pipeline)'}")
    module, _, attr = spec.fusions[fusion]["function"].partition(":")
    return getattr(import_module(module), attr)


def methods_using(input_name: str) -> tuple[str, ...]:
    """Methods that require or can use the input ``input_name`` (e.g. ``"nouns"``)."""
    if input_name not in INPUTS:
        raise KecError(f"unknown input {input_name!r}; inputs are {', '.join(INPUTS)}")
    return tuple(n for n, e in METHODS.items()
                 if input_name in e["requires"] or input_name in e["optional"])


def methods_requiring(input_name: str) -> tuple[str, ...]:
    """Methods that cannot run without the input ``input_name``."""
    methods_using(input_name)  # validates the name
    return tuple(n for n, e in METHODS.items() if input_name in e["requires"])


def spell(argument: str, phrasing: str = "api") -> str:
    """How ``argument`` (an input of :data:`INPUTS` or a key of :data:`ARGUMENTS`) is
    written for ``phrasing``: ``"fit(X, nouns=...)"`` for the API, ``"--nouns
    NOUNS.safetensors"`` for the command line."""
    if phrasing not in PHRASINGS:
        raise ValueError(f"phrasing must be one of {PHRASINGS}, got {phrasing!r}")
    if argument in INPUTS:
        return INPUTS[argument]["api" if phrasing == "api" else "flag"]
    return ARGUMENTS[argument][phrasing]


def describe_input(input_name: str, phrasing: str = "cli") -> str:
    """``"noun features from the images' encoder (--nouns NOUNS.safetensors, made by
    'kec embed texts')"``; with ``phrasing="api"`` the argument reads ``fit(X,
    nouns=...)``."""
    spec = INPUTS[input_name]
    return f"{spec['what']} ({spell(input_name, phrasing)}, made by '{spec['made_by']}')"


def check_inputs(name: str, provided: Iterable[str], phrasing: str = "api") -> None:
    """Fail when method ``name`` lacks a required input.

    Parameters
    ----------
    name : str
        Method name.
    provided : iterable of str
        Names of the inputs at hand (keys of :data:`INPUTS`); unknown names are ignored.
    phrasing : {"api", "cli"}
        Whether the message names the argument of ``fit`` or the command-line flag.

    Raises
    ------
    UnknownMethodError
        ``name`` is not a method.
    kec.cluster._checks.ClusteringInputError
        A required input is missing: the message names it, the argument (or flag) that
        provides it and the command that makes it.
    """
    from kec.cluster._checks import ClusteringInputError

    spec = method_spec(name)
    missing = [i for i in spec.requires if i not in set(provided)]
    if missing:
        raise ClusteringInputError(
            f"method {name!r} needs "
            + " and ".join(describe_input(i, phrasing) for i in missing))


def unused_inputs(name: str, provided: Iterable[str]) -> tuple[str, ...]:
    """The inputs in ``provided`` that method ``name`` neither requires nor uses."""
    spec = method_spec(name)
    return tuple(i for i in provided if i in INPUTS and i not in spec.inputs)


def resolve(name: str, what: str = "estimator") -> Any:
    """Import and return the estimator class (``what="estimator"``) or the ``run_*``
    function (``what="function"``) of method ``name``."""
    if what not in ("estimator", "function"):
        raise ValueError(f"what must be 'estimator' or 'function', got {what!r}")
    module, _, attr = getattr(method_spec(name), what).partition(":")
    return getattr(import_module(module), attr)


__all__ = [
    "ARGUMENTS",
    "CLUSTERERS",
    "GUARD_USES",
    "INPUTS",
    "LEVEL_USES",
    "METHODS",
    "OPTIONAL_NOTES",
    "OT_METHODS",
    "PHRASINGS",
    "MethodSpec",
    "Param",
    "UnknownMethodError",
    "check_inputs",
    "describe_input",
    "ignored_params",
    "method_names",
    "method_spec",
    "methods_requiring",
    "methods_using",
    "parameter_names",
    "resolve",
    "resolve_fusion",
    "spell",
    "unused_inputs",
]
