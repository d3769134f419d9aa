"""The LLM side of knowledge: build a knowledge document from labels with a language model.

:mod:`kec.llm.builder` (:class:`KnowledgeBuilder`, :class:`BuildParams`) runs the four
steps (condense labels, name and describe each concept, its attributes, its pairs) through
a backend of :mod:`kec.backends` with the templates of :mod:`kec.prompts`;
:mod:`kec.llm.build` is ``kec.build_knowledge`` (``kec knowledge build``). The builder's
helpers live here too: :mod:`kec.llm.condense` (which labels name one kind of thing:
WordNet plus text similarity), :mod:`kec.llm.answers` (semantic checks of the model's
answers) and :mod:`kec.llm.glosses` (WordNet's words when every answer failed).

What the document *is* -- schema, validation, lint, merge, diff, hand-written knowledge
-- lives in :mod:`kec.knowledge`, which never imports this package; clustering reads
documents and never loads it either (tests/test_layers.py). Names are imported on first
use, so ``import kec.llm`` loads no backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kec._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from kec.llm.build import build_knowledge
    from kec.llm.builder import BuildParams, KnowledgeBuilder

_LAZY = {
    "BuildParams": "kec.llm.builder",
    "KnowledgeBuilder": "kec.llm.builder",
    "build_knowledge": "kec.llm.build",
}

__all__ = ["BuildParams", "KnowledgeBuilder", "build_knowledge"]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
