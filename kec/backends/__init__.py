"""LLM backends behind one small interface, chosen by name (see ``registry.json``).

>>> backend = create_backend("llamacpp")              # embedded default, offline
>>> backend = create_backend("openai", model="gpt-4o-mini", base_url="http://127.0.0.1:8000/v1")
"""

from __future__ import annotations

import importlib
import json
import logging
from functools import cache
from importlib.resources import files
from typing import Any

from kec.backends.base import Backend, ChatRequest, ChatResult, SamplingParams
from kec.errors import BackendError

__all__ = [
    "Backend",
    "ChatRequest",
    "ChatResult",
    "SamplingParams",
    "available_backends",
    "create_backend",
]

logger = logging.getLogger(__name__)


@cache
def available_backends() -> dict[str, dict[str, Any]]:
    """The backend registry: name -> {class, extra, default_model, summary}."""
    return json.loads(files("kec.backends").joinpath("registry.json").read_text("utf-8"))


def create_backend(name: str, **options: Any) -> Backend:
    """Create the backend registered as ``name``.

    Options are passed to the backend's ``from_options``; ``None`` values are dropped so
    that unset CLI flags fall back to each backend's defaults.
    """
    registry = available_backends()
    if name not in registry:
        choices = ", ".join(sorted(registry))
        raise BackendError(f"unknown backend '{name}'; choose one of: {choices}")
    entry = registry[name]
    module_name, _, class_name = entry["class"].partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    opts = {k: v for k, v in options.items() if v is not None}
    opts.setdefault("model", entry["default_model"])
    logger.info("creating backend %s with model %s", name, opts["model"])
    return cls.from_options(**opts)
