"""Versioned prompt templates: condensation, concept and pair attributes, captions.

A template is a JSON file (see ``templates/``) that declares its ``id``, ``version``,
``variables`` (name -> type), ``response_schema`` (a packaged schema name or an inline
schema) and ``messages``. Placeholders are ``{{name}}``. Rendering is deterministic and
substitutes every value as **JSON data** (strings quoted and escaped, lists as JSON
arrays) in a single pass, so a label holding braces, quotes, ``{{labels}}`` or
instructions cannot change the template around it.

Users can point at their own directory: a file ``<id>.json`` there replaces the
built-in template of that id (its answers must still carry the keys the builder reads).

Knowledge for images and knowledge for a text collection's items ask different
questions (how a thing looks in a photo; what a text is about): :data:`PROMPT_SETS` maps
each knowledge kind to the template id of each role (``condense``,
``concept_attributes``, ``pair_attributes``, ``captions``). Each template has its own id,
which keys the LLM cache.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kec._io import canonical_json, sha256_text
from kec.errors import KecError
from kec.schemas import load_schema

__all__ = ["BUILTIN_PROMPTS", "KNOWLEDGE_KINDS", "PROMPT_ROLES", "PROMPT_SETS", "PromptError",
           "PromptTemplate", "load_prompt", "prompt_ids", "prompt_role"]

#: the builder's questions, in the order it asks them
PROMPT_ROLES = ("condense", "concept_attributes", "pair_attributes", "captions")
#: knowledge kind -> role -> template id: ``images`` asks how things look in photos,
#: ``items`` (a text collection) what texts are about
PROMPT_SETS: MappingProxyType[str, MappingProxyType[str, str]] = MappingProxyType({
    "images": MappingProxyType({r: r for r in PROMPT_ROLES}),
    "items": MappingProxyType({r: f"{r}_items" for r in PROMPT_ROLES}),
})
KNOWLEDGE_KINDS = tuple(PROMPT_SETS)
BUILTIN_PROMPTS = tuple(dict.fromkeys(t for s in PROMPT_SETS.values() for t in s.values()))
_ROLE_OF = {t: r for s in PROMPT_SETS.values() for r, t in s.items()}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "string_list": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "object": lambda v: isinstance(v, dict),
}
# keys the builder reads from each prompt's answer; a user template must keep them
_REQUIRED_KEYS = {
    "condense": {"name", "description"},
    "concept_attributes": {"attributes"},
    "pair_attributes": {"attributes"},
    "captions": {"captions"},
}


def prompt_ids(kind: str = "images") -> MappingProxyType[str, str]:
    """Role -> template id of the prompt set for knowledge of ``kind``
    (:data:`PROMPT_SETS`)."""
    try:
        return PROMPT_SETS[kind]
    except KeyError:
        raise PromptError(f"knowledge kind must be one of {', '.join(KNOWLEDGE_KINDS)}, "
                          f"got {kind!r}") from None


def prompt_role(prompt_id: str) -> str:
    """The role of a template id (``"concept_attributes_items"`` ->
    ``"concept_attributes"``); an unknown id is its own role."""
    return _ROLE_OF.get(prompt_id, prompt_id)


class PromptError(KecError):
    """A template is malformed or was rendered with the wrong variables."""


@dataclass(frozen=True)
class PromptTemplate:
    id: str
    version: str
    description: str
    variables: dict[str, str]
    response_schema: dict[str, Any]
    messages: tuple[dict[str, str], ...]
    source: str = "builtin"

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "builtin") -> PromptTemplate:
        try:
            tid = str(data["id"])
            version = str(data["version"])
            variables = dict(data["variables"])
            schema = data["response_schema"]
            messages = tuple({"role": m["role"], "content": m["content"]} for m in data["messages"])
        except (KeyError, TypeError) as exc:
            raise PromptError(f"{source}: template lacks field {exc}") from None
        if isinstance(schema, str):
            try:
                schema = load_schema(schema)
            except FileNotFoundError:
                raise PromptError(f"{source}: unknown response schema '{schema}'") from None
        if not isinstance(schema, dict):
            raise PromptError(f"{source}: response_schema must be a schema name or an object")
        for name, typ in variables.items():
            if typ not in _TYPES:
                raise PromptError(f"{source}: variable '{name}' has unknown type '{typ}'")
        used = {m for msg in messages for m in _PLACEHOLDER.findall(msg["content"])}
        if used != set(variables):
            raise PromptError(
                f"{source}: placeholders {sorted(used)} do not match declared variables "
                f"{sorted(variables)}"
            )
        needed = _REQUIRED_KEYS.get(prompt_role(tid), set())
        if not needed <= set(schema.get("required", [])):
            raise PromptError(f"{source}: response schema must require {sorted(needed)}")
        return cls(tid, version, str(data.get("description", "")), variables, schema, messages,
                   source)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "description": self.description,
            "variables": self.variables,
            "response_schema": self.response_schema,
            "messages": list(self.messages),
        }

    @cached_property
    def sha256(self) -> str:
        """Content hash of the whole template (wording, variables and schema)."""
        return sha256_text(canonical_json(self.to_dict()))

    def ref(self) -> dict[str, str]:
        return {"id": self.id, "version": self.version, "sha256": self.sha256}

    def render(self, **values: Any) -> tuple[dict[str, str], ...]:
        """Fill the placeholders with ``values`` (as JSON data) and return chat messages."""
        missing = set(self.variables) - set(values)
        extra = set(values) - set(self.variables)
        if missing or extra:
            raise PromptError(
                f"prompt '{self.id}': missing variables {sorted(missing)}, "
                f"unexpected {sorted(extra)}"
            )
        for name, typ in self.variables.items():
            if not _TYPES[typ](values[name]):
                raise PromptError(f"prompt '{self.id}': variable '{name}' must be {typ}")
        encoded = {k: json.dumps(v, ensure_ascii=False, sort_keys=True) for k, v in values.items()}
        return tuple(
            {"role": m["role"],
             "content": _PLACEHOLDER.sub(lambda mt: encoded[mt.group(1)], m["content"])}
            for m in self.messages
        )


def load_prompt(prompt_id: str, template_dir: str | os.PathLike[str] | None = None
                ) -> PromptTemplate:
    """Load template ``prompt_id``: from ``template_dir/<id>.json`` when that file exists,
    else the built-in one."""
    if template_dir is not None:
        path = Path(template_dir) / f"{prompt_id}.json"
        if path.is_file():
            try:
                data = json.loads(path.read_text("utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise PromptError(f"{path}: cannot read template: {exc}") from None
            tpl = PromptTemplate.from_dict(data, source=str(path))
            if tpl.id != prompt_id:
                raise PromptError(f"{path}: template id '{tpl.id}' does not match file name")
            return tpl
        if not Path(template_dir).is_dir():
            raise PromptError(f"template directory not found: {template_dir}")
    if prompt_id not in BUILTIN_PROMPTS:
        raise PromptError(f"unknown prompt '{prompt_id}'; built-in: {', '.join(BUILTIN_PROMPTS)}")
    text = files("kec.prompts").joinpath("templates", f"{prompt_id}.json").read_text("utf-8")
    return PromptTemplate.from_dict(json.loads(text))
