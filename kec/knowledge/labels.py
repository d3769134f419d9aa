"""Reading labels: a text file (one per line), a Python list, or pre-formed label groups."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path
from typing import Any

from kec._io import canonical_json, sha256_text
from kec.errors import KecError

MAX_LABEL_CHARS = 200  # a label is a name, not a document (the schema allows 2000)


class LabelError(KecError):
    """A label file or groups file cannot be used."""


def _visible(ch: str) -> str:
    cat = unicodedata.category(ch)
    if cat == "Cf":  # format: zero-width space/joiners, RTL/LTR marks, BOM, ...
        return ""
    if cat in ("Cc", "Zl", "Zp"):  # control characters (NUL, tabs, ...) and line breaks
        return " "
    return ch


def clean_label(text: str) -> str:
    """NFKC-normalise, strip format characters (zero-width, RTL marks), turn control
    characters and underscores into spaces, collapse white space."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(_visible(ch) for ch in text).replace("_", " ")
    return " ".join(text.split())


def check_label(raw: object, where: str = "label") -> str:
    """The cleaned label (:func:`clean_label`); ``""`` for a blank one.

    Raises
    ------
    LabelError
        ``raw`` is not a string, held only control or format characters (NUL,
        zero-width spaces, direction marks), or is longer than :data:`MAX_LABEL_CHARS`
        once cleaned. The message starts with ``where``.
    """
    if not isinstance(raw, str):
        raise LabelError(f"{where}: a label must be a string, got {type(raw).__name__}")
    label = clean_label(raw)
    if not label and raw.strip():
        raise LabelError(f"{where}: {raw[:40]!r} is empty once control and format "
                         "characters (NUL, zero-width, direction marks) are removed")
    if len(label) > MAX_LABEL_CHARS:
        raise LabelError(f"{where}: label of {len(label)} characters is longer than "
                         f"{MAX_LABEL_CHARS}; a label names a kind of thing")
    return label


def unique_labels(labels: list[str], where: str = "label") -> list[str]:
    """Clean labels (:func:`check_label`), drop blank ones and case-insensitive
    duplicates, keep first order."""
    seen: set[str] = set()
    out = []
    for k, raw in enumerate(labels):
        label = check_label(raw, f"{where} {k + 1}")
        if label and label.casefold() not in seen:
            seen.add(label.casefold())
            out.append(label)
    return out


def read_labels(path: str | os.PathLike[str]) -> list[str]:
    """Labels from a text file: one per line; blank lines and lines starting with ``#``
    are skipped.

    Parameters
    ----------
    path : str or os.PathLike
        A UTF-8 text file.

    Returns
    -------
    list of str
        The cleaned labels, without case-insensitive repeats, in file order.

    Raises
    ------
    LabelError
        The file is missing or unreadable, a label is invalid, or there is none.
    """
    try:
        text = Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise LabelError(f"labels file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(f"cannot read labels file {path}: {exc}") from None
    lines = text.splitlines()
    labels = unique_labels([check_label(ln, f"{path}: line {i + 1}")
                            for i, ln in enumerate(lines) if not ln.lstrip().startswith("#")])
    if not labels:
        raise LabelError(f"{path}: no labels (one label per line expected)")
    return labels


def read_groups(path: str | os.PathLike[str]) -> list[list[str]]:
    """Label groups from JSON: ``kec scaffold``'s ``{"groups": [{"labels": [...]}, ...]}``
    or a plain list of label lists.

    Parameters
    ----------
    path : str or os.PathLike
        A JSON groups file.

    Returns
    -------
    list of list of str
        One list of labels per group, in file order.

    Raises
    ------
    LabelError
        The file is missing, not JSON, or not a list of groups of strings.
    """
    try:
        data: Any = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise LabelError(f"groups file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise LabelError(f"{path}: not a JSON groups file: {exc}") from None
    if isinstance(data, dict) and data.get("kind") == "kec.groups":
        problems = groups_errors(data)
        if problems:
            raise LabelError(f"{path}: not a valid kec groups file: " + "; ".join(problems[:5]))
    items = data.get("groups") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise LabelError(f"{path}: expected a list of groups or {{'groups': [...]}}")
    groups = []
    for i, g in enumerate(items):
        labels = g.get("labels") if isinstance(g, dict) else g
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise LabelError(f"{path}: $.groups[{i}] must be a list of strings or "
                             "an object with 'labels'")
        cleaned = unique_labels(labels, where=f"{path}: $.groups[{i}] label")
        if cleaned:
            groups.append(cleaned)
    if not groups:
        raise LabelError(f"{path}: no non-empty label groups")
    return groups


def groups_errors(doc: Any) -> list[str]:
    """Where ``doc`` breaks ``kec/schemas/groups.schema.json`` (empty when valid)."""
    from importlib.resources import files

    from jsonschema import Draft202012Validator

    schema = json.loads(files("kec.schemas").joinpath("groups.schema.json").read_text("utf-8"))
    return [f"$.{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
            for e in Draft202012Validator(schema).iter_errors(doc)]


def labels_sha256(obj: Any) -> str:
    """Hash of the canonical JSON of a label list or a list of groups."""
    return sha256_text(canonical_json(obj))
