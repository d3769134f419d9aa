r"""Schema-validated structured answers on any backend: cache, repair retries, failures.

Every backend gets the same treatment here:

1. each request is looked up in the persistent :class:`~kec.backends.cache.ResponseCache`;
   misses go to the backend in one batch (so batched/concurrent backends stay fast) and
   every answer is cached the moment it arrives;
2. each answer is parsed as JSON and validated against the prompt's response schema;
3. an invalid answer is sent back with a repair message that names the problem, at most
   ``max_repairs`` times, and every retry changes the sample: attempt :math:`n \ge 1`
   is drawn with seed :math:`s + n` at temperature :math:`\max(t, 0.7)`
   (:func:`attempt_params`);
4. an item that still fails (or whose transport failed after the backend's own retries)
   becomes a :class:`Failure` record (which item, which prompt, a short reason, the raw
   answer) and the run goes on.

An invalid answer is never final, even from the cache: a re-run replays the cached
attempts (no calls) and then spends one new round of ``max_repairs + 1`` attempts, each
on a seed no earlier run used, so "re-run to retry" always draws new samples.

A bad answer cannot crash or exhaust a run: answers are scrubbed of the backend's secret
(:meth:`Backend.scrub`) before they are cached or logged; an answer over
``max_answer_chars`` fails at once, is neither cached nor echoed in a repair; an answer
that cannot be parsed at all (nested too deeply, ...) is an :class:`AnswerError`, and a
cached answer that breaks the runner is dropped from the cache. Two runs sharing one
cache lock each key (:meth:`ResponseCache.lock`), so a paid request is made once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from jsonschema import Draft202012Validator
from tqdm.auto import tqdm

from kec._io import canonical_json
from kec.backends.base import Backend, ChatRequest, ChatResult, SamplingParams
from kec.backends.cache import ResponseCache, cache_key
from kec.prompts import PromptTemplate

logger = logging.getLogger(__name__)

RAW_LIMIT = 2000
REASON_LIMIT = 120
DEFAULT_MAX_ANSWER_CHARS = 200_000
RETRY_TEMPERATURE = 0.7  # kec's choice: least temperature of a retry
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
    """An item without a usable answer.

    ``answered`` tells the two kinds apart: ``True`` when the model answered but every
    answer was invalid, ``False`` when no answer came (transport error, refusal, an
    answer over the size limit). ``reason`` is one short line for terminals; ``error``
    the full last error and ``raw`` the last raw answer (cut to 2,000 characters).
    """

    prompt: str
    item: str
    error: str
    raw: str | None
    attempts: int
    labels: tuple[str, ...] = ()
    reason: str = ""
    answered: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "item": self.item,
            "labels": list(self.labels),
            "reason": self.reason or short_reason(self.error),
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
    """Request counts: ``calls`` got an answer from the backend, ``failed_calls`` did not
    (transport errors after retries, refusals, an open circuit breaker), ``cached_calls``
    were answered by the cache."""

    calls: int = 0
    failed_calls: int = 0
    cached_calls: int = 0
    repairs: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class AnswerError(ValueError):
    """An answer is not JSON, breaks the prompt's schema, or says nothing usable.

    ``reason`` is a short form without the answer's text (for one-line reports);
    ``content`` is true for a well-formed answer whose content is unusable (a
    placeholder): its repair message then omits the schema, which small models copy.
    """

    def __init__(self, message: str, reason: str | None = None, content: bool = False):
        super().__init__(message)
        self.reason = reason or short_reason(message)
        self.content = content


def short_reason(text: str, limit: int = REASON_LIMIT) -> str:
    """The first line of ``text``, cut to ``limit`` characters (what prints it escapes
    control characters)."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else "no answer"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def parse_answer(text: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    """Parse a model answer as a JSON object and validate it against ``schema``.

    Accepts code fences and, as constrained decoders sometimes emit them, raw control
    characters inside strings (``json.loads(strict=False)``). Raises :class:`AnswerError`
    with a message that names the JSON path of the first problem.
    """
    if not isinstance(text, str):
        raise AnswerError(f"expected the answer as text, got {type(text).__name__}")
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
        except RecursionError:
            raise AnswerError("JSON nested too deeply to parse") from None
        except ValueError:
            continue
    else:
        raise AnswerError(f"not valid JSON: {t[:120]!r}",
                          "not valid JSON" + (" (cut off)" if t.count("{") > t.count("}")
                                              else ""))
    if not isinstance(value, dict):
        raise AnswerError(f"expected a JSON object, got {type(value).__name__}")
    if schema is not None:
        try:
            errors = sorted(Draft202012Validator(schema).iter_errors(value),
                            key=lambda e: [(isinstance(p, str), p) for p in e.path])
        except RecursionError:
            raise AnswerError("JSON nested too deeply to validate") from None
        if errors:
            e = errors[0]
            path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.path)
            message = e.message if len(e.message) <= 300 else e.message[:300] + "..."
            raise AnswerError(f"{path[:200]}: {message}",
                              f"breaks the schema at {path[:60]} ({e.validator})")
    return value


def attempt_params(params: SamplingParams, attempt: int) -> SamplingParams:
    r"""The sampling of attempt ``attempt`` (0 = the first) of one item.

    The first attempt uses ``params`` as given (greedy by default, reproducible). Each
    later one draws a new sample: seed :math:`s + n` (kept ``None`` for backends without
    seeds) at temperature :math:`\max(t, 0.7)`. So a retry never repeats a greedy
    answer, and attempts, their cache keys included, are distinct.
    """
    if attempt == 0:
        return params
    seed = None if params.seed is None else params.seed + attempt
    return replace(params, temperature=max(params.temperature, RETRY_TEMPERATURE),
                   seed=seed)


def repair_message(error: str, schema: dict[str, Any] | None) -> dict[str, str]:
    text = (
        f"Your previous answer was invalid: {error}\n"
        "Reply again with only one JSON object, no other text"
    )
    if schema is not None:
        text += f", matching this JSON Schema: {canonical_json(schema)}"
    return {"role": "user", "content": text + "."}


@dataclass
class _Item:
    """One job's progress through its attempts in :meth:`StructuredRunner.run`."""

    base: list[dict[str, str]]  # the rendered prompt
    conv: list[dict[str, str]] = field(default_factory=list)  # what attempt n sends
    attempt: int = 0  # n: attempts before this one, cached replays included
    fresh: int = 0  # attempts this run sent to the backend
    raw: str | None = None  # the last raw answer

    def next_attempt(self, round_length: int, answer: str, repair: dict[str, str]) -> None:
        """Move to attempt n + 1: the same conversation with the invalid answer and a
        repair message, or, at the start of a new round of ``round_length`` attempts,
        the prompt alone (a small model copies its own bad answer)."""
        self.attempt += 1
        if self.attempt % round_length == 0:
            self.conv = list(self.base)
        else:
            self.conv = [*self.conv, {"role": "assistant", "content": answer}, repair]


class StructuredRunner:
    """Run :class:`Job` batches on a backend with caching, validation and repair.

    Parameters
    ----------
    backend : Backend
    cache : ResponseCache or None
        Persistent cache; ``None`` disables caching.
    params : SamplingParams
    max_repairs : int
        How many times an invalid answer is sent back with a repair message in one run;
        each run spends at most ``max_repairs + 1`` new requests on an item.
    progress : bool or None
        Show a progress bar; ``None`` shows one when stderr is a terminal.
    validate : callable or None
        ``validate(job, value)`` raises :class:`AnswerError` for a schema-valid value that
        is still unusable (e.g. a placeholder); it is then repaired like a schema error.
    max_answer_chars : int or None
        Longest answer accepted; a longer one fails at once, is not cached and is never
        sent back in a repair. ``None``: ``$KEC_MAX_ANSWER_CHARS``, else 200,000.
    """

    def __init__(
        self,
        backend: Backend,
        cache: ResponseCache | None = None,
        params: SamplingParams | None = None,
        max_repairs: int = 2,
        progress: bool | None = None,
        validate: Callable[[Job, dict[str, Any]], None] | None = None,
        max_answer_chars: int | None = None,
    ):
        if max_repairs < 0:
            raise ValueError("max_repairs must be >= 0")
        if max_answer_chars is None:
            env = os.environ.get("KEC_MAX_ANSWER_CHARS")
            max_answer_chars = int(env) if env and env.isdigit() else DEFAULT_MAX_ANSWER_CHARS
        if max_answer_chars < 1:
            raise ValueError("max_answer_chars must be >= 1")
        self.backend = backend
        self.cache = cache if cache is not None else ResponseCache(None)
        self.params = params or SamplingParams()
        self.max_repairs = max_repairs
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.validate = validate
        self.max_answer_chars = int(max_answer_chars)
        self.usage = Usage()
        self.failures: list[Failure] = []
        self._identity = backend.identity()

    def _parse(self, job: Job, text: str) -> dict[str, Any]:
        value = parse_answer(text, job.prompt.response_schema)
        if self.validate is not None:
            self.validate(job, value)
        return value

    def _too_long(self, text: str) -> str | None:
        if len(text) > self.max_answer_chars:
            return (f"answer of {len(text)} characters is over the {self.max_answer_chars}"
                    "-character limit (max_answer_chars); not repaired")
        return None

    def run(self, jobs: Sequence[Job], desc: str = "llm") -> list[Outcome]:
        """Answer ``jobs``; one :class:`Outcome` per job, in order."""
        items = [_Item(list(job.prompt.render(**job.values))) for job in jobs]
        for it in items:
            it.conv = list(it.base)
        outcomes: list[Outcome | None] = [None] * len(jobs)
        pending = list(range(len(jobs)))
        bar = tqdm(total=len(jobs), desc=desc, unit="item",
                   disable=not self.progress or not jobs, leave=False)
        try:
            while pending:
                params = [attempt_params(self.params, items[i].attempt) for i in pending]
                self.usage.repairs += sum(items[i].attempt > 0 for i in pending)
                results, keys, cached = self._answers(
                    [jobs[i] for i in pending], [items[i].conv for i in pending], params,
                    bar)
                still: list[int] = []
                for i, res, key, from_cache in zip(pending, results, keys, cached):
                    items[i].fresh += not from_cache
                    outcome = self._check(jobs[i], items[i], res, key, from_cache)
                    if outcome is None:
                        still.append(i)
                    else:
                        outcomes[i] = outcome
                        bar.update(1)
                pending = still
        finally:
            bar.close()
        return [o for o in outcomes if o is not None]

    def _check(self, job: Job, it: _Item, res: ChatResult, key: str, from_cache: bool
               ) -> Outcome | None:
        """The outcome of one answer, or ``None`` when the item gets another attempt."""
        attempts = it.attempt + 1
        if not res.ok:
            return self._fail(job, res.error or "no answer", it.raw, attempts)
        assert res.text is not None
        too_long = self._too_long(res.text)
        if too_long:
            return self._fail(job, too_long, res.text, attempts)
        it.raw = res.text
        try:
            return Outcome(job, self._parse(job, res.text))
        except AnswerError as exc:
            logger.info("invalid answer for %s/%s (attempt %d%s): %s", job.prompt.id,
                        job.item, attempts, ", cached" if from_cache else "", exc)
            if it.fresh > self.max_repairs:  # this run's new attempts are spent
                return self._fail(job, str(exc), res.text, attempts, exc.reason,
                                  answered=True)
            it.next_attempt(self.max_repairs + 1, res.text,
                            repair_message(str(exc), None if exc.content
                                           else job.prompt.response_schema))
            return None
        except Exception as exc:  # never let one answer (or a cached one) crash
            error = f"answer could not be checked ({type(exc).__name__}: {exc})"
            if from_cache:
                self.cache.invalidate(key)
                error += "; dropped from the cache"
            return self._fail(job, error[:500], res.text, attempts, answered=True)

    # -- internals ---------------------------------------------------------------------
    def _fail(self, job: Job, error: str, raw: str | None, attempts: int,
              reason: str | None = None, answered: bool = False) -> Outcome:
        failure = Failure(job.prompt.id, job.item, error,
                          raw[:RAW_LIMIT] if raw is not None else None, attempts, job.labels,
                          reason or short_reason(error), answered)
        # one short line; the full error and the raw answer are in the Failure record
        logger.log(logging.INFO if answered else logging.WARNING,
                   "%s %s for %s after %d attempt(s): %s", job.prompt.id,
                   "got only invalid answers" if answered else "got no answer", job.item,
                   attempts, failure.reason)
        self.failures.append(failure)
        return Outcome(job, None, failure)

    def _cached(self, key: str) -> ChatResult | None:
        """A usable cache hit, or ``None``; an oversized entry is dropped."""
        hit = self.cache.get(key)
        if hit is None:
            return None
        text = self.backend.scrub(hit["text"])
        if self._too_long(text):
            logger.warning("dropping an oversized cached answer (%d characters)", len(text))
            self.cache.invalidate(key)
            return None
        return ChatResult(text=text)

    def _answers(self, jobs: list[Job], convs: list[list[dict[str, str]]],
                 params: list[SamplingParams], bar: tqdm
                 ) -> tuple[list[ChatResult], list[str], list[bool]]:
        """Answers for ``jobs`` (cache first), their cache keys, and which were cached.

        A miss is sent only while this process holds the key's lock; a key another run is
        asking for is waited on and then read from the cache."""
        keys = [cache_key(self._identity, job.prompt.ref(), conv, p.to_dict(),
                          job.prompt.response_schema)
                for job, conv, p in zip(jobs, convs, params)]
        results: list[ChatResult] = [ChatResult(text=None, error="pending")] * len(jobs)
        cached = [False] * len(jobs)
        todo = list(range(len(jobs)))
        while todo:
            busy: list[int] = []
            with contextlib.ExitStack() as held:  # released once this batch is answered
                mine = []
                for k in todo:
                    hit = self._cached(keys[k])
                    if hit is None:
                        lock = self.cache.lock(keys[k], blocking=False)
                        if lock is None:
                            busy.append(k)
                            continue
                        held.enter_context(lock)
                        hit = self._cached(keys[k])  # answered since the first look
                    if hit is not None:
                        self.usage.cached_calls += 1
                        results[k], cached[k] = hit, True
                    else:
                        mine.append(k)
                if mine:
                    self._send(jobs, convs, params, keys, mine, results, bar)
            if busy:  # holding no lock, wait for the other run's answers, then look again
                logger.info("%d request(s) are being answered by another run on this "
                            "cache; waiting for them", len(busy))
                for k in busy:
                    lock = self.cache.lock(keys[k], blocking=True)
                    assert lock is not None
                    with lock:
                        pass
            todo = busy
        return results, keys, cached

    def _send(self, jobs: list[Job], convs: list[list[dict[str, str]]],
              params: list[SamplingParams], keys: list[str], misses: list[int],
              results: list[ChatResult], bar: tqdm) -> None:
        requests = [
            ChatRequest(tuple(convs[k]), jobs[k].prompt.response_schema, params[k],
                        schema_name=jobs[k].prompt.id)
            for k in misses
        ]

        def on_result(j: int, res: ChatResult) -> None:
            if res.ok:
                self.usage.calls += 1
            else:
                self.usage.failed_calls += 1
            self.usage.prompt_tokens += res.prompt_tokens
            self.usage.completion_tokens += res.completion_tokens
            if res.text is not None:
                res.text = self.backend.scrub(res.text)
            if res.error is not None:
                res.error = self.backend.scrub(res.error)
            if res.ok and res.text is not None and not self._too_long(res.text):
                self.cache.put(keys[misses[j]], {
                    "text": res.text,
                    "prompt_tokens": res.prompt_tokens,
                    "completion_tokens": res.completion_tokens,
                    "backend": self._identity,
                    "prompt": jobs[misses[j]].prompt.ref(),
                })
            bar.set_postfix(calls=self.usage.calls, failed=self.usage.failed_calls,
                            cached=self.usage.cached_calls,
                            tokens=self.usage.prompt_tokens + self.usage.completion_tokens,
                            refresh=False)

        fresh = self.backend.complete(requests, on_result=on_result)
        for j, res in zip(misses, fresh):
            results[j] = res


__all__ = [
    "AnswerError",
    "Failure",
    "Job",
    "Outcome",
    "StructuredRunner",
    "Usage",
    "attempt_params",
    "parse_answer",
    "repair_message",
    "short_reason",
]

