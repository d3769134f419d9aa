"""Exceptions that the CLI turns into one clear line and a non-zero exit code."""

from __future__ import annotations


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
