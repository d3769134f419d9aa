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
- ``defaults``: the keyword parameters of the function and their default values (the
  estimator's constructor mirrors them; a test keeps the three in step);
- ``section``: the section of ``docs/methods.md`` that states its equations;
- ``description``: one line for ``--help`` and reports.

Nothing here imports numpy or the methods themselves (looking a method up is free);
:func:`resolve` imports the estimator or function on demand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
    },
    "captions": {
        "what": "caption features from the images' encoder",
        "flag": "--captions CAPTIONS.safetensors",
        "made_by": "kec embed texts",
        "fit_arg": "captions",
    },
    "knowledge": {
        "what": "a knowledge file",
        "flag": "--knowledge KNOWLEDGE.json",
        "made_by": "kec knowledge build",
        "fit_arg": "knowledge",
    },
})

_CLUSTERING = {"clusterer": "kmeans", "random_state": 0, "clusterer_params": None,
               "keep_features": False, "device": None}
_SCAFFOLD = {"n_overclusters": None, "rule": "auto", "n_classes": None, "top_k": 5,
             "overcluster_params": None}
_OT = {"reg": 0.01, "ot_method": "auto", "ot_params": None, "gamma": 0.01}
_NAMING = {"n_names": 3, "n_attributes": 3}
_GUARD = {"beta": 0.25, "corroboration_threshold": 0.2, "agreement_threshold": 0.5,
          "agreement_margin": 0.1, "objective_tolerance": 0.05, "anchor_weight": 0.1,
          "spread_ratio": 2.0, "spread_margin": 0.5}

#: Names of the final clusterers (:func:`kec.cluster.clusterers.create_clusterer`).
CLUSTERERS: tuple[str, ...] = ("kmeans", "spectral", "agglomerative")

#: The method table: name -> entry (see the module docstring).
METHODS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "kmeans": {
        "estimator": "kec.cluster.estimators:KMeansBaseline",
        "function": "kec.cluster.methods:run_kmeans",
        "requires": (),
        "optional": (),
        "defaults": {**_CLUSTERING},
        "section": "6",
        "description": "baseline: spherical k-means (or another clusterer) on the image "
                       "features alone",
    },
    "tac": {
        "estimator": "kec.cluster.estimators:TAC",
        "function": "kec.cluster.methods:run_tac",
        "requires": ("nouns",),
        "optional": (),
        "defaults": {**_SCAFFOLD, "tau": 0.005, "selection_temperature": 0.01,
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
        "defaults": {"temperature": 0.01, "pair_attributes": True, "normalize_parts": True,
                     "fusion": "guarded", **_GUARD, **_CLUSTERING, **_NAMING},
        "section": "2",
        "description": "KEC: LLM knowledge (concepts, attributes, pairs) grounded per "
                       "image by a softmax; guarded fusion with the image features",
    },
    "cae": {
        "estimator": "kec.cluster.estimators:CAE",
        "function": "kec.cluster.methods:run_cae",
        "requires": ("nouns",),
        "optional": ("captions", "knowledge"),
        "defaults": {**_SCAFFOLD, **_OT, "fusion": "sum", **_CLUSTERING},
        "section": "3",
        "description": "CAE: nouns (and captions) aligned to the images by optimal "
                       "transport, adaptive fusion",
    },
    "kec+cae": {
        "estimator": "kec.cluster.estimators:KECCAE",
        "function": "kec.cluster.methods:run_kec_cae",
        "requires": ("knowledge",),
        "optional": ("nouns", "captions"),
        "defaults": {**_OT, "attribute_mode": "transport", "pair_attributes": True,
                     "fusion": "guarded", "fusion_mode": "sum", **_GUARD, **_SCAFFOLD,
                     **_CLUSTERING, **_NAMING},
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
    defaults : dict
        Keyword parameters of the function with their default values.
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
    defaults: Mapping[str, Any]
    section: str
    description: str

    @property
    def inputs(self) -> tuple[str, ...]:
        """Every input the method uses, required first."""
        return self.requires + self.optional

    @property
    def reference(self) -> str:
        """Where the equations are: ``"docs/methods.md §N"``."""
        return f"docs/methods.md §{self.section}"


def method_names() -> tuple[str, ...]:
    """Names of all methods, in table order (``kmeans`` first)."""
    return tuple(METHODS)


def method_spec(name: str) -> MethodSpec:
    """The entry of method ``name``.

    Raises
    ------
    UnknownMethodError
        ``name`` is not a method; the message lists the known ones.
    """
    entry = METHODS.get(name)
    if entry is None:
        raise UnknownMethodError(
            f"unknown method {name!r}; choose from {', '.join(method_names())}")
    return MethodSpec(name=name, estimator=entry["estimator"], function=entry["function"],
                      requires=tuple(entry["requires"]), optional=tuple(entry["optional"]),
                      defaults=MappingProxyType(dict(entry["defaults"])),
                      section=entry["section"], description=entry["description"])


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


def describe_input(input_name: str) -> str:
    """``"noun features from the images' encoder (--nouns NOUNS.safetensors, made by
    'kec embed texts')"``."""
    spec = INPUTS[input_name]
    return f"{spec['what']} ({spec['flag']}, made by '{spec['made_by']}')"


def check_inputs(name: str, provided: Iterable[str]) -> None:
    """Fail when method ``name`` lacks a required input.

    Parameters
    ----------
    name : str
        Method name.
    provided : iterable of str
        Names of the inputs at hand (keys of :data:`INPUTS`); unknown names are ignored.

    Raises
    ------
    UnknownMethodError
        ``name`` is not a method.
    kec.cluster._checks.ClusteringInputError
        A required input is missing: the message names it, the command-line flag that
        provides it and the command that makes it.
    """
    from kec.cluster._checks import ClusteringInputError

    spec = method_spec(name)
    missing = [i for i in spec.requires if i not in set(provided)]
    if missing:
        raise ClusteringInputError(
            f"method {name!r} needs " + " and ".join(describe_input(i) for i in missing))


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
    "CLUSTERERS",
    "INPUTS",
    "METHODS",
    "OPTIONAL_NOTES",
    "MethodSpec",
    "UnknownMethodError",
    "check_inputs",
    "describe_input",
    "method_names",
    "method_spec",
    "methods_requiring",
    "methods_using",
    "resolve",
    "unused_inputs",
]
