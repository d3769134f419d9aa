"""Knowledge construction: labels -> concepts, attributes and pairs, in a validated file."""

from kec.knowledge.builder import BuildParams, KnowledgeBuilder
from kec.knowledge.document import (
    concept_id,
    diff_knowledge,
    load_knowledge,
    merge_knowledge,
    save_knowledge,
    summarize,
    validate_knowledge,
    validation_errors,
)
from kec.knowledge.labels import read_groups, read_labels

__all__ = [
    "BuildParams",
    "KnowledgeBuilder",
    "concept_id",
    "diff_knowledge",
    "load_knowledge",
    "merge_knowledge",
    "read_groups",
    "read_labels",
    "save_knowledge",
    "summarize",
    "validate_knowledge",
    "validation_errors",
]
