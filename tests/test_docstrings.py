"""Every public function, class and method of kec's pure API modules has a docstring.

Covered: every module of :mod:`kec.cluster`, :mod:`kec.features`,
:mod:`kec.feature_shards` and the pure document modules of :mod:`kec.knowledge`. "Public"
is a module-level name without a leading underscore, defined in that module, plus the
public methods and properties of public classes. A method overriding a documented one
inherits its docstring (as :func:`inspect.getdoc` and Sphinx do). A dataclass or named
tuple without its own docstring (Python writes ``Name(field, ...)`` in its place) counts
as undocumented. The walk imports no LLM-side module (builder, backends).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

PURE_KNOWLEDGE = ("document", "lint", "grouping", "handwritten", "labels", "text",
                  "textcheck")
# what a pure API module must never pull in
LLM_SIDE = ("kec.backends", "kec.prompts", "kec.llm.condense", "kec.llm.glosses",
            "kec.llm.builder", "kec.llm.build", "kec.llm.answers")


def documented_module_names() -> list[str]:
    """The modules whose public names must carry docstrings."""
    import kec.cluster

    names = sorted(m.name for m in pkgutil.iter_modules(kec.cluster.__path__, "kec.cluster."))
    names += ["kec.features", "kec.feature_shards"]
    names += [f"kec.knowledge.{m}" for m in PURE_KNOWLEDGE]
    return names


def _function_of(member: object) -> object | None:
    """The function behind a class attribute (method, static/class method, property)."""
    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    elif isinstance(member, property):
        member = member.fget
    return member if inspect.isfunction(member) else None


def _has_doc(obj: object) -> bool:
    return bool((getattr(obj, "__doc__", None) or "").strip())


def _method_documented(cls: type, name: str, func: object) -> bool:
    if _has_doc(func):
        return True
    for base in cls.__mro__[1:]:
        if name in vars(base) and _has_doc(_function_of(vars(base)[name])):
            return True
    return False


def _class_documented(cls: type) -> bool:
    doc = vars(cls).get("__doc__") or ""
    return bool(doc.strip()) and not doc.startswith(f"{cls.__name__}(")


def undocumented(module: ModuleType) -> list[str]:
    """Qualified names of the public functions, classes and methods of ``module`` that
    have no docstring (the module itself included when it has none)."""
    name = module.__name__
    out = [] if _has_doc(module) else [name]
    for attr, obj in vars(module).items():
        if attr.startswith("_") or getattr(obj, "__module__", None) != name:
            continue
        if inspect.isfunction(obj):
            if not _has_doc(obj):
                out.append(f"{name}.{attr}")
        elif inspect.isclass(obj):
            if not _class_documented(obj):
                out.append(f"{name}.{attr}")
            for meth, member in vars(obj).items():
                func = _function_of(member)
                if meth.startswith("_") or func is None:
                    continue
                if not _method_documented(obj, meth, func):
                    out.append(f"{name}.{attr}.{meth}")
    return out


def test_every_public_name_has_a_docstring() -> None:
    missing = [q for m in documented_module_names()
               for q in undocumented(importlib.import_module(m))]
    assert not missing, "public names without a docstring:\n  " + "\n  ".join(missing)


def test_the_walk_finds_what_it_should() -> None:
    """The checker itself: it sees a missing docstring on a function, a class, a method,
    a property and a dataclass, and accepts an inherited one."""
    from dataclasses import dataclass

    mod = ModuleType("fake_mod", "A module.")

    def f() -> None:
        pass

    class Base:
        """Documented."""

        def run(self) -> None:
            """Runs."""

    class Child(Base):
        """Documented."""

        def run(self) -> None:  # inherits Base.run's docstring
            pass

        def other(self) -> None:
            pass

        @property
        def size(self) -> int:
            return 0

    @dataclass
    class Data:
        x: int

    for obj in (f, Base, Child, Data):
        obj.__module__ = "fake_mod"
        setattr(mod, obj.__name__, obj)
    assert sorted(undocumented(mod)) == ["fake_mod.Child.other", "fake_mod.Child.size",
                                         "fake_mod.Data", "fake_mod.f"]


def test_documented_modules_import_no_llm_side_module() -> None:
    """Walking the API modules (in a fresh interpreter) loads no LLM backend or builder."""
    code = ("import importlib, sys\n"
            "from tests.test_docstrings import documented_module_names, LLM_SIDE\n"
            "for m in documented_module_names(): importlib.import_module(m)\n"
            "print(sorted(m for m in LLM_SIDE if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_every_docstring_example_runs() -> None:
    """The ``>>>`` examples of the documented modules pass as doctests."""
    import doctest

    failed = {}
    for name in documented_module_names():
        result = doctest.testmod(importlib.import_module(name), report=False,
                                 optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        if result.failed:
            failed[name] = result.failed
    assert not failed, f"failing docstring examples (run python -m doctest): {failed}"
