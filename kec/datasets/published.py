"""Published results shipped as data (``published.json``), with their sources."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

METRICS = ("acc", "nmi", "ari")


@cache
def _published() -> dict[str, Any]:
    return json.loads(files("kec.datasets").joinpath("published.json").read_text("utf-8"))


def published_sources() -> dict[str, dict[str, str]]:
    """Source id -> ``{title, venue, url, where}``."""
    return dict(_published()["sources"])


def published_results(dataset: str | None = None, method: str | None = None
                      ) -> list[dict[str, Any]]:
    """Published entries (percentages), filtered by dataset and/or method.

    Each entry: ``dataset``, ``method``, ``source``, ``metrics`` (a subset of
    ``acc``/``nmi``/``ari``), optionally ``variant``, ``model``, ``note``.
    """
    out = []
    for e in _published()["entries"]:
        if dataset is not None and e["dataset"] != dataset:
            continue
        if method is not None and e["method"] != method:
            continue
        out.append(json.loads(json.dumps(e)))  # a deep copy
    return out


def published_label(entry: dict[str, Any]) -> str:
    """Short description for tables: ``"tac (trained head), TAC ICML 2024"``."""
    src = published_sources().get(entry["source"], {})
    variant = f" ({entry['variant']})" if entry.get("variant") else ""
    venue = src.get("venue", entry["source"])
    return f"{entry['method']}{variant}, {entry['source'].upper()} {venue}"
