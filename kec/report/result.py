"""Read a clustering result folder (``assignments.csv`` + ``summary.json``) for reporting.

``assignments.csv`` has a header with ``id``, ``cluster`` and optionally ``label``;
``summary.json`` holds parameters, metrics and per-cluster names, concepts and
attributes. The summary's layout is read leniently (a cluster list or a mapping, several
key spellings), so reports keep working as the clustering output grows.

Input paths in the summary (the feature file, the knowledge file) are stored as they were
typed, relative to wherever ``kec cluster`` ran. :meth:`ClusterResult.resolve_input` finds
them from anywhere: as absolute paths, relative to the result folder, to each folder above
it, or to the current folder; when several candidates exist the one whose SHA-256 matches
the summary wins. An input that cannot be found is reported, never silently dropped.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kec.errors import KecError

logger = logging.getLogger(__name__)

ASSIGNMENTS = "assignments.csv"
SUMMARY = "summary.json"
RESULT_KIND = "kec.cluster_result"
RESULT_VERSION = 1


def summary_errors(summary: Any) -> list[str]:
    """Where ``summary`` breaks ``kec/schemas/summary.schema.json`` (empty when valid)."""
    from importlib.resources import files

    from jsonschema import Draft202012Validator

    schema = json.loads(files("kec.schemas").joinpath("summary.schema.json")
                        .read_text("utf-8"))
    errors = Draft202012Validator(schema).iter_errors(summary)
    return [f"$.{'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in errors]


def write_result(
    folder: str | os.PathLike[str], *, ids: list[str], clusters: np.ndarray,
    labels: list[str] | None, summary: dict[str, Any],
) -> Path:
    """The one writer of a result folder: ``assignments.csv`` and ``summary.json``.

    ``summary`` gets ``kind``, ``version`` and ``kec_version`` when missing and must then
    match ``kec/schemas/summary.schema.json``; both files are written atomically.

    Raises
    ------
    ResultError
        ``summary`` does not match the schema, or the lengths disagree.
    """
    import io

    from kec import __version__
    from kec._io import atomic_write_text, write_json

    clusters = np.asarray(clusters, dtype=np.int64)
    if len(ids) != clusters.size or (labels is not None and len(labels) != clusters.size):
        raise ResultError(f"{len(ids)} ids, {clusters.size} assignments and "
                          f"{'no' if labels is None else len(labels)} labels disagree")
    summary = {"kind": RESULT_KIND, "version": RESULT_VERSION, "kec_version": __version__,
               **summary}
    problems = summary_errors(summary)
    if problems:
        raise ResultError("summary does not match summary.schema.json: "
                          + "; ".join(problems[:5]))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "cluster", "label"] if labels is not None else ["id", "cluster"])
    for i, item in enumerate(ids):
        w.writerow([item, int(clusters[i])] + ([labels[i]] if labels is not None else []))
    folder = Path(folder)
    atomic_write_text(folder / ASSIGNMENTS, buf.getvalue())
    write_json(folder / SUMMARY, summary)
    return folder


class ResultError(KecError):
    """A result folder is missing or malformed, or an input it names cannot be found."""


@dataclass
class InputRef:
    """Where an input named in ``summary.json`` was looked for and found.

    Attributes
    ----------
    key : str
        ``"features"``, ``"knowledge"``, ...
    recorded : str
        The path as the summary stores it.
    path : pathlib.Path or None
        The file found, or ``None``.
    tried : list of pathlib.Path
        Every candidate looked at, in order.
    sha256 : str or None
        The content hash the summary records, when it does.
    """

    key: str
    recorded: str
    path: Path | None
    tried: list[Path]
    sha256: str | None = None

    def missing_message(self, folder: Path) -> str:
        shown = ", ".join(str(p) for p in self.tried[:4])
        more = f" and {len(self.tried) - 4} more" if len(self.tried) > 4 else ""
        return (f"{folder / SUMMARY} names the {self.key} file {self.recorded!r}, which is "
                f"not found (looked at {shown}{more}); give --{self.key} PATH")


@dataclass
class ClusterInfo:
    """What a report shows about one cluster.

    Attributes
    ----------
    cluster : int
    size : int
    name : str or None
        The dominant concept (or an LLM-written name), when the clustering gave one.
    concepts : list of (str, float or None)
        Top concepts with their mean grounding weight.
    attributes : list of (str, float or None)
        Top attributes (explanations) with their weight.
    majority_label, majority_share : str or None, float or None
        Most common ground-truth label and its share of the cluster, when labels exist.
    """

    cluster: int
    size: int
    name: str | None = None
    concepts: list[tuple[str, float | None]] = field(default_factory=list)
    attributes: list[tuple[str, float | None]] = field(default_factory=list)
    majority_label: str | None = None
    majority_share: float | None = None

    @property
    def title(self) -> str:
        return self.name or f"cluster {self.cluster}"


@dataclass
class ClusterResult:
    """A loaded result folder."""

    folder: Path
    ids: list[str]
    clusters: np.ndarray
    labels: list[str] | None
    summary: dict[str, Any]
    info: dict[int, ClusterInfo]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def method(self) -> str:
        s = self.summary
        return str(s.get("method") or _get(s, "parameters", "method") or "unknown")

    @property
    def metrics(self) -> dict[str, float]:
        m = self.summary.get("metrics") or {}
        return {k: float(v) for k, v in m.items() if isinstance(v, (int, float))}

    def reference(self, key: str) -> str | None:
        """A path the summary records (``features``, ``knowledge``, ...), resolved as
        :meth:`resolve_input` does; the path as recorded when it is not found."""
        ref = self.resolve_input(key)
        if ref is None:
            return None
        return str(ref.path) if ref.path is not None else ref.recorded

    def resolve_input(self, key: str) -> InputRef | None:
        """Find the file the summary records under ``key``; ``None`` when it records none.

        Candidates, in order: the path itself when absolute; else the path joined to the
        result folder, to each folder above it (``kec cluster`` usually ran in one of them),
        and to the current folder. With one existing candidate it is taken; with several,
        the first whose SHA-256 matches the summary's (else the first).
        """
        value = _find_path(self.summary, key)
        if not value:
            return None
        sha = _find_sha(self.summary, key)
        p = Path(value).expanduser()
        if p.is_absolute():
            tried = [p]
        else:
            base = self.folder.absolute()
            tried = [base / p, *(a / p for a in base.parents), Path.cwd() / p]
            seen: set[Path] = set()
            tried = [t for t in tried if not (t in seen or seen.add(t))]
        found = [t for t in tried if t.is_file()]
        path = found[0] if found else None
        if len(found) > 1 and sha:
            from kec._io import sha256_file

            path = next((t for t in found if sha256_file(t) == sha), found[0])
        if path is not None and path != tried[0]:
            logger.info("%s file %r found at %s", key, value, path)
        return InputRef(key=key, recorded=value, path=path, tried=tried, sha256=sha)

    def cluster_ids(self) -> list[int]:
        """Clusters by decreasing size (ties by id)."""
        return sorted(self.info, key=lambda c: (-self.info[c].size, c))


def _get(obj: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def _find_path(summary: dict[str, Any], key: str) -> str | None:
    for where in ((key,), ("inputs", key), ("parameters", key), ("files", key),
                  ("inputs", f"{key}_path"), (f"{key}_path",)):
        value = _get(summary, *where)
        if isinstance(value, dict):
            value = value.get("path")
        if isinstance(value, str) and value:
            return value
    return None


def _find_sha(summary: dict[str, Any], key: str) -> str | None:
    for where in ((key,), ("inputs", key), ("parameters", key), ("files", key)):
        value = _get(summary, *where)
        if isinstance(value, dict) and isinstance(value.get("sha256"), str):
            return str(value["sha256"])
    return None


def _scored(items: Any) -> list[tuple[str, float | None]]:
    """``["a", ...]``, ``[["a", 0.3], ...]``, ``[{"name"|"text": "a", "weight": .3}]``."""
    out: list[tuple[str, float | None]] = []
    for item in items or []:
        if isinstance(item, str):
            out.append((item, None))
        elif isinstance(item, (list, tuple)) and item:
            w = item[1] if len(item) > 1 and isinstance(item[1], (int, float)) else None
            out.append((str(item[0]), w))
        elif isinstance(item, dict):
            text = next((item[k] for k in ("name", "text", "attribute", "concept", "label")
                         if isinstance(item.get(k), str)), None)
            w = next((item[k] for k in ("weight", "score", "mass", "share")
                      if isinstance(item.get(k), (int, float))), None)
            if text and isinstance(item.get("versus"), str):
                text = f"{text} (vs. {item['versus']})"
            if text:
                out.append((text, None if w is None else float(w)))
    return out


def _cluster_entries(summary: dict[str, Any]) -> dict[int, dict[str, Any]]:
    raw = summary.get("clusters")
    if raw is None:
        raw = summary.get("cluster_names")
    entries: dict[int, dict[str, Any]] = {}
    if isinstance(raw, dict):
        for key, value in raw.items():
            try:
                c = int(key)
            except (TypeError, ValueError):
                continue
            entries[c] = value if isinstance(value, dict) else {"name": value}
    elif isinstance(raw, list):
        for i, value in enumerate(raw):
            if isinstance(value, dict):
                c = value.get("cluster", value.get("id", i))
                entries[int(c)] = value
            elif isinstance(value, str):
                entries[i] = {"name": value}
    return entries


def read_assignments(path: str | os.PathLike[str]) -> tuple[list[str], np.ndarray,
                                                           list[str] | None]:
    """``(ids, clusters, labels)`` from an ``assignments.csv`` (labels ``None`` when the
    column is absent or empty)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ResultError(f"cannot read {path}: {exc}") from exc
    if not rows or "id" not in rows[0] or "cluster" not in rows[0]:
        raise ResultError(f"{path} needs a header with 'id' and 'cluster' and at least one row")
    try:
        clusters = np.asarray([int(r["cluster"]) for r in rows], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise ResultError(f"{path}: cluster column is not integer ({exc})") from exc
    labels = [r.get("label") or "" for r in rows]
    return [r["id"] for r in rows], clusters, labels if any(labels) else None


def load_result(folder: str | os.PathLike[str]) -> ClusterResult:
    """Load a result folder written by ``kec cluster`` (or ``kec bench``).

    Raises
    ------
    ResultError
        No ``assignments.csv``, or malformed files.
    """
    folder = Path(folder)
    if not (folder / ASSIGNMENTS).is_file():
        raise ResultError(f"{folder} holds no {ASSIGNMENTS}; is it a `kec cluster --out` folder?")
    ids, clusters, labels = read_assignments(folder / ASSIGNMENTS)
    summary: dict[str, Any] = {}
    if (folder / SUMMARY).is_file():
        try:
            summary = json.loads((folder / SUMMARY).read_text("utf-8"))
        except (OSError, json.JSONDecodeError, RecursionError) as exc:
            raise ResultError(f"cannot read {folder / SUMMARY}: {exc}") from exc
        if not isinstance(summary, dict):
            raise ResultError(f"{folder / SUMMARY} is not a JSON object")
        # kec's own summaries (kind kec.cluster_result) must match the schema; summaries
        # without a kind (hand-written, older) are read leniently as before
        kind = summary.get("kind")
        problems = (summary_errors(summary) if kind == RESULT_KIND else
                    [] if kind is None else [f"kind is {kind!r}, not {RESULT_KIND!r}"])
        if problems:
            raise ResultError(f"{folder / SUMMARY} is not a kec result summary: "
                              + "; ".join(problems[:5]))
    else:
        logger.warning("%s has no %s: no names, metrics or parameters", folder, SUMMARY)
    entries = _cluster_entries(summary)
    info: dict[int, ClusterInfo] = {}
    for c in np.unique(clusters).tolist():
        members = np.flatnonzero(clusters == c)
        e = entries.get(int(c), {})
        ci = ClusterInfo(cluster=int(c), size=len(members))
        name = e.get("name") or e.get("label") or e.get("title")
        ci.name = str(name) if name else None
        ci.concepts = _scored(e.get("top_concepts", e.get("concepts")))
        ci.attributes = _scored(e.get("top_attributes", e.get("attributes")))
        if ci.name is None and ci.concepts:
            ci.name = ci.concepts[0][0]
        if labels is not None:
            top, count = Counter(labels[i] for i in members).most_common(1)[0]
            ci.majority_label, ci.majority_share = top, count / len(members)
        info[int(c)] = ci
    return ClusterResult(folder=folder, ids=ids, clusters=clusters, labels=labels,
                         summary=summary, info=info)
