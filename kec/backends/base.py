"""The one small interface every LLM backend implements.

A backend turns a batch of :class:`ChatRequest` into :class:`ChatResult` in the same
order. It owns transport concerns only (batching, concurrency, timeouts, backoff,
structured-output flags). Validation against the prompt's schema, repair retries,
caching and failure bookkeeping live in :mod:`kec.backends.structured`, so every
backend gets the same treatment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}
ResultCallback = Callable[[int, "ChatResult"], None]


@dataclass(frozen=True)
class SamplingParams:
    """Sampling parameters sent with every request (recorded in provenance and cache keys)."""

    temperature: float = 0.0
    max_tokens: int = 384
    top_p: float = 1.0
    seed: int | None = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to run: messages plus the JSON Schema its answer must satisfy."""

    messages: tuple[Message, ...]
    schema: dict[str, Any] | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    schema_name: str = "response"


@dataclass
class ChatResult:
    """The raw answer of one request, or the transport error that prevented it."""

    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


class Backend:
    """Base class of LLM backends.

    Subclasses set :attr:`name`, store the model identifier in ``self.model`` and
    implement :meth:`_complete_one` (sequential) or override :meth:`complete`
    (batched / concurrent). ``complete`` never raises for a single failed request:
    it returns a :class:`ChatResult` with ``error`` set, so one bad item cannot stop
    a build.
    """

    name: ClassVar[str] = "base"
    model: str = ""

    def identity(self) -> dict[str, Any]:
        """What makes two backends give the same answer: part of every cache key.

        Never include secrets here: this dict is hashed into cache keys and written
        to knowledge-file provenance.
        """
        return {"backend": self.name, "model": self.model}

    def describe(self) -> dict[str, Any]:
        """Provenance details (no secrets). Subclasses extend this."""
        return dict(self.identity())

    def scrub(self, text: str) -> str:
        """``text`` with this backend's secrets (API keys) replaced by ``***``.

        Applied to every answer and error text before it is cached, logged or stored, so a
        server that echoes the key cannot leak it. Backends without secrets keep the
        default (the text unchanged).
        """
        return text

    def complete(
        self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None
    ) -> list[ChatResult]:
        results: list[ChatResult] = []
        for i, req in enumerate(requests):
            try:
                res = self._complete_one(req)
            except Exception as exc:  # a backend bug or model error must not end the build
                res = ChatResult(text=None, error=f"{type(exc).__name__}: {exc}")
            results.append(res)
            if on_result is not None:
                on_result(i, res)
        return results

    @classmethod
    def from_options(cls, **options: Any) -> Backend:
        """Build from CLI-style options (``model``, ``base_url``, ...); unknown ones are
        ignored by each backend, so one set of flags serves every backend."""
        raise NotImplementedError

    def _complete_one(self, request: ChatRequest) -> ChatResult:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        """Release model memory, sockets, event loops."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
