"""Every estimator documents its attributes, and its ``Examples`` section runs.

The examples are run as doctests with empty globals (each must import what it uses) and
must pass exactly as written: no example may be skipped.
"""

from __future__ import annotations

import doctest
import inspect

import pytest
from sklearn.base import BaseEstimator

from kec.cluster.clusterers import AgglomerativeClusterer, SpectralClusterer
from kec.cluster.estimators import CAE, KEC, KECCAE, TAC, KMeansBaseline
from kec.cluster.kmeans import SphericalKMeans

ESTIMATORS = [KMeansBaseline, TAC, KEC, CAE, KECCAE, SphericalKMeans, SpectralClusterer,
              AgglomerativeClusterer]


def test_the_list_holds_every_public_estimator() -> None:
    """No estimator of kec.cluster escapes the checks below."""
    import importlib
    import pkgutil

    import kec.cluster

    found = set()
    for mod in pkgutil.iter_modules(kec.cluster.__path__, "kec.cluster."):
        for name, obj in vars(importlib.import_module(mod.name)).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseEstimator)
                    and not name.startswith("_") and obj.__module__ == mod.name):
                found.add(obj)
    assert found == set(ESTIMATORS)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_docstring_has_attributes_and_examples(cls: type) -> None:
    doc = inspect.getdoc(cls) or ""
    for section in ("Parameters", "Attributes", "Examples"):
        assert f"\n{section}\n{'-' * len(section)}\n" in doc, f"{cls.__name__}: {section}"
    assert "labels_" in doc.split("Attributes\n", 1)[1]
    assert "+SKIP" not in doc, f"{cls.__name__}: every example must run"


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_examples_run(cls: type) -> None:
    tests = doctest.DocTestFinder(recurse=False).find(cls, cls.__name__, globs={})
    assert tests and tests[0].examples, f"{cls.__name__} has no examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS
                                   | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


@pytest.mark.parametrize("cls", [KEC, KECCAE], ids=lambda c: c.__name__)
def test_knowledge_estimators_say_the_default_fusion_is_guarded(cls: type) -> None:
    """The class docstring describes the fusion ``fit`` uses by default."""
    assert cls().fusion == "guarded"
    head = (cls.__doc__ or "").split("Parameters\n", 1)[0]
    assert "guarded" in head and "default" in head
