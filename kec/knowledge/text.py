"""Normalising and deduplicating attribute text written by an LLM."""

from __future__ import annotations

import re
import unicodedata

_BULLET = re.compile(r"^(?:[-*•·]+|\d+[.)])\s*")


def printable(text: str) -> str:
    """``text`` safe to print on a terminal, one line: control characters (newlines,
    ESC of ANSI and OSC sequences, DEL, C1), format characters (bidirectional overrides,
    zero-width) and line separators are written as ``\\n``, ``\\x1b``, ``\\u202e``;
    a backslash stays a backslash."""
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return "".join(out)


def one_line(text: str) -> str:
    """``text`` as one line of printable text: control characters and line or paragraph
    separators become spaces, format characters (zero-width, direction marks) go, white
    space collapses. What the builder keeps of any text a model wrote."""
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Zl", "Zp"):
            out.append(" ")
        elif cat != "Cf":
            out.append(ch)
    return " ".join("".join(out).split())


def normalize_attribute(text: str) -> str:
    """NFKC, one line (:func:`one_line`), drop list bullets, wrapping quotes and the
    final period."""
    t = unicodedata.normalize("NFKC", text)
    t = one_line(t)
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
