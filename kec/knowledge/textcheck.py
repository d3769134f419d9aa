"""Text-only checks of LLM-written knowledge: placeholders, copies of the prompt, names.

Pure functions over strings, shared by the linter (:mod:`kec.knowledge.lint`) and by the
builder's answer validator (:mod:`kec.llm.answers`). Their word lists are data
(``data/textcheck.json``), read once. Small models copy what they
are shown: the letters a prompt uses for its concepts (``"A"``), the example words of a
system prompt (``"shape"``, ``"colour"``) or the concept's own name. None of these says
anything about how a concept looks.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from functools import cache
from importlib.resources import files

__all__ = [
    "PLACEHOLDER",
    "PROMPT_COPY",
    "REPEATS_NAME",
    "content_words",
    "is_heading",
    "is_placeholder",
    "is_prompt_copy",
    "is_schema_text",
    "prompt_words",
    "repeats_name",
    "stopwords",
    "text_flags",
    "words",
]

PLACEHOLDER = "placeholder"
PROMPT_COPY = "prompt_copy"
REPEATS_NAME = "repeats_name"

_WORD = re.compile(r"[^\W_]+")
# a token of schema text: letters, digits, $ and _ ("$ref", "maxLength", "json_schema")
_SCHEMA_TOKEN = re.compile(r"[$\w]+")


@cache
def _lists() -> dict[str, frozenset[str]]:
    """The word lists of ``data/textcheck.json`` (data, not code: no import of the
    prompt layer at run time)."""
    raw = json.loads(files("kec.knowledge").joinpath("data", "textcheck.json")
                     .read_text("utf-8"))
    return {k: frozenset(v) for k, v in raw.items() if isinstance(v, list)}


def stopwords() -> frozenset[str]:
    """Function words: never content, whatever the text."""
    return _lists()["stopwords"]


_LETTER_NAME = re.compile(
    r"^(?:(?:concept|class|category|label|item|object|attribute|option|thing|type|image|"
    r"photo)\s+)?(?:[a-z]|\d+)$"
)
# an identifier or file name ("part_type", "description_1.jpg"), not a phrase
_IDENTIFIER = re.compile(r"^[^\W_]+(?:[_.][^\W_]+)+$")
# a snake_case token anywhere ("the_worlds_largest"): code, not prose
_SNAKE = re.compile(r"[^\W_]_[^\W_]")
# code or markup leaking from the answer format ("]} ```python", "<attribute>")
_MARKUP = re.compile(r"```|[{}\[\]<>]")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def words(text: str) -> list[str]:
    """Lower-case word tokens (letters and digits) of ``text``, NFKC-folded."""
    return _WORD.findall(_fold(text))


def _stem(word: str) -> str:
    """A crude singular: ``cats -> cat``, ``boxes -> box``, ``puppies -> puppy``."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def content_words(text: str) -> set[str]:
    """Stemmed words of ``text`` minus function words."""
    stop = stopwords()
    return {_stem(w) for w in words(text) if w not in stop}


def prompt_words() -> frozenset[str]:
    """Content words of kec's prompt templates, all shipped versions (``prompt_words``
    of ``data/textcheck.json``)."""
    return _lists()["prompt_words"]


def is_schema_text(text: str) -> bool:
    """Text copied from a JSON Schema: a schema keyword no prose uses
    (``maxLength:200,minItems:1``, ``$ref``, ``additionalProperties``). A format key
    before real content (``description: a striped cat``) is not flagged."""
    keywords = {k.casefold() for k in _lists()["schema_keywords"]}
    return any(tok.casefold() in keywords for tok in _SCHEMA_TOKEN.findall(text))


def is_heading(text: str) -> bool:
    """Every content word is a generic document-heading word (``"Overview and
    Convention"``, ``"General notes"``, ``"Introduction"``): a section title, not a
    trait."""
    cw = content_words(text)
    return bool(cw) and cw <= {_stem(w) for w in _lists()["heading_words"]}


def is_placeholder(text: str) -> bool:
    """An empty, one-letter, ellipsis or "something goes here" answer (``"A"``,
    ``"concept B"``, ``"..."``, ``"N/A"``, ``"attribute"``), an identifier or file name
    (``"part_type"``, ``"description_1.jpg"``, a ``snake_case`` word anywhere), code
    (``"]} ```python"``), schema text (:func:`is_schema_text`) or a document heading
    (:func:`is_heading`)."""
    toks = words(text)
    if not toks:
        return True  # only punctuation: "...", "-", "?"
    stripped = text.strip()
    if (_IDENTIFIER.match(stripped) or _MARKUP.search(stripped) or _SNAKE.search(stripped)
            or is_schema_text(stripped)):
        return True
    joined = " ".join(toks)
    return (len("".join(toks)) <= 1 or joined in _lists()["placeholders"]
            or bool(_LETTER_NAME.match(joined)) or is_heading(stripped))


def is_prompt_copy(text: str, extra: Iterable[str] = ()) -> bool:
    """Every content word of ``text`` comes from the prompt (``"shape"``, ``"colour"``,
    ``"visual appearance"``): a copy of the instructions, not knowledge."""
    cw = content_words(text)
    vocab = prompt_words() | {_stem(w) for t in extra for w in words(t)}
    return bool(cw) and cw <= vocab


def repeats_name(text: str, names: Iterable[str]) -> bool:
    """``text`` only repeats the names given (the concept's name and labels), e.g.
    ``"cats"`` or ``"a cat"`` for the concept *cat*."""
    cw = content_words(text)
    own = {w for n in names for w in content_words(n)}
    return bool(cw) and cw <= own


def text_flags(text: str, names: Iterable[str] = ()) -> list[str]:
    """The text-only flags of one answer (at most one: the most telling).

    ``placeholder`` (see :func:`is_placeholder`); else, when every content word comes
    from ``names`` or the prompt, ``repeats_name`` if one of them is a name word
    (``"cat"``, ``"cat colour"`` for the concept *cat*) and ``prompt_copy`` if none is
    (``"shape"``, ``"colour"``).
    """
    if is_placeholder(text):
        return [PLACEHOLDER]
    folded = " ".join(words(text))
    if any(phrase in folded for phrase in _lists()["prompt_phrases"]):
        return [PROMPT_COPY]
    cw = content_words(text)
    own = {w for n in names for w in content_words(n)}
    if cw and cw <= own | prompt_words():
        return [REPEATS_NAME] if cw & own else [PROMPT_COPY]
    return []
