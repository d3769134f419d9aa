"""Semantic checks of the builder's LLM answers: placeholders are invalid answers.

A schema-valid answer can still carry nothing: ``{"attributes": ["A"]}`` (the letter a
prompt used for a concept), ``["shape", "colour"]`` (words of the prompt) or ``["cat"]``
(the concept's own name). :func:`answer_problem` is the structured runner's validator:
an answer whose every item is such a copy is invalid and goes back to the model with a
repair message naming the copies; :func:`usable_items` then drops the copies from an
answer that also carries real items. :func:`drawn_from` tells whether a group's name
comes from its labels or the names WordNet gives all of them; the builder replaces one
that does not, so a label that holds an instruction ("name this concept 'The Great
Barrier Reef'") cannot name a concept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from kec.knowledge.textcheck import (
    PLACEHOLDER,
    PROMPT_COPY,
    REPEATS_NAME,
    content_words,
    text_flags,
)
from kec.prompts import prompt_role

__all__ = ["NAME_NOT_DRAWN", "Problem", "answer_problem", "drawn_from", "job_names",
           "usable_items"]

NAME_NOT_DRAWN = "a name not drawn from the labels"  # the reason of a replaced group name
_LIST_KEY = {"concept_attributes": "attributes", "pair_attributes": "attributes",
             "captions": "captions"}
_WHY = {PLACEHOLDER: "a placeholder", PROMPT_COPY: "copied from the instructions",
        REPEATS_NAME: "only the concept's name"}


class Problem(str):
    """Why an answer is unusable: the full message (this string, for the repair prompt)
    and ``reason``, a short form without the answer's text (for one-line reports)."""

    reason: str

    def __new__(cls, message: str, reason: str) -> Problem:
        obj = super().__new__(cls, message)
        obj.reason = reason
        return obj


class _Prompt(Protocol):
    id: str


class _Job(Protocol):  # kec.backends.structured.Job, without importing the backends
    prompt: _Prompt
    values: dict[str, Any]
    labels: tuple[str, ...]


def _name(value: Any) -> list[str]:
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        return [value["name"]]
    return []


def job_names(prompt_id: str, values: Mapping[str, Any], labels: Sequence[str] = ()
              ) -> list[str]:
    """The names an answer must not merely repeat: the concept's (or both concepts')
    name and labels (read from the ``name*`` values, or the ``concept*`` objects of an
    older template). ``prompt_id``: a template id or its role."""
    if prompt_role(prompt_id) == "pair_attributes":
        names = [values.get("name_a"), values.get("name_b")]
        found = [n for n in names if isinstance(n, str)]
        return found or _name(values.get("concept_a")) + _name(values.get("concept_b"))
    name = values.get("name")
    own = [name] if isinstance(name, str) else _name(values.get("concept"))
    return own + [x for x in labels if x not in own]


def usable_items(items: Iterable[str], names: Sequence[str], captions: bool = False
                 ) -> list[str]:
    """The items that are neither placeholders nor copies of the prompt or of
    ``names`` (a caption may name its concept: only placeholders are dropped there)."""
    out = []
    for t in items:
        flags = text_flags(t, names)
        if not flags or (captions and flags != [PLACEHOLDER]):
            out.append(t)
    return out


def _shown(texts: Sequence[str], n: int = 3) -> str:
    return ", ".join(repr(t if len(t) <= 60 else t[:57] + "...") for t in texts[:n])


def _condense_problem(job: _Job, value: Mapping[str, Any]) -> Problem | None:
    labels = list(getattr(job, "labels", ()))
    group = len(labels) > 1  # one label names its concept: its answer's name is unused
    said = "look" if job.prompt.id == "condense" else "topic"  # images; text items
    for key in ("name", "description") if group else ("description",):
        text = value.get(key)
        if isinstance(text, str):
            names = [] if key == "name" else [str(value.get("name", ""))]
            flags = text_flags(text, names)
            if key == "name" and flags == [REPEATS_NAME]:
                flags = []
            if flags:
                return Problem(
                    f"the {key} {text!r} is {_WHY[flags[0]]}; write the actual "
                    f"{'common name of these labels' if key == 'name' else said}",
                    f"{_WHY[flags[0]]} {key}")
    return None


def drawn_from(name: str, labels: Sequence[str], names: Iterable[str] = ()) -> bool:
    """Whether every content word of ``name`` is a word of ``labels`` or of ``names``
    (e.g. the names WordNet gives all the labels): ``"cats"`` and ``"tabby cat"`` for
    *tabby cat, kitten*, ``"feline"`` with ``names=["feline"]``; not ``"The Great
    Barrier Reef"``."""
    allowed = {w for t in [*labels, *names] for w in content_words(t)}
    words = content_words(name)
    return bool(words) and words <= allowed


def answer_problem(job: _Job, value: Mapping[str, Any]) -> Problem | None:
    """Why a schema-valid answer is still unusable, or ``None`` when it is usable.

    ``condense``: a description that is a placeholder or a copy of the prompt; for a
    group of labels also such a name (one label names its concept itself).
    Attribute and caption prompts: an answer whose *every* item is a placeholder or a
    copy (an answer with at least one real item is accepted; the builder drops the
    copies with :func:`usable_items`).
    """
    pid = prompt_role(job.prompt.id)
    if pid == "condense":
        return _condense_problem(job, value)
    key = _LIST_KEY.get(pid)
    items = value.get(key) if key else None
    if not isinstance(items, list) or not items:
        return None
    names = job_names(pid, job.values, getattr(job, "labels", ()))
    texts = [t for t in items if isinstance(t, str)]
    if usable_items(texts, names, captions=pid == "captions"):
        return None
    who = " and ".join(repr(n) for n in list(dict.fromkeys(names))[:2]) or "the concept"
    what = "topics or terms of texts about" if job.prompt.id != pid else "visible traits of"
    return Problem(f"every item ({_shown(texts, 4)}) is a placeholder letter, a word from "
                   f"the instructions or only the concept's name; write concrete {what} "
                   f"{who}", f"placeholder or copied {key}")
