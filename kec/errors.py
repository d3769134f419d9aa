"""Exceptions that the CLI turns into one clear line and a non-zero exit code, and the
one place that keeps the values they quote short (:func:`shorten`, :func:`quoted`)."""

from __future__ import annotations

from typing import Any

#: Characters of a value kept when it is quoted into an error message.
MAX_QUOTED_CHARS = 200
#: Characters of one error line printed by the CLI; longer lines lose their middle.
MAX_ERROR_LINE_CHARS = 1000


def shorten(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``text`` itself when at most ``limit`` characters long, else its first ``limit``
    characters, an ellipsis and the original length: ``"aaa… (100,000 characters)"``.

    Parameters
    ----------
    text : str
    limit : int
        Characters kept, >= 1.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def quoted(value: Any, limit: int = MAX_QUOTED_CHARS) -> str:
    """``repr(str(value))``, cut as :func:`shorten` cuts: how an error message quotes a
    value the user gave (a label, a name, a path), whatever its size."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text):,} characters)"


def clip_lines(message: str, limit: int = MAX_ERROR_LINE_CHARS) -> str:
    """Every line of ``message`` cut to about ``limit`` characters: a longer line keeps its
    first and last ``limit // 2 - 20`` characters around ``… [N characters cut] …``, so
    that both what went wrong (the start) and the hint (the end) survive."""
    keep = max(limit // 2 - 20, 1)
    out = []
    for line in message.split("\n"):
        if len(line) > limit:
            cut = len(line) - 2 * keep
            line = f"{line[:keep]} … [{cut:,} characters cut] … {line[-keep:]}"
        out.append(line)
    return "\n".join(out)


class KecError(Exception):
    """Base class: a problem the user can fix (bad input, missing dependency, ...)."""

    exit_code = 2


class InvalidKnowledgeError(KecError):
    """A knowledge file breaks the schema or a semantic rule.

    ``errors`` holds ``(json_path, message)`` tuples, one per problem found.
    """

    exit_code = 1

    def __init__(self, source: str, errors: list[tuple[str, str]]):
        self.source = source
        self.errors = errors
        lines = [f"{source}: {path}: {msg}" for path, msg in errors]
        super().__init__("\n".join(lines) if lines else f"{source}: invalid")


class BackendError(KecError):
    """An LLM backend could not be created or could not answer at all."""


class MissingDependencyError(KecError):
    """An optional extra is not installed."""

    def __init__(self, package: str, extra: str, what: str):
        super().__init__(
            f"{what} needs the optional package '{package}': pip install 'kec[{extra}]'"
        )


class InputNotFoundError(KecError, FileNotFoundError):
    """An input file does not exist.

    Both a :class:`KecError` (the CLI prints one line and exits 2) and a
    :class:`FileNotFoundError`, so that ``except FileNotFoundError`` works in the API.
    """


class OutputPathError(KecError):
    """An output path cannot be written (an existing directory, a path under a file, a
    folder without write permission): found before any expensive work starts."""


class BuildFailuresError(KecError):
    """A knowledge build finished, but some LLM calls failed (their items fell back).

    The knowledge file is written; the exit code tells scripts it is incomplete.
    ``--allow-failures`` turns this into exit 0.
    """

    exit_code = 3


class EndpointDownError(BackendError):
    """The circuit breaker opened: an LLM endpoint failed to connect too many times in a
    row, so the run stopped early. Answers already received stay in the cache."""

    exit_code = 4
