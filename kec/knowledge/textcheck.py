"""Text-only checks of LLM-written knowledge: placeholders, copies of the prompt, names.

Pure functions over strings, shared by the linter (:mod:`kec.knowledge.lint`) and by the
builder's answer validator (:mod:`kec.knowledge.answers`). Small models copy what they
are shown: the letters a prompt uses for its concepts (``"A"``), the example words of a
system prompt (``"shape"``, ``"colour"``) or the concept's own name. None of these says
anything about how a concept looks.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import cache

__all__ = [
    "PLACEHOLDER",
    "PROMPT_COPY",
    "REPEATS_NAME",
    "content_words",
    "is_placeholder",
    "is_prompt_copy",
    "prompt_words",
    "repeats_name",
    "text_flags",
    "words",
]

PLACEHOLDER = "placeholder"
PROMPT_COPY = "prompt_copy"
REPEATS_NAME = "repeats_name"

_WORD = re.compile(r"[^\W_]+")
# function words: never content, whatever the text
_STOP_TEXT = (
    "a an the of and or with without in on at to for from by as is are be been has have "
    "its it their they this that these those which who very often usually typically "
    "some any each one ones vs versus than not no unlike compared while whereas s"
)
STOPWORDS = frozenset(_STOP_TEXT.split())
# answers that stand for "something goes here"
_PLACEHOLDERS = frozenset({
    "n a", "na", "none", "null", "nil", "unknown", "todo", "tbd", "xxx", "string", "text",
    "example", "name", "description", "attribute", "attributes", "caption", "captions",
    "concept", "concepts", "label", "labels", "item", "items", "thing", "object",
    "something", "answer", "value", "placeholder", "lorem ipsum",
})
_LETTER_NAME = re.compile(
    r"^(?:(?:concept|class|category|label|item|object|attribute|option|thing|type|image|"
    r"photo)\s+)?(?:[a-z]|\d+)$"
)
# an identifier or file name ("part_type", "description_1.jpg"), not a phrase
_IDENTIFIER = re.compile(r"^[^\W_]+(?:[_.][^\W_]+)+$")
# code or markup leaking from the answer format ("]} ```python", "<attribute>")
_MARKUP = re.compile(r"```|[{}\[\]<>]")
# phrases only a prompt says: an answer holding one copies the prompt
_PROMPT_PHRASES = ("not instructions", "answer as a json", "answer with one json",
                   "json object with the key")
# words of the system prompts of every template version kec has shipped (v1, v2): an
# answer made only of these (and function words) copies the prompt
_PROMPT_HISTORY = (
    "You are a vision expert who names visual categories. You only describe what can be "
    "seen in a photo. You list visible appearance only: shape, colour, color, texture, "
    "parts, typical setting. You compare what is visible in photos: shape, colour, "
    "texture, parts, proportions. Give short visual attributes that tell A apart from B "
    "in a photo, each naming the concept it belongs to. short phrase, short common "
    "concept name, visual description, image shows, recognise, recognize, help, helps, "
    "similar, different, visible, visually, appearance, feature, features, trait, traits, "
    "photo, photos, picture, image, images, data, instructions, JSON"
)


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
    return {_stem(w) for w in words(text) if w not in STOPWORDS}


@cache
def prompt_words() -> frozenset[str]:
    """Content words of kec's built-in prompt templates (all shipped versions)."""
    texts = [_PROMPT_HISTORY]
    try:
        from kec.prompts import BUILTIN_PROMPTS, load_prompt

        for pid in BUILTIN_PROMPTS:
            for m in load_prompt(pid).messages:
                texts.append(re.sub(r"\{\{.*?\}\}", " ", m["content"]))
    except Exception:  # pragma: no cover - a broken template must not break linting
        pass
    return frozenset(w for t in texts for w in content_words(t))


def is_placeholder(text: str) -> bool:
    """An empty, one-letter, ellipsis or "something goes here" answer (``"A"``,
    ``"concept B"``, ``"..."``, ``"N/A"``, ``"attribute"``), an identifier or file name
    (``"part_type"``, ``"description_1.jpg"``) or code (``"]} ```python"``)."""
    toks = words(text)
    if not toks:
        return True  # only punctuation: "...", "-", "?"
    stripped = text.strip()
    if _IDENTIFIER.match(stripped) or _MARKUP.search(stripped):
        return True
    joined = " ".join(toks)
    return (len("".join(toks)) <= 1 or joined in _PLACEHOLDERS
            or bool(_LETTER_NAME.match(joined)))


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
    if any(phrase in folded for phrase in _PROMPT_PHRASES):
        return [PROMPT_COPY]
    cw = content_words(text)
    own = {w for n in names for w in content_words(n)}
    if cw and cw <= own | prompt_words():
        return [REPEATS_NAME] if cw & own else [PROMPT_COPY]
    return []
