"""Which replica of an LLM endpoint pool takes the next request: load, ejection, re-probe.

A pool is a list of base URLs of servers that run the same model (several ``vllm serve``
replicas behind no load balancer, say). :class:`ReplicaPool` is the policy alone, with no
I/O, so it is tested with a fake clock:

* **least load**: a request goes to the replica in rotation with the fewest requests in
  flight (ties: the one sent the fewest requests so far, then the first listed);
* **ejection**: a replica that fails ``eject_after`` attempts in a row (refused
  connections, timeouts, gateway errors, protocol errors) leaves the rotation for
  ``cooldown`` seconds;
* **re-probe**: after its cool-down an ejected replica gets one request at a time; an
  answer puts it back in rotation, a failure sends it out for another cool-down;
* **all down**: while no replica is in rotation, requests go to the one whose cool-down
  ends first, so the caller's circuit breaker (:meth:`ReplicaPool.all_down` and
  :attr:`ReplicaPool.down_streak`) sees the failures and decides when to stop.

A pool of one URL behaves as a single endpoint: every request goes to it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kec._io import read_text_file
from kec.errors import KecError

logger = logging.getLogger(__name__)

DEFAULT_EJECT_AFTER = 2
DEFAULT_COOLDOWN_S = 30.0
_USERINFO = re.compile(r"//[^/@]*@")


def public_url(url: str) -> str:
    """``url`` without a ``user:password@`` part, query or fragment (safe to log and key)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: kept out, the URL is refused anyway
        port = None
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_urls(urls: Iterable[str]) -> list[str]:
    """The endpoint URLs, trailing ``/`` removed; a :class:`KecError` names a bad one.

    Each must be an ``http://`` or ``https://`` URL with a host; the same endpoint
    (credentials aside) may not be listed twice.
    """
    out: list[str] = []
    seen: dict[str, str] = {}
    for raw in urls:
        url = str(raw).strip().rstrip("/")
        shown = _USERINFO.sub("//", url)  # error texts never quote credentials
        try:
            parts = urlsplit(url)
            _ = parts.port  # raises for a port that is not a number in 0-65535
        except ValueError as exc:
            raise KecError(f"bad endpoint URL {shown!r}: {str(exc).lower()}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise KecError(f"bad endpoint URL {shown!r}: give http://HOST:PORT/v1 (an http "
                           "or https URL with a host)")
        key = public_url(url)
        if key in seen:
            raise KecError(f"endpoint {key} is listed twice")
        seen[key] = url
        out.append(url)
    return out


def read_url_file(path: str | Path) -> list[str]:
    """Endpoint URLs from a text file: one per line; blank lines and ``#`` comments skipped."""
    text = read_text_file(path, "URL file")
    urls = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    urls = [u for u in urls if u]
    if not urls:
        raise KecError(f"URL file {path} lists no URL (one http://HOST:PORT/v1 per line)")
    return urls


@dataclass
class Replica:
    """One endpoint of a pool and what the pool knows about it."""

    url: str  # as given (credentials included): only handed to the HTTP client
    public: str  # without credentials: logs, stats, error texts
    in_flight: int = 0
    sent: int = 0  # requests started
    answered: int = 0  # requests that got a chat completion
    failed: int = 0  # attempts that could not reach it
    streak: int = 0  # failed attempts in a row
    ejections: int = 0
    max_in_flight: int = 0
    out_until: float | None = None  # ejected until this clock time; None: in rotation

    @property
    def in_rotation(self) -> bool:
        return self.out_until is None

    def stats(self) -> dict[str, Any]:
        """Provenance of this replica: who answered how much, who failed."""
        return {"url": self.public, "answered": self.answered, "failed_attempts": self.failed,
                "ejections": self.ejections, "max_in_flight": self.max_in_flight,
                "in_rotation": self.in_rotation}


class ReplicaPool:
    """Least-loaded choice among replicas, with ejection and re-probe after a cool-down.

    Parameters
    ----------
    urls : sequence of str
        Base URLs, at least one (checked by :func:`check_urls`).
    eject_after : int
        Failed attempts in a row that take a replica out of rotation (>= 1).
    cooldown : float
        Seconds an ejected replica waits before it is probed again (>= 0).
    clock : callable
        Monotonic time in seconds (a fake one in tests).
    """

    def __init__(self, urls: Sequence[str], eject_after: int = DEFAULT_EJECT_AFTER,
                 cooldown: float = DEFAULT_COOLDOWN_S,
                 clock: Callable[[], float] = time.monotonic):
        if not urls:
            raise KecError("a replica pool needs at least one URL")
        if eject_after < 1:
            raise KecError("eject_after must be >= 1")
        if cooldown < 0:
            raise KecError("cooldown must be >= 0")
        self.replicas = [Replica(u, public_url(u)) for u in check_urls(urls)]
        self.eject_after = int(eject_after)
        self.cooldown = float(cooldown)
        self._clock = clock
        self.down_streak = 0  # failed attempts in a row, all replicas together

    def __len__(self) -> int:
        return len(self.replicas)

    # -- choice ------------------------------------------------------------------------------
    def acquire(self) -> Replica:
        """The replica for the next attempt, counted in flight until :meth:`release`."""
        now = self._clock()
        live = [r for r in self.replicas if r.in_rotation]
        probe = [r for r in self.replicas if not r.in_rotation and r.in_flight == 0
                 and r.out_until is not None and r.out_until <= now]
        if probe:  # a cooled-down replica gets one request to show it is back
            chosen = min(probe, key=lambda r: r.out_until or 0.0)
        elif live:
            chosen = min(live, key=lambda r: (r.in_flight, r.sent))
        else:  # every replica is down: try the first to come back; the breaker decides
            chosen = min(self.replicas, key=lambda r: (r.out_until or 0.0, r.in_flight))
        chosen.in_flight += 1
        chosen.sent += 1
        chosen.max_in_flight = max(chosen.max_in_flight, chosen.in_flight)
        return chosen

    def release(self, replica: Replica) -> None:
        """The attempt on ``replica`` is over (whatever its outcome)."""
        replica.in_flight = max(replica.in_flight - 1, 0)

    # -- outcomes ----------------------------------------------------------------------------
    def reached(self, replica: Replica, answered: bool) -> None:
        """``replica`` answered over HTTP (``answered``: with a chat completion): it is up."""
        if not replica.in_rotation:
            logger.warning("replica %s answers again; back in rotation", replica.public)
        replica.out_until = None
        replica.streak = 0
        self.down_streak = 0
        if answered:
            replica.answered += 1

    def unreachable(self, replica: Replica, message: str) -> None:
        """An attempt on ``replica`` could not reach it (or got no usable protocol)."""
        replica.failed += 1
        replica.streak += 1
        self.down_streak += 1
        if not replica.in_rotation or replica.streak >= self.eject_after:
            first = replica.in_rotation
            replica.out_until = self._clock() + self.cooldown
            if first:
                replica.ejections += 1
                if len(self.replicas) > 1:
                    logger.warning("replica %s out of rotation for %.0f s after %d failed "
                                   "attempt(s) in a row (last: %s)", replica.public,
                                   self.cooldown, replica.streak, message)

    def all_down(self) -> bool:
        """Whether no replica is in rotation."""
        return not any(r.in_rotation for r in self.replicas)

    def stats(self) -> list[dict[str, Any]]:
        return [r.stats() for r in self.replicas]


__all__ = ["DEFAULT_COOLDOWN_S", "DEFAULT_EJECT_AFTER", "Replica", "ReplicaPool", "check_urls",
           "public_url", "read_url_file"]
