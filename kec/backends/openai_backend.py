"""Any OpenAI-compatible chat-completions endpoint through the official ``openai`` package.

OpenAI itself, ``vllm serve``, llama.cpp's server, Ollama, ... The transport policy is ours
(the client's own retries are off), so it is the same everywhere and testable:

* requests of a batch run concurrently on an :class:`asyncio` loop, at most
  ``concurrency`` at a time, each under a ``timeout``;
* 408/409/429/5xx answers, timeouts and connection errors are retried with exponential
  backoff and jitter (``Retry-After`` is honoured, capped at ``backoff_max``), at most
  ``max_retries`` times; other HTTP errors (400, 401, 404, ...) fail at once;
* a request that still fails becomes a :class:`~kec.backends.base.ChatResult` with
  ``error`` set; :meth:`OpenAIBackend.complete` never raises for one request;
* servers differ in the structured-output form they accept: OpenAI takes
  ``{"type": "json_schema", ...}``, llama.cpp's server answers it with HTTP 500 but takes
  ``{"type": "json_object", "schema": S}``. With ``structured_output="auto"`` the first
  request probes json_schema -> json_object(+schema) -> none (prompt only), the mode that
  answers is locked and logged, and the other requests wait for the probe.

A bad server cannot crash or exhaust kec:

* every HTTP body is capped at ``max_response_bytes`` while it streams in (a
  ``Content-Length`` over the cap is refused before reading; a never-ending chunked body
  is cut at the cap), and every attempt is bounded by ``timeout`` seconds in all (a
  server that trickles bytes cannot hold a request longer);
* an answer that is not an OpenAI chat completion (an HTML page, no ``choices``, a
  ``content`` that is a number) is a protocol error with a clear message, not retried;
* a circuit breaker stops the run after ``breaker_threshold`` consecutive attempts that
  could not reach the endpoint (connection errors, timeouts, gateway errors 502/503/504,
  protocol errors):
  :meth:`OpenAIBackend.complete` raises :class:`~kec.errors.EndpointDownError`, and every
  answer received before stays cached.

Several base URLs make a pool of replicas serving one model (:mod:`kec.backends.replica_pool`):
each attempt goes to the replica with the fewest requests in flight; a replica that fails
``eject_after`` attempts in a row leaves the rotation and is probed again after ``cooldown``
seconds; a request whose replica fails is retried on another one. The breaker opens only
when every replica is out of rotation and ``breaker_threshold`` attempts in a row failed.
The answers of a pool are keyed without any URL (one cache key per prompt, whichever
replica answered), so a build resumes on any set of replicas; :meth:`describe` records how
many answers each replica gave.

The API key is read from the environment variable named by ``api_key_env`` and goes
nowhere but the ``Authorization`` header: not into :meth:`identity`, :meth:`describe`,
logs, error texts or answers (a server that echoes it gets it scrubbed to ``***``).
:meth:`identity` holds the base URL without credentials, so answers cached from one
endpoint are never served as another endpoint's (a pool's replicas are one endpoint).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import email.utils
import functools
import json
import logging
import os
import random
import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from kec.backends.base import Backend, ChatRequest, ChatResult, ResultCallback
from kec.backends.replica_pool import (
    DEFAULT_COOLDOWN_S,
    DEFAULT_EJECT_AFTER,
    Replica,
    ReplicaPool,
    check_urls,
)
from kec.errors import BackendError, EndpointDownError, KecError

logger = logging.getLogger(__name__)

STRUCTURED_MODES = ("auto", "json_schema", "json_object", "none")
_PROBE_ORDER = ("json_schema", "json_object", "none")
# statuses that may mean "this response_format is not supported" while probing
_FORMAT_REJECTED = frozenset({400, 422, 500, 501})
_RETRYABLE_STATUS = frozenset({408, 409, 429})
_GATEWAY_DOWN = frozenset({502, 503, 504})
_PLACEHOLDER_KEY = "EMPTY"
_SCHEMA_NAME = re.compile(r"[^A-Za-z0-9_-]")
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
DEFAULT_BREAKER_THRESHOLD = 8
_SNIPPET = 80
_NOT_SENT = "not sent: the endpoint is down (circuit breaker open)"
OPENAI_URL = "https://api.openai.com/v1"


class ResponseTooLargeError(Exception):
    """An HTTP body passed the configured size cap (raised while it streams in)."""

    def __init__(self, limit: int, declared: int | None = None):
        what = f"declares {declared} bytes" if declared is not None else "kept coming"
        super().__init__(f"response body {what}, over the {limit}-byte cap "
                         "(max_response_bytes)")
        self.limit = limit


class _Failure(Exception):
    """One failed attempt, classified: retry it or not, after how long, which HTTP status."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None,
                 status: int | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


class _Unreachable(_Failure):
    """A failure that says the endpoint is unusable (counts toward the circuit breaker)."""


class OpenAIBackend(Backend):
    """Chat completions from an OpenAI-compatible server, concurrent and retried.

    Parameters
    ----------
    model : str
        Model name sent with every request.
    base_url : str, sequence of str, or None
        Endpoint root, e.g. ``http://127.0.0.1:8000/v1``; ``None`` means OpenAI. Several
        URLs make a pool of replicas of one model.
    api_key_env : str
        Environment variable holding the API key. Without it a non-OpenAI ``base_url``
        gets the placeholder key ``"EMPTY"``; OpenAI itself raises :class:`BackendError`.
    concurrency : int
        Requests in flight at once.
    timeout : float
        Seconds one HTTP attempt may take.
    max_retries : int
        Retries of a request after a retryable failure (so ``max_retries + 1`` attempts).
    backoff_base, backoff_max : float
        Delay before retry ``k`` is ``backoff_base * 2**(k-1)`` seconds with jitter
        (x0.5 to x1), at most ``backoff_max``; a ``Retry-After`` header replaces it
        (also capped at ``backoff_max``).
    structured_output : {"auto", "json_schema", "json_object", "none"}
        How the prompt's response schema is sent; ``auto`` probes once and locks.
    seed : int or None
        Seed of the jitter generator (the backend's own, not the global one).
    max_response_bytes : int or None
        Largest HTTP body read from the server; a longer one fails the attempt (not
        retried) without being read further. ``None``: ``$KEC_MAX_RESPONSE_BYTES``, else
        4 MiB.
    breaker_threshold : int
        Consecutive attempts that could not reach the endpoint (connection errors,
        timeouts, protocol errors) after which the run stops with
        :class:`~kec.errors.EndpointDownError`; ``0`` disables the breaker. With a pool,
        the breaker opens only while every replica is out of rotation.
    eject_after : int
        Pool: failed attempts in a row that take a replica out of rotation (at most
        ``breaker_threshold``).
    cooldown : float
        Pool: seconds before an ejected replica is probed again.
    """

    name = "openai"

    def __init__(self, model: str, base_url: str | Sequence[str] | None = None,
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 timeout: float = 60.0, max_retries: int = 5, backoff_base: float = 1.0,
                 backoff_max: float = 30.0, structured_output: str = "auto",
                 seed: int | None = None,
                 max_response_bytes: int | None = None,
                 breaker_threshold: int = DEFAULT_BREAKER_THRESHOLD,
                 eject_after: int = DEFAULT_EJECT_AFTER, cooldown: float = DEFAULT_COOLDOWN_S):
        try:
            import openai  # noqa: F401
        except ImportError:
            raise BackendError("the openai backend needs the 'openai' package: "
                               "pip install openai") from None
        if not model:
            raise BackendError("openai backend: a model name is required")
        if structured_output not in STRUCTURED_MODES:
            raise BackendError(f"openai backend: structured_output must be one of "
                               f"{', '.join(STRUCTURED_MODES)}, not {structured_output!r}")
        if concurrency < 1:
            raise BackendError("openai backend: concurrency must be >= 1")
        if timeout <= 0:
            raise BackendError("openai backend: timeout must be > 0")
        if max_retries < 0:
            raise BackendError("openai backend: max_retries must be >= 0")
        if backoff_base < 0 or backoff_max < 0:
            raise BackendError("openai backend: backoff_base and backoff_max must be >= 0")
        if max_response_bytes is None:
            max_response_bytes = _env_int("KEC_MAX_RESPONSE_BYTES", DEFAULT_MAX_RESPONSE_BYTES)
        if max_response_bytes < 1024:
            raise BackendError("openai backend: max_response_bytes must be >= 1024")
        if breaker_threshold < 0:
            raise BackendError("openai backend: breaker_threshold must be >= 0")
        urls = [base_url] if isinstance(base_url, str) else list(base_url or [])
        try:  # None, or an empty list: OpenAI itself
            self.base_urls: tuple[str, ...] = tuple(check_urls(u for u in urls if u))
            if breaker_threshold:
                eject_after = min(eject_after, breaker_threshold)
            self._pool = ReplicaPool(self.base_urls or (OPENAI_URL,), eject_after, cooldown)
        except KecError as exc:
            raise BackendError(f"openai backend: {exc}") from None
        self.model = str(model)
        self.base_url = self.base_urls[0] if self.base_urls else None
        self.api_key_env = api_key_env
        self.concurrency = int(concurrency)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.structured_output = structured_output
        self.max_response_bytes = int(max_response_bytes)
        self.breaker_threshold = int(breaker_threshold)
        self._breaker_open: str | None = None  # why the breaker opened
        self._rng = random.Random(seed)
        # the locked structured-output mode; set at once unless "auto"
        self._mode: str | None = None if structured_output == "auto" else structured_output
        self._mode_note = "" if structured_output == "auto" else "configured"
        key = os.environ.get(api_key_env) if api_key_env else None
        if not key:
            if self._is_openai():
                raise BackendError(
                    f"openai backend: no API key; set the environment variable "
                    f"{api_key_env or 'OPENAI_API_KEY'} (or pass --base-url for a local server)"
                )
            logger.info("openai backend: %s is not set; using a placeholder key for %s",
                        api_key_env, self._public_url())
            key = _PLACEHOLDER_KEY
        self._api_key = key  # only ever handed to the client
        logger.info("openai backend: model %s at %s, concurrency %d, timeout %.0f s, "
                    "%d retries, structured output %s", self.model, self._public_url(),
                    self.concurrency, self.timeout, self.max_retries, structured_output)

    @classmethod
    def from_options(cls, **options: Any) -> OpenAIBackend:
        allowed = {"model", "base_url", "api_key_env", "concurrency", "timeout", "max_retries",
                   "backoff_base", "backoff_max", "structured_output", "seed",
                   "max_response_bytes", "breaker_threshold", "eject_after", "cooldown"}
        unknown = set(options) - allowed
        if unknown:
            logger.info("openai backend ignores options %s", sorted(unknown))
        return cls(**{k: v for k, v in options.items() if k in allowed})

    # -- provenance -----------------------------------------------------------------------
    def _is_openai(self) -> bool:
        hosts = [urlsplit(u).hostname or "" for u in self.base_urls] or ["api.openai.com"]
        return any(h == "openai.com" or h.endswith(".openai.com") for h in hosts)

    @property
    def is_pool(self) -> bool:
        """Whether several base URLs (replicas of one model) were given."""
        return len(self.base_urls) > 1

    def _public_url(self) -> str:
        """The base URL without any user:password part (a pool: every replica's)."""
        return ", ".join(r.public for r in self._pool.replicas)

    def identity(self) -> dict[str, Any]:
        """Backend, model and endpoint (without credentials): the same model name at
        another server is another source of answers. A pool's replicas serve one model,
        so its identity holds no URL: each prompt has one cache key, whichever replica
        answered, and a build resumes on any set of replicas."""
        if self.is_pool:
            return {**super().identity(), "endpoint": "replica pool"}
        return {**super().identity(), "base_url": self._public_url()}

    @property
    def structured_mode(self) -> str | None:
        """The structured-output mode in use; ``None`` while ``auto`` has not decided."""
        return self._mode

    def describe(self) -> dict[str, Any]:
        if self._mode is None:
            structured = "auto (not yet determined)"
        elif self.structured_output == "auto":
            structured = f"{self._mode} (auto-detected)"
        else:
            structured = self._mode
        out = {**self.identity(),
               "structured_output": structured, "concurrency": self.concurrency,
               "timeout_s": self.timeout, "max_retries": self.max_retries}
        if self._mode_note and self.structured_output == "auto":
            out["structured_output_rejected"] = self._mode_note
        if self.is_pool:  # which replica answered how many requests
            out["replicas"] = self._pool.stats()
        return out

    def _scrub(self, text: str) -> str:
        key = self._api_key
        if key and key != _PLACEHOLDER_KEY and len(key) >= 4:
            text = text.replace(key, "***")
        return text

    def scrub(self, text: str) -> str:
        return self._scrub(text)

    # -- circuit breaker ------------------------------------------------------------------
    @property
    def breaker_open(self) -> bool:
        """Whether the circuit breaker stopped calls to the endpoint."""
        return self._breaker_open is not None

    def _note_down(self, replica: Replica, message: str) -> None:
        pool = self._pool
        pool.unreachable(replica, message)
        if (self.breaker_threshold and self._breaker_open is None
                and pool.down_streak >= self.breaker_threshold and pool.all_down()):
            where = (f"every replica ({self._public_url()})" if self.is_pool
                     else self._public_url())
            self._breaker_open = (f"{pool.down_streak} consecutive requests to {where} "
                                  f"failed (last: {message})")
            logger.error("openai backend: circuit breaker open: %s", self._breaker_open)

    def _raise_if_open(self) -> None:
        if self._breaker_open is not None:
            what = (f"every LLM endpoint is down ({len(self._pool)} replicas)" if self.is_pool
                    else "LLM endpoint is down")
            raise EndpointDownError(
                f"{what}: {self._breaker_open}; stopped calling it. Answers "
                "received so far are cached: run the same command again once the server "
                "is back (check --base-url)")

    # -- sync entry point -----------------------------------------------------------------
    def complete(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None
                 ) -> list[ChatResult]:
        """Run ``requests`` concurrently; call ``on_result(i, result)`` as each finishes.

        Runs its own event loop (in a helper thread when the calling thread already runs
        one, e.g. in Jupyter), so it can be called from sync code, repeatedly.
        """
        if not requests:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.acomplete(requests, on_result))
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kec-openai") as ex:
            return ex.submit(asyncio.run, self.acomplete(requests, on_result)).result()

    def _http_client(self) -> Any:
        """An ``httpx.AsyncClient`` whose bodies are capped at ``max_response_bytes``."""
        import httpx

        transport = _capped_transport_class()(self.max_response_bytes)
        return httpx.AsyncClient(transport=transport, timeout=self.timeout + 5.0,
                                 follow_redirects=False)

    async def acomplete(self, requests: Sequence[ChatRequest],
                        on_result: ResultCallback | None = None) -> list[ChatResult]:
        """Async form of :meth:`complete` (one client per replica and call, closed at the
        end).

        Raises
        ------
        EndpointDownError
            The circuit breaker is open (now or from an earlier call).
        """
        from openai import AsyncOpenAI

        self._raise_if_open()
        results: list[ChatResult | None] = [None] * len(requests)
        semaphore = asyncio.Semaphore(self.concurrency)
        probe_lock = asyncio.Lock()
        t0 = time.monotonic()
        async with contextlib.AsyncExitStack() as stack:
            clients = {r.url: await stack.enter_async_context(AsyncOpenAI(
                api_key=self._api_key, base_url=r.url if self.base_urls else None,
                max_retries=0, timeout=self.timeout + 5.0, http_client=self._http_client()))
                for r in self._pool.replicas}

            async def run_one(i: int, request: ChatRequest) -> None:
                async with semaphore:
                    res = await self._with_retries(clients, i, request, probe_lock)
                results[i] = res
                if on_result is not None and res.error != _NOT_SENT:
                    on_result(i, res)

            await asyncio.gather(*(run_one(i, r) for i, r in enumerate(requests)))
        done = [r for r in results if r is not None]
        failed = sum(not r.ok for r in done)
        logger.info("openai backend: %d request(s) in %.1f s, %d failed", len(done),
                    time.monotonic() - t0, failed)
        if self.is_pool:
            logger.info("answers so far per replica: %s", ", ".join(
                f"{r.public} {r.answered}" for r in self._pool.replicas))
        self._raise_if_open()
        return done

    # -- one request ----------------------------------------------------------------------
    async def _with_retries(self, clients: dict[str, Any], i: int, request: ChatRequest,
                            probe_lock: asyncio.Lock) -> ChatResult:
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            if self._breaker_open is not None:
                return ChatResult(text=None, error=_NOT_SENT)
            try:
                return await self._attempt(clients, i, request, probe_lock)
            except _Failure as f:  # the replica's health is noted in _call
                if self._breaker_open is not None:
                    return ChatResult(text=None, error=self._scrub(
                        f"{f.message} (circuit breaker open)"))
                if not f.retryable:
                    logger.warning("request %d failed, not retried: %s", i, f.message)
                    return ChatResult(text=None, error=self._scrub(f"{f.message} (not retried)"))
                if attempt == attempts:
                    logger.warning("request %d failed after %d attempt(s): %s", i, attempts,
                                   f.message)
                    return ChatResult(text=None, error=self._scrub(
                        f"{f.message} (gave up after {attempts} attempt(s))"))
                delay = self._backoff(attempt, f.retry_after)
                logger.info("request %d: %s; retry %d/%d in %.2f s", i, f.message, attempt,
                            self.max_retries, delay)
                await asyncio.sleep(delay)
            except Exception as exc:  # a bug here must not end the build
                error = self._scrub(f"{type(exc).__name__}: {exc}")
                logger.error("request %d: unexpected error: %s", i, error)
                return ChatResult(text=None, error=error)
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max)
        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return delay * (0.5 + 0.5 * self._rng.random())

    async def _attempt(self, clients: dict[str, Any], i: int, request: ChatRequest,
                       probe_lock: asyncio.Lock) -> ChatResult:
        if request.schema is None:
            return await self._call(clients, request, "none")
        if self._mode is not None:
            return await self._call(clients, request, self._mode)
        async with probe_lock:  # the first request probes, the others wait for it
            if self._mode is not None:  # decided while this one waited
                mode = self._mode
            else:
                return await self._probe(clients, i, request)
        return await self._call(clients, request, mode)

    async def _probe(self, clients: dict[str, Any], i: int, request: ChatRequest
                     ) -> ChatResult:
        """Try json_schema -> json_object -> none on this request; lock the first that
        answers. If every form fails, nothing is learnt: the last failure is raised (the
        server fails whatever the format) and the next attempt probes again."""
        rejected: list[str] = []
        last: _Failure | None = None
        for mode in _PROBE_ORDER:
            try:
                result = await self._call(clients, request, mode)
            except _Failure as f:
                status = f.status
                if status in _FORMAT_REJECTED:
                    logger.debug("request %d: response_format %s answered %s", i, mode,
                                 f.message)
                    rejected.append(f"{mode}: HTTP {status}")
                    last = f
                    continue
                raise  # transport trouble says nothing about the format
            self._mode = mode
            self._mode_note = "; ".join(rejected)
            if rejected:
                logger.warning("structured output: server rejected %s; using %s from now on",
                               ", ".join(rejected), _MODE_LABEL[mode])
            else:
                logger.info("structured output: server accepts %s; using it from now on",
                            _MODE_LABEL[mode])
            return result
        assert last is not None
        logger.info("request %d: every structured-output form failed (%s); structured "
                    "output stays undecided", i, "; ".join(rejected))
        raise last

    async def _call(self, clients: dict[str, Any], request: ChatRequest, mode: str
                    ) -> ChatResult:
        """One HTTP attempt on the replica the pool picks; its outcome is noted there."""
        replica = self._pool.acquire()
        try:
            result = await self._request(clients[replica.url], replica.public, request, mode)
        except _Unreachable as f:
            self._note_down(replica, f.message)
            raise
        except _Failure:
            self._pool.reached(replica, answered=False)  # the server answered: it is up
            raise
        finally:
            self._pool.release(replica)
        self._pool.reached(replica, answered=True)
        logger.debug("answer from %s", replica.public)
        return result

    async def _request(self, client: Any, url: str, request: ChatRequest, mode: str
                       ) -> ChatResult:
        import openai

        p = request.params
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in request.messages],
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
        }
        if p.seed is not None:
            kwargs["seed"] = p.seed
        fmt = self._response_format(request, mode)
        if fmt is not None:
            kwargs["response_format"] = fmt
        try:
            raw = await asyncio.wait_for(
                client.chat.completions.with_raw_response.create(**kwargs),
                timeout=self.timeout)
        except asyncio.TimeoutError:
            raise _Unreachable(f"timed out after {self.timeout:g} s", retryable=True) from None
        except ResponseTooLargeError as exc:  # raised while the client reads the body
            raise _Failure(f"{exc} (not read further)", retryable=False) from None
        except openai.APITimeoutError:
            raise _Unreachable(f"timed out after {self.timeout:g} s", retryable=True) from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__
            if isinstance(cause, ResponseTooLargeError):
                raise _Failure(f"{cause} (not read further)", retryable=False) from None
            detail = f"{type(cause).__name__}: {cause}" if cause else str(exc)
            raise _Unreachable(self._scrub(f"connection error ({detail})"), retryable=True
                               ) from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            # error bodies may quote the key (OpenAI's 401 does): scrub before anything
            # logs or stores the message
            # a gateway error means the model server behind it is down: the breaker counts it
            kind = _Unreachable if status in _GATEWAY_DOWN else _Failure
            raise kind(self._scrub(f"HTTP {status}: {_error_message(exc)}"),
                       retryable=status in _RETRYABLE_STATUS or status >= 500,
                       retry_after=_retry_after(exc.response.headers),
                       status=status) from None
        except openai.APIResponseValidationError as exc:
            raise _Failure(self._scrub(f"malformed response: {exc}"), retryable=True
                           ) from None
        http = raw.http_response
        try:
            body = http.content
        except Exception as exc:  # httpx.ResponseNotRead and friends: treat as transport
            raise _Unreachable(self._scrub(f"connection error ({type(exc).__name__}: {exc})"),
                               retryable=True) from None
        completion = self._completion(body, http.headers.get("content-type", ""), url)
        return self._result(completion, p.max_tokens)

    def _protocol_error(self, what: str, body: bytes, url: str) -> _Unreachable:
        """Not retried, and counted by the circuit breaker: a server that answers this
        way will not answer any request properly."""
        snippet = " ".join(body[:_SNIPPET].decode("utf-8", "replace").split())
        tail = f"; body starts {snippet!r}" if snippet else ""
        return _Unreachable(self._scrub(
            f"protocol error: {what}; the server at {url} does not speak the "
            f"OpenAI chat-completions API (is --base-url its API root, e.g. "
            f"http://HOST:PORT/v1?){tail}"), retryable=False)

    def _completion(self, body: bytes, content_type: str, url: str) -> dict[str, Any]:
        """The body as a chat-completion dict, or a protocol error saying what is wrong."""
        ctype = content_type.split(";")[0].strip().lower()
        if ctype and "json" not in ctype:
            raise self._protocol_error(f"HTTP 200 with Content-Type {ctype!r}, not JSON",
                                       body, url)
        try:
            data = json.loads(body)
        except RecursionError:
            raise self._protocol_error("the JSON body is nested too deeply", b"", url) from None
        except ValueError:
            raise self._protocol_error("HTTP 200 whose body is not JSON", body, url) from None
        if not isinstance(data, dict):
            raise self._protocol_error(f"the body is a JSON {type(data).__name__}, not an "
                                       "object", body, url)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            what = "an empty 'choices' list" if choices == [] else "no 'choices' list"
            raise self._protocol_error(f"a completion with {what}", body, url)
        if not isinstance(choices[0], dict) or not isinstance(choices[0].get("message"),
                                                               dict):
            raise self._protocol_error("choices[0] has no 'message' object", body, url)
        return data

    def _result(self, data: dict[str, Any], max_tokens: int) -> ChatResult:
        choice = data["choices"][0]
        message = choice["message"]
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        prompt_tokens = _count(usage.get("prompt_tokens"))
        completion_tokens = _count(usage.get("completion_tokens"))
        content = message.get("content")
        refusal = message.get("refusal")
        if content is None and refusal:
            return ChatResult(text=None, prompt_tokens=prompt_tokens,
                              completion_tokens=completion_tokens,
                              error=self._scrub(f"model refused: {str(refusal)[:300]}"))
        text = _content_text(content)
        if text is None:
            kind = {bool: "boolean", int: "number", float: "number", dict: "object",
                    list: "list of non-text parts"}.get(type(content), type(content).__name__)
            raise _Failure(f"protocol error: message.content is a {kind}, not a string",
                           retryable=False)
        if choice.get("finish_reason") == "length":
            logger.debug("answer hit max_tokens=%d (finish_reason=length)", max_tokens)
        return ChatResult(text=self._scrub(text), prompt_tokens=prompt_tokens,
                          completion_tokens=completion_tokens)

    @staticmethod
    def _response_format(request: ChatRequest, mode: str) -> dict[str, Any] | None:
        if request.schema is None or mode == "none":
            return None
        if mode == "json_schema":
            name = _SCHEMA_NAME.sub("_", request.schema_name)[:64] or "response"
            # $schema/$id are metadata that some servers refuse inside response_format
            schema = {k: v for k, v in request.schema.items() if k not in ("$schema", "$id")}
            return {"type": "json_schema",
                    "json_schema": {"name": name, "schema": schema, "strict": False}}
        return {"type": "json_object", "schema": request.schema}


_MODE_LABEL = {
    "json_schema": "response_format json_schema",
    "json_object": "response_format json_object + schema",
    "none": "no response_format (prompt only)",
}


def _env_int(name: str, default: int) -> int:
    """An integer setting from the environment (``default`` when unset)."""
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise BackendError(f"{name} must be an integer, not {value!r}") from None


def _count(value: Any) -> int:
    """A token count from ``usage``: a non-negative int, else 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return max(int(value), 0) if value == value and abs(value) < 2**53 else 0


def _content_text(content: Any) -> str | None:
    """``message.content`` as text: a string, ``None`` (empty), or a list of text parts
    (``[{"type": "text", "text": ...}]``). ``None`` for anything else (a number, an
    object): the caller reports it as a protocol error."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
            isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
            for b in content):
        return "".join(b["text"] for b in content)
    return None


@functools.cache
def _capped_transport_class() -> type:
    """An httpx async transport class whose response bodies stop at a byte cap (built
    lazily: httpx comes with the optional ``openai`` package)."""
    import httpx

    class CappedStream(httpx.AsyncByteStream):
        def __init__(self, inner: Any, limit: int):
            self._inner = inner
            self._limit = limit

        async def __aiter__(self) -> Any:
            seen = 0
            async for chunk in self._inner:
                seen += len(chunk)
                if seen > self._limit:
                    raise ResponseTooLargeError(self._limit)
                yield chunk

        async def aclose(self) -> None:
            await self._inner.aclose()

    class CappedTransport(httpx.AsyncBaseTransport):
        def __init__(self, limit: int):
            self._inner = httpx.AsyncHTTPTransport()
            self._limit = limit

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await self._inner.handle_async_request(request)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._limit:
                await response.aclose()
                raise ResponseTooLargeError(self._limit, int(declared))
            response.stream = CappedStream(response.stream, self._limit)
            return response

        async def aclose(self) -> None:
            await self._inner.aclose()

    return CappedTransport


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    msg: Any = None
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err
    text = str(msg if msg is not None else getattr(exc, "message", exc))
    text = " ".join(text.split())
    return text[:300] + ("..." if len(text) > 300 else "")


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


__all__ = ["STRUCTURED_MODES", "OpenAIBackend"]
