"""``kec.make_knowledge``: a knowledge document written by hand, no LLM, valid against
the schema, so ``fit(X, knowledge=kec.make_knowledge(...))``, ``kec cluster`` (once
saved) and ``kec knowledge lint`` take it like a built one.

>>> import kec
>>> doc = kec.make_knowledge({"cat": ["pointed ears", "whiskers"],
...                           "dog": ["floppy ears"]},
...                          pairs={("cat", "dog"): ["cats have slit pupils"]})
>>> [c["name"] for c in doc["concepts"]], doc["provenance"]["backend"]["backend"]
(['cat', 'dog'], 'hand-written')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kec.errors import KecError


def make_knowledge(
    concepts: Mapping[str, Sequence[str]],
    *,
    pairs: Mapping[tuple[str, str], Sequence[str]] | None = None,
    labels: Mapping[str, Sequence[str]] | None = None,
    descriptions: Mapping[str, str] | None = None,
    captions: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """A knowledge document from concepts and their attributes.

    Parameters
    ----------
    concepts : mapping
        Concept name -> its attributes (uni-attributes, :math:`\\lambda_1` per concept).
    pairs : mapping, optional
        ``(name a, name b)`` -> the attributes that tell ``a`` from ``b``
        (bi-attributes).
    labels : mapping, optional
        Concept name -> the labels it condenses (default: the name itself).
    descriptions, captions : mapping, optional
        Concept name -> a one-line description / photo captions (``cae``'s caption
        corpus).

    Returns
    -------
    dict
        Valid against ``knowledge.schema.json``; its provenance says
        ``backend: hand-written`` and zero LLM calls.

    Raises
    ------
    KecError
        No concepts, a pair or mapping that names an unknown concept, or a document the
        schema refuses (an empty name, a control character...).
    """
    from kec._version import __version__
    from kec.knowledge.document import concept_id, now_iso, validate_knowledge
    from kec.knowledge.labels import labels_sha256

    if not concepts:
        raise KecError("make_knowledge needs at least one concept")
    names = list(concepts)
    for what, mapping in (("labels", labels), ("descriptions", descriptions),
                          ("captions", captions)):
        unknown = sorted(set(mapping or {}) - set(names))
        if unknown:
            raise KecError(f"make_knowledge: {what} name unknown concepts {unknown}")
    label_of = {n: list((labels or {}).get(n) or [n]) for n in names}
    ids = {n: concept_id(label_of[n]) for n in names}
    entries = []
    for n in names:
        entry: dict[str, Any] = {"id": ids[n], "name": n,
                                 "description": (descriptions or {}).get(n, ""),
                                 "labels": label_of[n], "attributes": list(concepts[n])}
        if captions and n in captions:
            entry["captions"] = list(captions[n])
        entries.append(entry)
    pair_list = []
    for (a, b), attributes in (pairs or {}).items():
        if a not in ids or b not in ids:
            raise KecError(f"make_knowledge: pair ({a!r}, {b!r}) names an unknown concept")
        pair_list.append({"a": ids[a], "b": ids[b], "similarity": 0.0,
                          "attributes": list(attributes)})
    all_labels = [x for n in names for x in label_of[n]]
    stamp = now_iso()
    doc = {
        "schema_version": "1.0",
        "kind": "kec.knowledge",
        "labels": {"source": "hand-written", "sha256": labels_sha256(all_labels),
                   "count": len(all_labels), "items": all_labels},
        "concepts": entries,
        "pairs": pair_list,
        "provenance": {
            "kec_version": __version__, "created_at": stamp,
            "backend": {"backend": "hand-written", "model": "none"}, "prompts": [],
            "sampling": {}, "usage": {"calls": 0, "cached_calls": 0, "repairs": 0,
                                      "prompt_tokens": 0,
                                      "completion_tokens": 0},
            "failures": [],
        },
    }
    validate_knowledge(doc, "make_knowledge")
    return doc


__all__ = ["make_knowledge"]
