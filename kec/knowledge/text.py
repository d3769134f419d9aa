"""Normalising and deduplicating attribute text written by an LLM."""

from __future__ import annotations

import re
import unicodedata

_SPACE = re.compile(r"\s+")
_BULLET = re.compile(r"^(?:[-*•·]+|\d+[.)])\s*")


def normalize_attribute(text: str) -> str:
    """NFKC, collapse white space, drop list bullets, wrapping quotes and the final period."""
    t = unicodedata.normalize("NFKC", text)
    t = _SPACE.sub(" ", t).strip()
    t = _BULLET.sub("", t)
    prev = None
    while prev != t:  # peel quotes and trailing punctuation in any order
        prev = t
        t = t.strip().strip("\"'`").rstrip(".;,").strip()
    return t


def dedup_attributes(items: list[str], limit: int | None = None) -> list[str]:
    """Normalise, drop empties and case/punctuation-insensitive duplicates, keep order."""
    seen: set[str] = set()
    out = []
    for item in items:
        t = normalize_attribute(item)
        key = re.sub(r"[^\w ]", "", t.casefold())
        if t and key not in seen:
            seen.add(key)
            out.append(t)
        if limit is not None and len(out) >= limit:
            break
    return out
