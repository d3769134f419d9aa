"""Persistent response cache, keyed by a content hash of everything that shapes an answer.

Key = sha256 of the canonical JSON of (backend identity, prompt id/version/hash, rendered
messages, sampling parameters, response schema). Secrets are never part of a backend's
identity, so they never reach the key or the stored entry. One small JSON file per entry
(``<dir>/<k[:2]>/<k>.json``), written atomically as soon as its answer arrives: a build
killed at any point resumes with zero repeated calls.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from kec._io import atomic_write_text, canonical_json, sha256_text

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$KEC_CACHE_DIR/llm``, else ``$XDG_CACHE_HOME/kec/llm``, else ``~/.cache/kec/llm``."""
    root = os.environ.get("KEC_CACHE_DIR")
    if root:
        return Path(root) / "llm"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "kec" / "llm"


def cache_key(
    identity: dict[str, Any],
    prompt_ref: dict[str, Any],
    messages: Any,
    params: dict[str, Any],
    schema: dict[str, Any] | None,
) -> str:
    return sha256_text(
        canonical_json(
            {
                "format": CACHE_FORMAT,
                "backend": identity,
                "prompt": prompt_ref,
                "messages": list(messages),
                "params": params,
                "schema": schema,
            }
        )
    )


class ResponseCache:
    """Directory-backed cache of raw answers. ``directory=None`` disables it."""

    def __init__(self, directory: str | os.PathLike[str] | None):
        self.directory = Path(directory) if directory is not None else None

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if self.directory is None:
            return None
        path = self._path(key)
        try:
            entry = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable cache entry %s: %s", path, exc)
            return None
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            logger.warning("ignoring malformed cache entry %s", path)
            return None
        return entry

    def put(self, key: str, entry: dict[str, Any]) -> None:
        if self.directory is None:
            return
        atomic_write_text(self._path(key), json.dumps(entry, ensure_ascii=False, sort_keys=True))

    def __len__(self) -> int:
        if self.directory is None or not self.directory.exists():
            return 0
        return sum(1 for _ in self.directory.glob("*/*.json"))
