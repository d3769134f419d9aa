"""Reading labels: a text file (one per line), a Python list, or pre-formed label groups."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path
from typing import Any

from kec._io import canonical_json, sha256_text
from kec.errors import KecError


class LabelError(KecError):
    """A label file or groups file cannot be used."""


def clean_label(text: str) -> str:
    """NFKC-normalise, turn underscores into spaces, collapse white space."""
    text = unicodedata.normalize("NFKC", text).replace("_", " ")
    return " ".join(text.split())


def unique_labels(labels: list[str]) -> list[str]:
    """Clean labels, drop empty ones and case-insensitive duplicates, keep first order."""
    seen: set[str] = set()
    out = []
    for raw in labels:
        label = clean_label(raw)
        if label and label.casefold() not in seen:
            seen.add(label.casefold())
            out.append(label)
    return out


def read_labels(path: str | os.PathLike[str]) -> list[str]:
    """One label per line; blank lines and lines starting with ``#`` are skipped."""
    try:
        text = Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise LabelError(f"labels file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(f"cannot read labels file {path}: {exc}") from None
    labels = unique_labels([ln for ln in text.splitlines() if not ln.lstrip().startswith("#")])
    if not labels:
        raise LabelError(f"{path}: no labels (one label per line expected)")
    return labels


def read_groups(path: str | os.PathLike[str]) -> list[list[str]]:
    """Label groups from JSON: ``kec scaffold``'s ``{"groups": [{"labels": [...]}, ...]}``
    or a plain list of label lists."""
    try:
        data: Any = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise LabelError(f"groups file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise LabelError(f"{path}: not a JSON groups file: {exc}") from None
    items = data.get("groups") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise LabelError(f"{path}: expected a list of groups or {{'groups': [...]}}")
    groups = []
    for i, g in enumerate(items):
        labels = g.get("labels") if isinstance(g, dict) else g
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise LabelError(f"{path}: $.groups[{i}] must be a list of strings or "
                             "an object with 'labels'")
        cleaned = unique_labels(labels)
        if cleaned:
            groups.append(cleaned)
    if not groups:
        raise LabelError(f"{path}: no non-empty label groups")
    return groups


def labels_sha256(obj: Any) -> str:
    """Hash of the canonical JSON of a label list or a list of groups."""
    return sha256_text(canonical_json(obj))
