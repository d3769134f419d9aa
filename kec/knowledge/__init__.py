"""Knowledge construction: labels -> concepts, attributes and pairs, in a validated file.

The builder (and through it :mod:`kec.backends`) is imported lazily, on first use of
``kec.knowledge.KnowledgeBuilder`` / ``BuildParams``: the pure modules
(:mod:`kec.knowledge.grouping`, :mod:`kec.knowledge.lint`, :mod:`kec.knowledge.document`,
...) can be imported without any LLM backend, torch or model.
"""

from __future__ import annotations

from kec._lazy import lazy_exports

_LAZY = {
    "BuildParams": "kec.knowledge.builder",
    "KnowledgeBuilder": "kec.knowledge.builder",
    "concept_id": "kec.knowledge.document",
    "diff_knowledge": "kec.knowledge.document",
    "load_knowledge": "kec.knowledge.document",
    "merge_knowledge": "kec.knowledge.document",
    "save_knowledge": "kec.knowledge.document",
    "summarize": "kec.knowledge.document",
    "validate_knowledge": "kec.knowledge.document",
    "validation_errors": "kec.knowledge.document",
    "read_groups": "kec.knowledge.labels",
    "read_labels": "kec.knowledge.labels",
    "drop_flagged": "kec.knowledge.lint",
    "lint_knowledge": "kec.knowledge.lint",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
