"""Published JSON Schemas (2020-12): the knowledge file and one response schema per prompt."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

KNOWLEDGE_SCHEMA = "knowledge.schema.json"


@cache
def _load(name: str) -> str:
    return files("kec.schemas").joinpath(name).read_text("utf-8")


def load_schema(name: str) -> dict[str, Any]:
    """Load a packaged schema by file name (``"knowledge.schema.json"``,
    ``"responses/condense.schema.json"``). Returns a fresh dict each call."""
    return json.loads(_load(name))


def knowledge_schema() -> dict[str, Any]:
    return load_schema(KNOWLEDGE_SCHEMA)
