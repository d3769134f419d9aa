"""Text checks: copied schema text and document headings are placeholders (issue 17), and
the word lists are data, not an import of the prompt layer."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.resources import files

import pytest

from kec.knowledge.lint import lint_knowledge
from kec.knowledge.textcheck import (
    PLACEHOLDER,
    content_words,
    is_heading,
    is_schema_text,
    prompt_words,
    text_flags,
)
from tests.knowledge.docs import make_doc


@pytest.mark.parametrize("text", [
    "maxLength:200,minItems:1",
    '{"type": "array", "minItems": 1}',
    "additionalProperties false",
    "$ref to the concept",
    '"attributes": [',
    "Overview and Convention",
    "General Notes",
    "Introduction",
    "featured_2.com,the_worlds_largest_coral-reef,a_place_where_biodiversity thrives",
])
def test_schema_text_and_headings_are_placeholders(text):
    assert text_flags(text) == [PLACEHOLDER]


@pytest.mark.parametrize("text", [
    "striped pattern", "Colour: orange", "pointed ears", "long curved tail",
    "a small low car with a high-powered engine", "usually seats two persons",
    "work boots with thick soles", "a table of carved oak",
    "description: a photo of a car with an automatic transmission",
])
def test_real_traits_are_not(text):
    assert text_flags(text, ["cat"]) == []
    assert not is_schema_text(text) and not is_heading(text)


def test_lint_flags_what_passed_with_0_of_24_items_flagged():
    doc = make_doc({"cat": (["cat"], ["maxLength:200,minItems:1", "whiskers"]),
                    "dog": (["dog"], ["Overview and Convention", "floppy ears"]),
                    "note": (["note"], ["a musical sound of one pitch"])}, [])
    report = lint_knowledge(doc)
    flagged = {it.text: it.flags for it in report.flagged if it.kind == "attribute"}
    assert flagged == {"maxLength:200,minItems:1": ("placeholder",),
                       "Overview and Convention": ("placeholder",)}
    # a name that is one of its own labels is the user's word, never a placeholder
    assert not any(it.kind == "name" for it in report.flagged)


def test_the_word_lists_cover_every_built_in_prompt():
    """prompt_words is data: a template that gains a word must add it to the data file."""
    from kec.prompts import BUILTIN_PROMPTS, load_prompt

    used = {w for pid in BUILTIN_PROMPTS for m in load_prompt(pid).messages
            for w in content_words(re.sub(r"\{\{.*?\}\}", " ", m["content"]))}
    missing = sorted(used - prompt_words())
    assert not missing, f"add {missing} to prompt_words in kec/knowledge/data/textcheck.json"
    data = json.loads(files("kec.knowledge").joinpath("data", "textcheck.json").read_text())
    assert {"stopwords", "placeholders", "prompt_words", "schema_keywords",
            "heading_words"} <= set(data)


def test_linting_imports_no_prompt_layer():
    code = ("import sys\n"
            "from kec.knowledge.lint import lint_knowledge\n"
            "doc = {'concepts': [{'id': 'c-0', 'name': 'cat', 'description': '',\n"
            "        'labels': ['cat'], 'attributes': ['shape']}], 'pairs': []}\n"
            "assert lint_knowledge(doc).flagged\n"
            "print(sorted(m for m in sys.modules if m.startswith('kec.')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert "kec.prompts" not in out and "kec.backends" not in out
