"""Lazy package exports: import a name's module only when the name is first used.

``import kec`` and ``kec --help`` stay fast because torch, open_clip, scikit-learn and the
LLM backends load only when something that needs them is touched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, where: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a package whose names live in ``where[name]``.

    ``where`` maps an exported name to the module that defines it (absolute, or relative
    to ``package`` when it starts with a dot). A name is imported once, then cached in
    the package's ``namespace`` (its ``globals()``).
    """

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        target = package + module if module.startswith(".") else module
        value = getattr(import_module(target), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
