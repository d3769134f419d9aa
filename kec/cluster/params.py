"""A method's parameters from their one declaration (:class:`kec.cluster.registry.Param`):
defaults filled in, values checked, and parameters the chosen fusion strategy ignores
refused.

:func:`method_params` is what every ``run_*`` function calls first; the estimators take
their ``_parameter_constraints`` from :func:`sklearn_constraints`, and ``kec cluster``
checks its flags with :func:`method_params` too (``phrasing="cli"``), before any work.
Errors are :class:`ParameterError`: scikit-learn's ``InvalidParameterError`` (so
``check_estimator`` recognises them) and a :class:`~kec.errors.KecError` (so the command
line prints one line and exits 2).
"""

from __future__ import annotations

import inspect
import os
import textwrap
from collections.abc import Callable, Iterator, Mapping
from numbers import Integral, Real
from typing import Any, TypeVar

import numpy as np
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_parameter_constraints,
)

from kec.cluster._checks import ClusteringInputError
from kec.cluster.registry import Param, ignored_params, method_spec


class ParameterError(ClusteringInputError, InvalidParameterError):
    """A parameter value outside its declaration, an unknown parameter, or one that the
    chosen fusion strategy ignores."""


def _constraint(rule: Any) -> Any:
    """One plain-data alternative of a :class:`Param` rule as a scikit-learn constraint."""
    if rule is None or rule in ("boolean",):
        return rule
    if rule == "dict":
        return dict
    if rule == "str":
        return str
    if isinstance(rule, tuple) and rule[0] in ("real", "int"):
        _, low, high, closed = rule
        return Interval(Real if rule[0] == "real" else Integral, low, high, closed=closed)
    if isinstance(rule, tuple) and rule[0] == "options":
        return StrOptions(set(rule[1]))
    raise ValueError(f"unknown parameter rule {rule!r}")  # a bug in the registry


class _Seed(Interval):
    """An integer seed in [0, 2**32 - 1], not a bool (scikit-learn's ``Interval`` takes
    ``True`` for 1)."""

    def __init__(self) -> None:
        super().__init__(Integral, 0, 2**32 - 1, closed="both")

    def is_satisfied_by(self, val: Any) -> bool:
        """Whether ``val`` is an integer seed (not a bool)."""
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)


def constraints_of(param: Param) -> list[Any]:
    """The scikit-learn constraints of one declared parameter."""
    out: list[Any] = []
    for rule in param.rule:
        if rule == "inf":  # scikit-learn's unbounded intervals stop short of it
            out.append(Options(Real, {float("inf")}))
            continue
        if rule == "random_state":
            out += [None, _Seed(), np.random.RandomState, np.random.Generator]
        else:
            out.append(_constraint(rule))
    return out


#: Constraints of the estimators' own parameters (not parameters of a ``run_*``).
OWN_CONSTRAINTS: Mapping[str, list[Any]] = {
    "n_clusters": [Interval(Integral, 1, None, closed="left")],
    "text_encoder": [str, HasMethods(["encode"]), None],
    "keep_flagged": ["boolean"],
    "cache_dir": [str, os.PathLike, None],
}


def sklearn_constraints(method: str, own: tuple[str, ...] = ()) -> dict[str, list[Any]]:
    """``_parameter_constraints`` of the estimator of ``method``: every declared parameter
    plus the estimator's own ones (keys of :data:`OWN_CONSTRAINTS`)."""
    out = {k: constraints_of(p) for k, p in method_spec(method).params.items()}
    out.update({k: list(OWN_CONSTRAINTS[k]) for k in own})
    return out


class Params(Mapping[str, Any]):
    """A method's full parameter set: a read-only mapping with attribute access
    (``p.temperature``)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["_values"][key]
        except KeyError:
            raise AttributeError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Params({self._values!r})"


def _name(param: str, phrasing: str, method: str) -> str:
    if phrasing == "cli":
        flag = method_spec(method).params[param].flag if param in \
            method_spec(method).params else None
        return flag or param
    return param


def _unknown(method: str, given: Mapping[str, Any], caller: str, phrasing: str) -> None:
    spec = method_spec(method)
    unknown = [k for k in given if k not in spec.params]
    if not unknown:
        return
    from kec.cluster.registry import METHODS

    users = {k: [m for m, e in METHODS.items() if k in e["params"]] for k in unknown}
    said = ", ".join(
        f"{k}" + (f" (a parameter of {', '.join(users[k])})" if users[k] else "")
        for k in unknown)
    where = f"--method {method}" if phrasing == "cli" else caller
    raise ParameterError(f"{said} {'is' if len(unknown) == 1 else 'are'} not "
                         f"parameter{'' if len(unknown) == 1 else 's'} of {where}; it takes "
                         f"{', '.join(spec.params)}")


def _check_values(method: str, values: Mapping[str, Any], caller: str, phrasing: str,
                  only: Mapping[str, Any]) -> None:
    spec = method_spec(method)
    for name in only:
        try:
            validate_parameter_constraints({name: constraints_of(spec.params[name])},
                                           {name: values[name]}, caller_name=caller)
        except InvalidParameterError as exc:
            text = str(exc)
            if phrasing == "cli":  # "The 'reg' parameter of X must be ..." -> "--reg must be"
                text = f"{_name(name, phrasing, method)} must be" + \
                    text.split(" must be", 1)[-1].replace(" Got ", "; got ")
            raise ParameterError(text) from None


#: How ``kec cluster`` spells a fusion strategy whose flag value differs from its name.
_CLI_FUSION = {"adaptive": "sum"}


def check_ignored(method: str, values: Mapping[str, Any], caller: str,
                  phrasing: str = "api") -> None:
    """Refuse a parameter set away from its default that the chosen fusion strategy
    ignores (:func:`kec.cluster.registry.ignored_params`): ``KEC(clusterer=
    "agglomerative")`` with the default guarded fusion would otherwise give the same
    labels as ``KEC()``.

    Raises
    ------
    ParameterError
        Names the parameter, the strategy, and the strategies that use it.
    """
    spec = method_spec(method)
    fusion = values.get("fusion")
    for name, keys in ignored_params(method, fusion).items():
        value, default = values.get(name), spec.params[name].default
        if keys:  # a dict parameter of which the strategy reads only ``keys``
            extra = sorted(set(value or {}) - set(keys))
            if not extra:
                continue
            what = f"{_name(name, phrasing, method)} keys {extra}"
        elif (value is None and default is None) or value == default:
            continue
        else:
            what = _name(name, phrasing, method)
        users = [f for f, s in spec.fusions.items()
                 if any(u.partition(":")[0] == name for u in s["uses"])]
        first = users[0] if users else "..."
        set_fusion = (f"--fusion {_CLI_FUSION.get(first, first)}" if phrasing == "cli"
                      else f"fusion={first!r}")
        raise ParameterError(
            f"{caller}: {what} is not used by fusion {fusion!r} (only by "
            f"{', '.join(map(repr, users))}); leave it at its default or set {set_fusion}")


def method_params(method: str, given: Mapping[str, Any], *, caller: str | None = None,
                  phrasing: str = "api") -> Params:
    """``given`` with every other parameter of ``method`` at its declared default,
    checked.

    Parameters
    ----------
    method : str
        A method of the registry.
    given : mapping
        Keyword arguments of the method's function (or the estimator's parameters).
    caller : str, optional
        How messages name the caller (default ``run_<method>``).
    phrasing : {"api", "cli"}
        Name parameters (``reg``) or ``kec cluster`` flags (``--reg``).

    Returns
    -------
    Params

    Raises
    ------
    ParameterError
        An unknown parameter, a value outside its declaration, or a parameter the chosen
        fusion strategy ignores (:func:`check_ignored`).
    """
    caller = caller or f"run_{method.replace('+', '_')}"
    _unknown(method, given, caller, phrasing)
    spec = method_spec(method)
    values = {k: given.get(k, p.default) for k, p in spec.params.items()}
    _check_values(method, values, caller, phrasing, values)
    check_ignored(method, values, caller, phrasing)
    return Params(values)


def params_doc(method: str, names: tuple[str, ...] | None = None, indent: int = 4) -> str:
    """numpydoc entries (``name : type`` and the indented doc) of the declared parameters
    of ``method`` (all, or ``names``), each default stated."""
    pad = " " * indent
    out = []
    for name, param in method_spec(method).params.items():
        if names is not None and name not in names:
            continue
        text = f"{param.doc} Default: ``{param.default!r}``."
        out.append(f"{pad}{name} : {param.type_doc}\n"
                   + textwrap.fill(text, 88, initial_indent=pad + "    ",
                                   subsequent_indent=pad + "    "))
    return "\n".join(out)


F = TypeVar("F", bound=Callable[..., Any])


def declared(method: str) -> Callable[[F], F]:
    """Give a ``run_*`` function that takes ``**params`` the signature and the numpydoc
    ``Other Parameters`` of its declared parameters (so ``help(run_kec)`` and
    ``inspect.signature`` show every keyword and its default)."""

    def wrap(function: F) -> F:
        sig = inspect.signature(function)
        fixed = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
        taken = {p.name for p in fixed}
        keywords = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=p.default)
                    for k, p in method_spec(method).params.items() if k not in taken]
        function.__signature__ = sig.replace(parameters=[*fixed, *keywords])  # type: ignore[attr-defined]
        doc = inspect.cleandoc(function.__doc__ or "")
        function.__doc__ = (f"{doc}\n\nOther Parameters\n----------------\n"
                            f"{params_doc(method, indent=0)}\n")
        return function

    return wrap


__all__ = ["OWN_CONSTRAINTS", "ParameterError", "Params", "check_ignored", "constraints_of",
           "declared", "method_params", "params_doc", "sklearn_constraints"]
