"""``kec.__version__``: the installed distribution's version. A module of its own, so
low modules (documents, features, reports) read it without importing the package's
lazy exports."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kec")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
