"""Persistent response cache, keyed by a content hash of everything that shapes an answer.

Key = sha256 of the canonical JSON of (backend identity, prompt id/version/hash, rendered
messages, sampling parameters, response schema). Secrets are never part of a backend's
identity, so they never reach the key or the stored entry. One small JSON file per entry
(``<dir>/<k[:2]>/<k>.json``), written atomically as soon as its answer arrives: a build
killed at any point resumes with zero repeated calls.

Runs that share a cache take a per-key advisory file lock (:meth:`ResponseCache.lock`,
``<dir>/.locks/<k[:2]>/<k>.lock``, ``fcntl.flock``) around each request, so two builds
started at once make each paid request once: the second waits and reads the first's
answer. The lock is released by the kernel if a run dies. The holder removes the lock
file before it lets go; a run that locked a file which was removed meanwhile sees that
the path no longer names its file, and locks again. The 256 folders ``.locks/<k[:2]>``
stay: removing them too let two runs hold one key at once under gVisor (a stress test
of 24,000 locks found 11 overlaps with folder removal, none without).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-run locking
    fcntl = None  # type: ignore[assignment]

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

    def invalidate(self, key: str) -> None:
        """Remove the entry for ``key`` (an answer that must not be served again)."""
        if self.directory is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()
            logger.warning("removed cache entry %s", key)

    def lock(self, key: str, blocking: bool = True
             ) -> contextlib.AbstractContextManager[None] | None:
        """An exclusive lock on ``key`` shared by every process using this cache.

        Returns a context manager that holds the lock until it exits, or ``None`` when
        ``blocking`` is false and another process holds it. Without a cache directory (or
        without ``fcntl``) the lock is a no-op that always succeeds.
        """
        if self.directory is None or fcntl is None:
            return contextlib.nullcontext()
        path = self.directory / ".locks" / key[:2] / f"{key}.lock"
        while True:
            try:
                fd = _open_lock_file(path)
            except OSError as exc:  # a read-only cache: no sharing to protect
                logger.debug("no lock for cache key %s: %s", key, exc)
                return contextlib.nullcontext()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            if _names(path, fd):
                return _held(fd, path)
            os.close(fd)  # the holder before us removed this file: lock the new one

    def put(self, key: str, entry: dict[str, Any]) -> None:
        if self.directory is None:
            return
        atomic_write_text(self._path(key), json.dumps(entry, ensure_ascii=False, sort_keys=True))

    def __len__(self) -> int:
        if self.directory is None or not self.directory.exists():
            return 0
        return sum(1 for _ in self.directory.glob("*/*.json"))


def _open_lock_file(path: Path) -> int:
    """Open (creating) the lock file at ``path`` and its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the open file ``fd`` (it was not removed)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


@contextlib.contextmanager
def _held(fd: int, path: Path) -> Iterator[None]:
    try:
        yield
    finally:
        # remove the file while still holding it: a run waiting on this file gets the
        # lock next, sees the path is gone and locks a fresh file instead
        with contextlib.suppress(OSError):
            path.unlink()
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
