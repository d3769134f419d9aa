"""Read a clustering result folder (``assignments.csv`` + ``summary.json``) for reporting.

``assignments.csv`` has a header with ``id``, ``cluster`` and optionally ``label``;
``summary.json`` holds parameters, metrics and per-cluster names, concepts and
attributes. The summary's layout is read leniently (a cluster list or a mapping, several
key spellings), so reports keep working as the clustering output grows.

Input paths in the summary (the feature file, the knowledge file) are stored relative to
the result folder (:func:`write_result`; older summaries hold them as they were typed), so
that a shared folder names no absolute local path. :meth:`ClusterResult.resolve_input`
finds them from anywhere: as absolute paths, relative to the result folder, to each folder
above it, or to the current folder; when several candidates exist the one whose SHA-256
matches the summary wins. An input that cannot be found is reported, never silently
dropped.

The two files are one run: :func:`write_result` writes both or neither (a failed write
leaves the old pair), and the summary records the SHA-256 of the ``assignments.csv`` it
describes, which :func:`load_result` checks, so that a folder holding the assignments of
one run and the summary of another is refused instead of reported with wrong names.

Spreadsheet safety: a cell of ``assignments.csv`` that a spreadsheet would run as a formula
(it starts with ``=``, ``+``, ``-``, ``@``, TAB or CR, as OWASP lists them) is written with
a leading ``'``; so is a cell that starts with ``'`` itself, so that
:func:`read_assignments` recovers every original value by removing that one quote.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kec.errors import InputNotFoundError, KecError

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


#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_QUOTE = "'"


def csv_cell(value: str) -> str:
    """``value`` safe for a spreadsheet: a leading ``'`` before a formula start
    (:data:`FORMULA_STARTS`) or before a ``'``; :func:`csv_value` undoes it."""
    return _QUOTE + value if value.startswith((*FORMULA_STARTS, _QUOTE)) else value


def csv_value(cell: str) -> str:
    """The value :func:`csv_cell` wrote as ``cell``."""
    if cell.startswith(_QUOTE) and cell[1:].startswith((*FORMULA_STARTS, _QUOTE)):
        return cell[1:]
    return cell


def _field(cell: str) -> str:
    """One CSV field as RFC 4180 quotes it: in double quotes (doubled inside) when it holds
    a comma, a quote, CR or LF. (:mod:`csv` with ``lineterminator="\\n"`` leaves a CR
    unquoted, which readers then take for the end of the row.)"""
    if any(c in cell for c in ',"\r\n'):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def assignments_csv(ids: list[str], clusters: np.ndarray, labels: list[str] | None) -> str:
    """The text of ``assignments.csv``: ``id,cluster[,label]``, LF line ends, cells made
    safe by :func:`csv_cell` and quoted by :func:`_field`."""
    rows = ["id,cluster,label" if labels is not None else "id,cluster"]
    for i, item in enumerate(ids):
        cells = [_field(csv_cell(str(item))), str(int(clusters[i]))]
        if labels is not None:
            cells.append(_field(csv_cell(str(labels[i]))))
        rows.append(",".join(cells))
    return "\n".join(rows) + "\n"


def portable_path(path: str, folder: Path) -> str:
    """``path`` relative to ``folder`` (POSIX separators), or its file name when no
    relative path exists (another drive): a result folder names no absolute path."""
    try:
        return Path(os.path.relpath(Path(path).absolute(), folder.absolute())).as_posix()
    except ValueError:
        return Path(path).name


def _portable_inputs(inputs: Any, folder: Path) -> Any:
    """``summary["inputs"]`` with every recorded file path made :func:`portable_path`."""
    if not isinstance(inputs, dict):
        return inputs
    out = {}
    for key, entry in inputs.items():
        if isinstance(entry, dict):
            entry = {k: portable_path(v, folder) if k in ("path", "from_knowledge")
                     and isinstance(v, str) and v else v for k, v in entry.items()}
        out[key] = entry
    return out


def write_result(
    folder: str | os.PathLike[str], *, ids: list[str], clusters: np.ndarray,
    labels: list[str] | None, summary: dict[str, Any],
) -> Path:
    """The one writer of a result folder: ``assignments.csv`` and ``summary.json``.

    ``summary`` gets ``kind``, ``version`` and ``kec_version`` when missing and must then
    match ``kec/schemas/summary.schema.json``. It also gets ``assignments``: the SHA-256
    and row count of the ``assignments.csv`` written with it, which :func:`load_result`
    checks. Its ``inputs`` paths are stored relative to ``folder``. Both files are written
    together (:func:`kec._io.atomic_write_files`): a failed write leaves the old pair.

    Raises
    ------
    ResultError
        ``summary`` does not match the schema, or the lengths disagree.
    """
    from kec._io import atomic_write_files, dump_json
    from kec._version import __version__

    folder = Path(folder)
    clusters = np.asarray(clusters, dtype=np.int64)
    if len(ids) != clusters.size or (labels is not None and len(labels) != clusters.size):
        raise ResultError(f"{len(ids)} ids, {clusters.size} assignments and "
                          f"{'no' if labels is None else len(labels)} labels disagree")
    table = assignments_csv(ids, clusters, labels).encode("utf-8")
    summary = {"kind": RESULT_KIND, "version": RESULT_VERSION, "kec_version": __version__,
               **summary,
               "assignments": {"file": ASSIGNMENTS, "rows": len(ids),
                               "sha256": hashlib.sha256(table).hexdigest()}}
    if "inputs" in summary:
        summary["inputs"] = _portable_inputs(summary["inputs"], folder)
    problems = summary_errors(summary)
    if problems:
        raise ResultError("summary does not match summary.schema.json: "
                          + "; ".join(problems[:5]))
    created = not folder.exists()
    try:
        atomic_write_files(folder, {ASSIGNMENTS: table,
                                    SUMMARY: dump_json(summary).encode("utf-8")})
    except BaseException:
        if created:  # leave no empty folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return folder


class ResultError(KecError):
    """A result folder is missing or malformed, or an input it names cannot be found."""


class MissingInputError(ResultError, InputNotFoundError):
    """An input file given to the report does not exist (also a ``FileNotFoundError``)."""


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
        found = [t for t in tried if is_input(t, key)]
        path = found[0] if found else None
        if len(found) > 1 and sha:
            from kec.features import feature_set_sha256

            path = next((t for t in found if feature_set_sha256(t) == sha), found[0])
        if path is not None and path != tried[0]:
            logger.info("%s file %r found at %s", key, value, path)
        return InputRef(key=key, recorded=value, path=path, tried=tried, sha256=sha)

    def cluster_ids(self) -> list[int]:
        """Clusters by decreasing size (ties by id)."""
        return sorted(self.info, key=lambda c: (-self.info[c].size, c))


def is_input(path: Path, key: str) -> bool:
    """Whether ``path`` can be the ``key`` input: a file, or for ``"features"`` also the
    folder of a sharded feature set (holding ``index.json``, :mod:`kec.feature_shards`)."""
    from kec.features import SHARD_INDEX

    if path.is_file():
        return True
    return key == "features" and (path / SHARD_INDEX).is_file()


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
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ResultError(f"cannot read {path}: {exc}") from exc
    if not rows or "id" not in rows[0] or "cluster" not in rows[0]:
        raise ResultError(f"{path} needs a header with 'id' and 'cluster' and at least one row")
    try:
        clusters = np.asarray([int(r["cluster"]) for r in rows], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise ResultError(f"{path}: cluster column is not integer ({exc})") from exc
    labels = [csv_value(r.get("label") or "") for r in rows]
    return [csv_value(r["id"] or "") for r in rows], clusters, labels if any(labels) else None


def _check_same_run(folder: Path, summary: dict[str, Any]) -> None:
    """Refuse an ``assignments.csv`` that is not the one ``summary`` was written with."""
    recorded = summary.get("assignments")
    if not isinstance(recorded, dict) or not isinstance(recorded.get("sha256"), str):
        return  # summaries older than the check, or hand-written ones
    from kec._io import sha256_file

    if sha256_file(folder / ASSIGNMENTS) != recorded["sha256"]:
        raise ResultError(f"{folder / ASSIGNMENTS} is not the one {folder / SUMMARY} "
                          "describes (another run wrote it, or it was edited): its SHA-256 "
                          "differs from the summary's; run kec cluster again into a fresh "
                          "--out folder")


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
        _check_same_run(folder, summary)
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
