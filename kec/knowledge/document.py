"""The knowledge file: validation (schema + semantics), deterministic I/O, merge and diff."""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from kec._io import canonical_json, dump_json, sha256_text, write_json
from kec._version import __version__
from kec.errors import InputNotFoundError, InvalidKnowledgeError, KecError
from kec.knowledge.text import printable
from kec.schemas import knowledge_schema

SCHEMA_VERSION = "1.0"
KIND = "kec.knowledge"
GROUPS_KIND = "kec.groups"
MAX_DEPTH = 64  # a knowledge file nests about 6 levels; anything deeper is not one


def concept_id(labels: Iterable[str]) -> str:
    """Stable id of the concept condensed from ``labels`` (order-insensitive).

    Parameters
    ----------
    labels : iterable of str
        The labels the concept condenses.

    Returns
    -------
    str
        ``"c-"`` and the first 10 hex digits of the SHA-256 of the sorted labels' JSON.

    Examples
    --------
    >>> from kec.knowledge.document import concept_id
    >>> concept_id(["cat", "kitten"]) == concept_id(["kitten", "cat"])
    True
    """
    return "c-" + sha256_text(canonical_json(sorted(labels)))[:10]


def now_iso() -> str:
    """The current UTC time to the second, ISO 8601 with ``Z``
    (``"2026-01-31T12:00:00Z"``)."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@cache
def _validator() -> Draft202012Validator:
    schema = knowledge_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def json_path(parts: Iterable[Any]) -> str:
    """A JSON path from keys and indices: ``["concepts", 2, "name"]`` →
    ``"$.concepts[2].name"``."""
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def nesting_depth(obj: Any, limit: int = MAX_DEPTH) -> int:
    """Depth of nested lists/dicts in ``obj`` (a scalar is 0), counted without recursion
    and up to ``limit + 1`` (deeper is not counted further)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (list, dict)):
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                return deepest
            stack.extend((v, depth) for v in (node.values() if isinstance(node, dict)
                                              else node))
    return deepest


def kind_problem(doc: Any) -> str | None:
    """Why ``doc`` is clearly not a knowledge file (another kec file, not an object),
    or ``None``."""
    if isinstance(doc, dict) and (doc.get("kind") == GROUPS_KIND
                                  or ("groups" in doc and "concepts" not in doc)):
        return ("this is a label groups file (from `kec scaffold`), not a knowledge "
                "file; build knowledge from it with `kec knowledge build --groups FILE`")
    if isinstance(doc, list) and doc and all(isinstance(g, list) for g in doc):
        return ("this looks like a list of label groups, not a knowledge file; build "
                "knowledge from it with `kec knowledge build --groups FILE`")
    if isinstance(doc, dict) and isinstance(doc.get("kind"), str) and doc["kind"] != KIND:
        return f"this is a '{doc['kind']}' file, not a knowledge file ('{KIND}')"
    return None


def validation_errors(doc: Any) -> list[tuple[str, str]]:
    """All problems of ``doc`` as ``(json_path, message)``: schema first, then the semantic
    rules the schema cannot express (unique ids, pairs point at existing concepts,
    no self-pairs or duplicate pairs, no blank names, no control characters in names,
    descriptions, labels, attributes or captions). Another kind of kec file, or a
    document nested deeper than :data:`MAX_DEPTH`, gives one error and no more.

    Parameters
    ----------
    doc : object
        A decoded knowledge document.

    Returns
    -------
    list of (str, str)
        ``(json_path, message)`` per problem; empty when ``doc`` is valid.
    """
    problem = kind_problem(doc)
    if problem is not None:
        return [("$", problem)]
    if nesting_depth(doc) > MAX_DEPTH:
        return [("$", f"nested more than {MAX_DEPTH} levels deep; a knowledge file "
                      "nests about 6")]
    errors = [
        (json_path(e.absolute_path), e.message)
        for e in sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.path)))
    ]
    if not isinstance(doc, dict):
        return errors
    concepts = doc.get("concepts") if isinstance(doc.get("concepts"), list) else []
    ids: dict[str, int] = {}
    errors += _concept_errors(concepts, ids)
    pairs = doc.get("pairs") if isinstance(doc.get("pairs"), list) else []
    errors += _pair_errors(pairs, ids)
    return errors


def _concept_errors(concepts: list[Any], ids: dict[str, int]) -> list[tuple[str, str]]:
    """Duplicate ids, blank names and control characters of ``concepts``; fills ``ids``."""
    errors: list[tuple[str, str]] = []
    for i, c in enumerate(concepts):
        if not isinstance(c, dict):
            continue
        cid = c.get("id")
        if isinstance(cid, str):
            if cid in ids:
                errors.append((f"$.concepts[{i}].id",
                               f"duplicate concept id '{cid}' (first at $.concepts[{ids[cid]}])"))
            else:
                ids[cid] = i
        name = c.get("name")
        if isinstance(name, str) and name and not name.strip():
            errors.append((f"$.concepts[{i}].name", "name is blank"))
        errors += _control_errors(c, f"$.concepts[{i}]",
                                  ("name", "description", "labels", "attributes", "captions"))
    return errors


def _pair_errors(pairs: list[Any], ids: dict[str, int]) -> list[tuple[str, str]]:
    """Unknown ids, self-pairs, control characters and duplicates of ``pairs``."""
    errors: list[tuple[str, str]] = []
    seen_pairs: dict[tuple[str, str], int] = {}
    for i, p in enumerate(pairs):
        if not isinstance(p, dict):
            continue
        a, b = p.get("a"), p.get("b")
        for key, ref in (("a", a), ("b", b)):
            if isinstance(ref, str) and ref not in ids:
                errors.append((f"$.pairs[{i}].{key}", f"unknown concept id '{ref}'"))
        if isinstance(a, str) and a == b:
            errors.append((f"$.pairs[{i}]", f"pairs concept '{a}' with itself"))
        errors += _control_errors(p, f"$.pairs[{i}]", ("attributes",))
        if isinstance(a, str) and isinstance(b, str):
            key2 = (min(a, b), max(a, b))
            if key2 in seen_pairs:
                errors.append((f"$.pairs[{i}]", f"duplicate pair (first at "
                                                f"$.pairs[{seen_pairs[key2]}])"))
            else:
                seen_pairs[key2] = i
    return errors


def _control_char(text: str) -> int | None:
    """Index of the first control character or line/paragraph separator, or ``None``."""
    for k, ch in enumerate(text):
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            return k
    return None


def _control_errors(obj: dict[str, Any], base: str, keys: Iterable[str]
                    ) -> list[tuple[str, str]]:
    """A name, label or attribute is one line of printable text: a newline forges lines
    and an ESC sequence drives the terminal of whoever prints it."""
    errors = []
    for key in keys:
        value = obj.get(key)
        items = value if isinstance(value, list) else []
        texts = [(f"{base}.{key}", value)] if isinstance(value, str) else [
            (f"{base}.{key}[{k}]", t) for k, t in enumerate(items) if isinstance(t, str)]
        for path, text in texts:
            k = _control_char(text)
            if k is not None:
                errors.append((path, f"holds a control character (U+{ord(text[k]):04X} at "
                                     f"position {k}); texts must be one line of printable "
                                     "text"))
    return errors


def validate_knowledge(doc: Any, source: str = "<knowledge>") -> None:
    """Check ``doc`` against the schema and the semantic rules.

    Parameters
    ----------
    doc : object
        A decoded knowledge document.
    source : str, default "<knowledge>"
        Name of the file or input, used in the error message.

    Raises
    ------
    InvalidKnowledgeError
        With every problem :func:`validation_errors` found, as ``(json_path, message)``.
    """
    errors = validation_errors(doc)
    if errors:
        raise InvalidKnowledgeError(source, errors)


def read_knowledge_json(path: str | os.PathLike[str]) -> Any:
    """The decoded JSON of a knowledge file, not yet validated.

    Raises
    ------
    InputNotFoundError
        The file does not exist.
    KecError
        It cannot be read as UTF-8 text.
    InvalidKnowledgeError
        It is not JSON, or nests deeper than ``MAX_DEPTH`` levels.
    """
    try:
        text = Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise InputNotFoundError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KecError(f"{path}: cannot read: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidKnowledgeError(str(path), [("$", f"not valid JSON: {exc}")]) from None
    except RecursionError:
        raise InvalidKnowledgeError(str(path), [
            ("$", f"JSON nested too deeply to read (more than {MAX_DEPTH} levels is not a "
                  "knowledge file)")]) from None


def load_knowledge(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a knowledge file.

    Parameters
    ----------
    path : str or os.PathLike
        A ``*.knowledge.json`` file.

    Returns
    -------
    dict
        The document, as stored.

    Raises
    ------
    InvalidKnowledgeError
        Not JSON, or not a valid knowledge document (every problem listed).
    InputNotFoundError
        The file does not exist.
    """
    doc = read_knowledge_json(path)
    validate_knowledge(doc, str(path))
    return doc


def canonicalize(doc: dict[str, Any]) -> dict[str, Any]:
    """Stable ordering so that files diff cleanly: concepts by id, pairs by (a, b)."""
    out = dict(doc)
    out["concepts"] = sorted(doc["concepts"], key=lambda c: c["id"])
    pairs = []
    for p in doc["pairs"]:
        p = dict(p)
        if p["a"] > p["b"]:
            p["a"], p["b"] = p["b"], p["a"]
        pairs.append(p)
    out["pairs"] = sorted(pairs, key=lambda p: (p["a"], p["b"]))
    return out


def dumps_knowledge(doc: dict[str, Any]) -> str:
    """The text :func:`save_knowledge` would write: :func:`canonicalize`'d, sorted keys,
    2-space indent, trailing newline (not validated)."""
    return dump_json(canonicalize(doc))


def save_knowledge(doc: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Validate, order deterministically and write atomically.

    Parameters
    ----------
    doc : dict
        A knowledge document.
    path : str or os.PathLike
        Where to write it (replaced atomically).

    Raises
    ------
    InvalidKnowledgeError
        ``doc`` is not valid; nothing is written.
    """
    doc = canonicalize(doc)
    validate_knowledge(doc, str(path))
    write_json(path, doc)


def _union(a: list[str], b: list[str]) -> list[str]:
    seen = {x.casefold() for x in a}
    return a + [x for x in b if x.casefold() not in seen and not seen.add(x.casefold())]


def merge_knowledge(docs: list[dict[str, Any]], sources: list[str] | None = None
                    ) -> dict[str, Any]:
    """Union of knowledge files.

    Concepts with the same id (same labels) keep the first file's name and description
    (unless that one is a WordNet fallback and a later one is not) and the union of
    attributes and captions; pairs keep the union of their attributes. Each input's
    provenance is kept under ``provenance.merged_from``; usage is summed.

    Parameters
    ----------
    docs : list of dict
        Valid knowledge documents.
    sources : list of str, optional
        Their names in ``merged_from`` (default ``"input 0"``, ``"input 1"``...).

    Returns
    -------
    dict
        The merged document, :func:`canonicalize`'d.

    Raises
    ------
    KecError
        ``docs`` is empty.
    """
    if not docs:
        raise KecError("nothing to merge")
    sources = sources or [f"input {i}" for i in range(len(docs))]
    concepts: dict[str, dict[str, Any]] = {}
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    labels: list[str] = []
    for doc in docs:
        labels = _union(labels, doc["labels"].get("items") or [])
        for c in doc["concepts"]:
            if c["id"] in concepts:
                known = concepts[c["id"]]
                known["attributes"] = _union(known["attributes"], c["attributes"])
                if c.get("captions"):
                    known["captions"] = _union(known.get("captions", []), c["captions"])
                if known.get("fallback") and not c.get("fallback"):
                    known.update(name=c["name"], description=c["description"])
                    known.pop("fallback", None)
            else:
                concepts[c["id"]] = json.loads(json.dumps(c))
        for p in doc["pairs"]:
            key = (min(p["a"], p["b"]), max(p["a"], p["b"]))
            if key in pairs:
                pairs[key]["attributes"] = _union(pairs[key]["attributes"], p["attributes"])
            else:
                pairs[key] = {**p, "a": key[0], "b": key[1]}
    usage_keys = ("calls", "cached_calls", "repairs", "prompt_tokens", "completion_tokens")
    first = docs[0]["provenance"]
    merged = {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "labels": {"source": "merge", "sha256": sha256_text(canonical_json(labels)),
                   "count": len(labels), "items": labels},
        "concepts": list(concepts.values()),
        "pairs": list(pairs.values()),
        "provenance": {
            "kec_version": __version__,
            "created_at": now_iso(),
            "backend": first["backend"],
            "prompts": sorted({canonical_json(p): p for d in docs
                               for p in d["provenance"]["prompts"]}.values(),
                              key=lambda p: (p["id"], p["version"], p["sha256"])),
            "sampling": first["sampling"],
            "usage": {k: sum(int(d["provenance"]["usage"].get(k, 0)) for d in docs)
                      for k in usage_keys},
            "failures": [f for d in docs for f in d["provenance"]["failures"]],
            "fallbacks": [f for d in docs for f in d["provenance"].get("fallbacks") or []],
            "merged_from": [{"source": s, **d["provenance"]} for s, d in zip(sources, docs)],
        },
    }
    kinds = {d["provenance"].get("kind", "images") for d in docs}
    if len(kinds) == 1 and any("kind" in d["provenance"] for d in docs):
        merged["provenance"]["kind"] = kinds.pop()  # mixed kinds: none recorded
    return canonicalize(merged)


def _diff_lists(x: list[str], y: list[str], what: str) -> list[str]:
    return ([f"- {what}: {t!r}" for t in x if t not in y]
            + [f"+ {what}: {t!r}" for t in y if t not in x])


def _diff_concepts(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    ca = {c["id"]: c for c in a["concepts"]}
    cb = {c["id"]: c for c in b["concepts"]}
    lines = [f"- concept {cid} {ca[cid]['name']!r}" for cid in sorted(ca.keys() - cb.keys())]
    lines += [f"+ concept {cid} {cb[cid]['name']!r}" for cid in sorted(cb.keys() - ca.keys())]
    for cid in sorted(ca.keys() & cb.keys()):
        x, y = ca[cid], cb[cid]
        lines += [f"~ concept {cid} {f}: {x[f]!r} -> {y[f]!r}"
                  for f in ("name", "description") if x[f] != y[f]]
        if sorted(x["labels"]) != sorted(y["labels"]):
            lines.append(f"~ concept {cid} labels: {x['labels']} -> {y['labels']}")
        lines += _diff_lists(x["attributes"], y["attributes"], f"attribute {cid}")
    return lines


def _diff_pairs(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    def pair_map(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(min(p["a"], p["b"]), max(p["a"], p["b"])): p for p in doc["pairs"]}

    pa, pb = pair_map(a), pair_map(b)
    lines = [f"- pair {k[0]}|{k[1]}" for k in sorted(pa.keys() - pb.keys())]
    lines += [f"+ pair {k[0]}|{k[1]}" for k in sorted(pb.keys() - pa.keys())]
    for k in sorted(pa.keys() & pb.keys()):
        x, y = pa[k], pb[k]
        if abs(x["similarity"] - y["similarity"]) > 1e-6:
            lines.append(f"~ pair {k[0]}|{k[1]} similarity: {x['similarity']:.4f} -> "
                         f"{y['similarity']:.4f}")
        lines += _diff_lists(x["attributes"], y["attributes"], f"pair attribute {k[0]}|{k[1]}")
    return lines


def diff_knowledge(a: dict[str, Any], b: dict[str, Any], provenance: bool = False) -> list[str]:
    """Human-readable differences between two knowledge files.

    Parameters
    ----------
    a, b : dict
        Knowledge documents (``a`` is the old one).
    provenance : bool, default False
        Also compare the backend, prompts, sampling, seed, parameters and text encoder.

    Returns
    -------
    list of str
        One line per difference (``-`` only in ``a``, ``+`` only in ``b``, ``~``
        changed); empty when both hold the same knowledge.
    """
    lines = _diff_concepts(a, b) + _diff_pairs(a, b)
    if provenance:
        keys = ("backend", "prompts", "kind", "sampling", "seed", "parameters",
                "text_encoder")
        for key in keys:
            va, vb = a["provenance"].get(key), b["provenance"].get(key)
            if canonical_json(va) != canonical_json(vb):
                lines.append(f"~ provenance.{key}: {canonical_json(va)} -> {canonical_json(vb)}")
    return lines


def _grouping_note(grouping: Any) -> str:
    if not isinstance(grouping, dict) or not grouping.get("method"):
        return ""
    links = grouping.get("links")
    n = f", {len(links)} links" if isinstance(links, list) else ""
    return f" (grouped by {grouping['method']}{n})"


_FILLED = {"wordnet": "filled from WordNet", "label": "named by its label",
           "none": "left empty"}


def record_line(rec: dict[str, Any], kind: str = "failed") -> str:
    """One short, printable line for a failure or fallback record of the provenance:
    ``fallback: condense sunflower, daisy: a placeholder description after 3
    attempt(s) -> filled from WordNet``. The raw answer stays in the file."""
    labels = ", ".join(str(x) for x in rec.get("labels") or []) or str(rec.get("item", ""))
    if len(labels) > 60:
        labels = labels[:57] + "..."
    reason = str(rec.get("reason") or str(rec.get("error", "")).strip().split("\n")[0])
    if len(reason) > 120:
        reason = reason[:117] + "..."
    filled = _FILLED.get(str(rec.get("fallback")), "")
    return printable(f"{kind}: {rec.get('prompt')} {labels}: {reason} after "
                     f"{rec.get('attempts')} attempt(s)" + (f" -> {filled}" if filled else ""))


def summarize(doc: dict[str, Any], max_items: int | None = None) -> str:
    """A plain-text view of a knowledge file for ``kec knowledge show``: one line per
    entry, every text escaped (:func:`kec.knowledge.text.printable`), so a name holding
    a newline or a terminal escape sequence prints as ``\\n`` or ``\\x1b``.

    Parameters
    ----------
    doc : dict
        A valid knowledge document.
    max_items : int, optional
        Show at most this many concepts and pairs (default: all).

    Returns
    -------
    str
        The text, lines joined by newlines.
    """
    prov = doc["provenance"]
    names = {c["id"]: c["name"] for c in doc["concepts"]}
    usage = prov["usage"]
    backend = prov["backend"]
    fallbacks = prov.get("fallbacks") or []
    out = [
        f"kec knowledge (schema {doc['schema_version']}, kec {prov['kec_version']}, "
        f"created {prov['created_at']})",
        f"backend: {backend.get('backend')} / {backend.get('model')}",
        f"labels: {doc['labels']['count']} from {doc['labels']['source']}"
        + _grouping_note(prov.get("grouping")),
        f"concepts: {len(doc['concepts'])}   pairs: {len(doc['pairs'])}   "
        f"failures: {len(prov['failures'])}   fallbacks: {len(fallbacks)}",
        f"LLM calls: {usage['calls']} (+{usage['cached_calls']} cached), "
        f"tokens: {usage['prompt_tokens']} prompt / {usage['completion_tokens']} completion",
        "",
    ]
    concepts = doc["concepts"][:max_items] if max_items else doc["concepts"]
    for c in concepts:
        flag = "  [fallback]" if c.get("fallback") else ""
        out.append(f"{c['id']}  {c['name']}{flag}")
        if c["description"]:
            out.append(f"    {c['description']}")
        out.append(f"    labels: {', '.join(c['labels'])}")
        for att in c["attributes"]:
            out.append(f"    + {att}")
        for cap in c.get("captions", []):
            out.append(f"    \u201c{cap}\u201d")
    if max_items and len(doc["concepts"]) > max_items:
        out.append(f"... {len(doc['concepts']) - max_items} more concepts")
    if doc["pairs"]:
        out.append("")
        out.append("pairs:")
    pairs = doc["pairs"][:max_items] if max_items else doc["pairs"]
    for p in pairs:
        out.append(f"  {names.get(p['a'], p['a'])} vs {names.get(p['b'], p['b'])} "
                   f"(similarity {p['similarity']:.3f})")
        for att in p["attributes"]:
            out.append(f"    + {att}")
    for title, records, kind in (("failures:", prov["failures"], "failed"),
                                 ("fallbacks:", fallbacks, "fallback")):
        if records:
            out += ["", title] + [f"  {record_line(r, kind)}" for r in records]
    return "\n".join(printable(line) for line in out)


__all__ = [
    "KIND",
    "SCHEMA_VERSION",
    "canonicalize",
    "concept_id",
    "diff_knowledge",
    "dumps_knowledge",
    "load_knowledge",
    "merge_knowledge",
    "record_line",
    "save_knowledge",
    "summarize",
    "validate_knowledge",
    "validation_errors",
]
