"""Hand-written knowledge documents for tests (no LLM involved)."""

from __future__ import annotations

import copy
from typing import Any

from kec.knowledge.document import concept_id

_PROMPT = {"id": "condense", "version": "1", "sha256": "0" * 64}


def make_doc(concepts: dict[str, tuple[list[str], list[str]]] | None = None,
             pairs: list[tuple[str, str, list[str]]] | None = None) -> dict[str, Any]:
    """``concepts``: name -> (labels, attributes); ``pairs``: (name a, name b, attributes)."""
    concepts = concepts or {
        "cat": (["cat", "kitten"], ["pointed ears", "whiskers"]),
        "dog": (["dog", "puppy"], ["floppy ears"]),
        "truck": (["truck"], ["large cargo box"]),
    }
    pairs = pairs if pairs is not None else [("cat", "dog", ["cats have slit pupils"])]
    ids = {name: concept_id(labels) for name, (labels, _) in concepts.items()}
    labels = [x for labels, _ in concepts.values() for x in labels]
    return copy.deepcopy({
        "schema_version": "1.0",
        "kind": "kec.knowledge",
        "labels": {"source": "list", "sha256": "a" * 64, "count": len(labels), "items": labels},
        "concepts": [
            {"id": ids[n], "name": n, "description": f"a photo of a {n}", "labels": lab,
             "attributes": att}
            for n, (lab, att) in concepts.items()
        ],
        "pairs": [{"a": ids[a], "b": ids[b], "similarity": 0.5, "attributes": att}
                  for a, b, att in pairs],
        "provenance": {
            "kec_version": "0.1.0",
            "created_at": "2026-11-22T20:00:00Z",
            "backend": {"backend": "llamacpp", "model": "smollm2-135m-instruct"},
            "prompts": [_PROMPT],
            "sampling": {"temperature": 0.0, "max_tokens": 64, "top_p": 1.0, "seed": 0},
            "usage": {"calls": 5, "cached_calls": 0, "repairs": 0, "prompt_tokens": 10,
                      "completion_tokens": 20},
            "failures": [],
        },
    })
