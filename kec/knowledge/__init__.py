"""Knowledge documents: concepts, attributes and pairs in a validated file.

The pure document layer: schema and validation, load/save, merge and diff
(:mod:`kec.knowledge.document`), lint (:mod:`kec.knowledge.lint`, word lists in
``data/textcheck.json``), hand-written knowledge (:mod:`kec.knowledge.handwritten`),
labels and pair selection (:mod:`kec.knowledge.labels`, :mod:`kec.knowledge.grouping`).
None of it imports an LLM backend, a prompt, torch or a model. Building a document with
an LLM is :mod:`kec.llm` (``KnowledgeBuilder``, ``BuildParams``, ``build_knowledge``).
"""

from __future__ import annotations

from kec._lazy import lazy_exports

_LAZY = {
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
