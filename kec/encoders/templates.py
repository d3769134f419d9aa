"""Prompt-template sets for text ensembles, kept as plain data in ``templates.json``.

A template holds ``{}`` where the text goes: ``"a photo of the large {}."``. Encoding a
text with a set means encoding every filled template, averaging the embeddings and
renormalising (CLIP's prompt ensembling; TAC uses its 7 templates, the ``tac`` set).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kec.errors import KecError

logger = logging.getLogger(__name__)

PLACEHOLDER = "{}"
NO_TEMPLATES = "none"


class TemplateError(KecError):
    """A template set is unknown, unreadable or malformed."""


@dataclass(frozen=True)
class TemplateSet:
    """A named, ordered list of prompt templates.

    Attributes
    ----------
    name : str
        Registry name (``"tac"``), or the file it was read from, or ``"custom"``.
    templates : tuple of str
        Each contains ``{}`` exactly once.
    """

    name: str
    templates: tuple[str, ...]

    def fill(self, text: str) -> list[str]:
        """The prompts for one ``text``, one per template (``str.replace``, not ``format``)."""
        return [t.replace(PLACEHOLDER, text) for t in self.templates]

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "templates": list(self.templates)}


def _registry() -> dict[str, list[str]]:
    text = resources.files("kec.encoders").joinpath("templates.json").read_text("utf-8")
    return json.loads(text)


def list_template_sets() -> list[str]:
    """Names of the built-in template sets (``none`` means: encode the text as it is)."""
    return sorted(_registry())


def _validate(name: str, templates: Sequence[object]) -> TemplateSet:
    if isinstance(templates, str) or not isinstance(templates, Sequence) or not templates:
        raise TemplateError(f"template set {name!r}: expected a non-empty list of strings")
    checked: list[str] = []
    for i, t in enumerate(templates):
        if not isinstance(t, str) or t.count(PLACEHOLDER) != 1:
            raise TemplateError(
                f"template set {name!r}: template {i} ({t!r}) must be a string "
                f"containing {PLACEHOLDER!r} exactly once"
            )
        checked.append(t)
    return TemplateSet(name=name, templates=tuple(checked))


def _read_file(path: Path) -> list[str]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read template file {path}: {exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TemplateError(f"template file {path} is not valid JSON: {exc}") from exc
        if isinstance(data, dict):
            data = data.get("templates")
        return data  # validated by the caller
    return [line.strip() for line in text.splitlines() if line.strip()]


def resolve_templates(spec: str | Sequence[str] | TemplateSet | None) -> TemplateSet | None:
    """Turn a user's template choice into a :class:`TemplateSet`, or ``None`` for raw text.

    Parameters
    ----------
    spec : str, sequence of str, TemplateSet or None
        ``None`` or ``"none"``: no templates. A built-in set name (see
        :func:`list_template_sets`). A path to a ``.json`` file (a list of templates, or an
        object with a ``"templates"`` list) or to a text file with one template per line.
        Or the templates themselves.

    Returns
    -------
    TemplateSet or None
        ``None`` when texts are to be encoded as they are.
    """
    if spec is None or isinstance(spec, TemplateSet):
        return spec
    if isinstance(spec, str):
        registry = _registry()
        if spec in registry:
            tset = _validate(spec, registry[spec])
        elif Path(spec).is_file():
            tset = _validate(spec, _read_file(Path(spec)))
        else:
            raise TemplateError(
                f"unknown template set {spec!r}: use one of {', '.join(sorted(registry))} "
                "or the path of a template file"
            )
    else:
        tset = _validate("custom", list(spec))
    if tset.templates == (PLACEHOLDER,):
        logger.debug("template set %r is the identity: encoding texts as they are", tset.name)
        return None
    logger.info("prompt templates: %s (%d)", tset.name, len(tset.templates))
    return tset
