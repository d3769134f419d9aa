"""Schema-validated structured answers on any backend: cache, repair retries, failures.

Every backend gets the same treatment here:

1. each request is looked up in the persistent :class:`~kec.backends.cache.ResponseCache`;
   misses go to the backend in one batch (so batched/concurrent backends stay fast) and
   every answer is cached the moment it arrives;
2. each answer is parsed as JSON and validated against the prompt's response schema;
3. an invalid answer is sent back with a repair message, at most ``max_repairs`` times;
4. an item that still fails (or whose transport failed after the backend's own retries)
   becomes a :class:`Failure` record (which item, which prompt, the raw answer) and the
   run goes on.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from tqdm.auto import tqdm

from kec._io import canonical_json
from kec.backends.base import Backend, ChatRequest, ChatResult, SamplingParams
from kec.backends.cache import ResponseCache, cache_key
from kec.prompts import PromptTemplate

logger = logging.getLogger(__name__)

RAW_LIMIT = 2000
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


@dataclass(frozen=True)
class Job:
    """One structured question: a prompt template and the values to render it with."""

    item: str
    prompt: PromptTemplate
    values: dict[str, Any]
    labels: tuple[str, ...] = ()


@dataclass
class Failure:
    prompt: str
    item: str
    error: str
    raw: str | None
    attempts: int
    labels: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "item": self.item,
            "labels": list(self.labels),
            "error": self.error,
            "raw": self.raw,
            "attempts": self.attempts,
        }


@dataclass
class Outcome:
    job: Job
    value: dict[str, Any] | None
    failure: Failure | None = None


@dataclass
class Usage:
    calls: int = 0
    cached_calls: int = 0
    repairs: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class AnswerError(ValueError):
    """An answer is not JSON or breaks the prompt's schema."""


def parse_answer(text: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    """Parse a model answer as a JSON object and validate it against ``schema``.

    Accepts code fences and, as constrained decoders sometimes emit them, raw control
    characters inside strings (``json.loads(strict=False)``). Raises :class:`AnswerError`
    with a message that names the JSON path of the first problem.
    """
    t = text.strip()
    m = _FENCE.match(t)
    if m:
        t = m.group(1)
    value: Any = None
    for candidate in (t, t[t.find("{"): t.rfind("}") + 1] if "{" in t else ""):
        if not candidate:
            continue
        try:
            value = json.loads(candidate, strict=False)
            break
        except ValueError:
            continue
    else:
        raise AnswerError(f"not valid JSON: {t[:120]!r}")
    if not isinstance(value, dict):
        raise AnswerError(f"expected a JSON object, got {type(value).__name__}")
    if schema is not None:
        errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: e.path)
        if errors:
            e = errors[0]
            path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.path)
            raise AnswerError(f"{path}: {e.message}")
    return value


def repair_message(error: str, schema: dict[str, Any] | None) -> dict[str, str]:
    text = (
        f"Your previous answer was invalid: {error}\n"
        "Reply again with only one JSON object, no other text"
    )
    if schema is not None:
        text += f", matching this JSON Schema: {canonical_json(schema)}"
    return {"role": "user", "content": text + "."}


class StructuredRunner:
    """Run :class:`Job` batches on a backend with caching, validation and repair.

    Parameters
    ----------
    backend : Backend
    cache : ResponseCache or None
        Persistent cache; ``None`` disables caching.
    params : SamplingParams
    max_repairs : int
        How many times an invalid answer is sent back with a repair message.
    progress : bool or None
        Show a progress bar; ``None`` shows one when stderr is a terminal.
    """

    def __init__(
        self,
        backend: Backend,
        cache: ResponseCache | None = None,
        params: SamplingParams | None = None,
        max_repairs: int = 2,
        progress: bool | None = None,
    ):
        if max_repairs < 0:
            raise ValueError("max_repairs must be >= 0")
        self.backend = backend
        self.cache = cache if cache is not None else ResponseCache(None)
        self.params = params or SamplingParams()
        self.max_repairs = max_repairs
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.usage = Usage()
        self.failures: list[Failure] = []
        self._identity = backend.identity()

    def run(self, jobs: Sequence[Job], desc: str = "llm") -> list[Outcome]:
        n = len(jobs)
        outcomes: list[Outcome | None] = [None] * n
        convs = [list(job.prompt.render(**job.values)) for job in jobs]
        last_raw: list[str | None] = [None] * n
        pending = list(range(n))
        bar = tqdm(total=n, desc=desc, unit="item", disable=not self.progress or n == 0,
                   leave=False)
        try:
            for attempt in range(1, self.max_repairs + 2):
                if not pending:
                    break
                if attempt > 1:
                    self.usage.repairs += len(pending)
                results = self._answers([jobs[i] for i in pending], [convs[i] for i in pending],
                                        bar)
                still: list[int] = []
                for i, res in zip(pending, results):
                    job = jobs[i]
                    schema = job.prompt.response_schema
                    if not res.ok:
                        outcomes[i] = self._fail(job, res.error or "no answer", last_raw[i],
                                                 attempt)
                        bar.update(1)
                        continue
                    assert res.text is not None
                    last_raw[i] = res.text
                    try:
                        outcomes[i] = Outcome(job, parse_answer(res.text, schema))
                        bar.update(1)
                    except AnswerError as exc:
                        logger.info("invalid answer for %s/%s (attempt %d): %s",
                                    job.prompt.id, job.item, attempt, exc)
                        if attempt <= self.max_repairs:
                            convs[i] += [{"role": "assistant", "content": res.text},
                                         repair_message(str(exc), schema)]
                            still.append(i)
                        else:
                            outcomes[i] = self._fail(job, str(exc), res.text, attempt)
                            bar.update(1)
                pending = still
        finally:
            bar.close()
        return [o for o in outcomes if o is not None]

    # -- internals ---------------------------------------------------------------------
    def _fail(self, job: Job, error: str, raw: str | None, attempts: int) -> Outcome:
        failure = Failure(job.prompt.id, job.item, error,
                          raw[:RAW_LIMIT] if raw is not None else None, attempts, job.labels)
        logger.warning("%s failed for %s after %d attempt(s): %s",
                       job.prompt.id, job.item, attempts, error)
        self.failures.append(failure)
        return Outcome(job, None, failure)

    def _answers(self, jobs: list[Job], convs: list[list[dict[str, str]]], bar: tqdm
                 ) -> list[ChatResult]:
        params = self.params.to_dict()
        keys, results = [], []
        misses: list[int] = []
        for k, (job, conv) in enumerate(zip(jobs, convs)):
            key = cache_key(self._identity, job.prompt.ref(), conv, params,
                            job.prompt.response_schema)
            keys.append(key)
            hit = self.cache.get(key)
            if hit is not None:
                self.usage.cached_calls += 1
                results.append(ChatResult(text=hit["text"]))
            else:
                results.append(ChatResult(text=None, error="pending"))
                misses.append(k)
        if not misses:
            return results
        requests = [
            ChatRequest(tuple(convs[k]), jobs[k].prompt.response_schema, self.params,
                        schema_name=jobs[k].prompt.id)
            for k in misses
        ]

        def on_result(j: int, res: ChatResult) -> None:
            self.usage.calls += 1
            self.usage.prompt_tokens += res.prompt_tokens
            self.usage.completion_tokens += res.completion_tokens
            if res.ok:
                self.cache.put(keys[misses[j]], {
                    "text": res.text,
                    "prompt_tokens": res.prompt_tokens,
                    "completion_tokens": res.completion_tokens,
                    "backend": self._identity,
                    "prompt": jobs[misses[j]].prompt.ref(),
                })
            bar.set_postfix(calls=self.usage.calls, cached=self.usage.cached_calls,
                            tokens=self.usage.prompt_tokens + self.usage.completion_tokens,
                            refresh=False)

        fresh = self.backend.complete(requests, on_result=on_result)
        for j, res in zip(misses, fresh):
            results[j] = res
        return results


__all__ = [
    "AnswerError",
    "Failure",
    "Job",
    "Outcome",
    "StructuredRunner",
    "Usage",
    "parse_answer",
    "repair_message",
]

