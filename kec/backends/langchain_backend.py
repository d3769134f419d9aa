"""Any LangChain chat model: ``init_chat_model("provider:model")`` or an instance.

Requests are batched with LangChain's own ``batch_as_completed`` (``max_concurrency``),
so ``on_result`` is called as each answer arrives and the runner caches it at once.
Retries and timeouts are the chat model's own (``max_retries`` / ``timeout`` are passed to
``init_chat_model`` when given).

Three ways to ask for structured answers (``structured``):

``"prompt"`` (default)
    plain messages; the prompt asks for JSON and the runner parses, validates and repairs;
``"json_mode"``
    the model is bound with ``response_format={"type": "json_object", "schema": S}``
    (OpenAI-compatible servers: OpenAI JSON mode, llama.cpp, vLLM);
``"function_calling"``
    ``with_structured_output(S, method="function_calling", include_raw=True)``; the tool
    call's arguments become the answer text.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kec._io import canonical_json
from kec.backends.base import Backend, ChatRequest, ChatResult, ResultCallback, SamplingParams
from kec.errors import BackendError, MissingDependencyError

logger = logging.getLogger(__name__)

STRUCTURED_MODES = ("prompt", "json_mode", "function_calling")
_PLACEHOLDER_KEY = "EMPTY"
_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]")
_SAMPLING_FIELDS = ("temperature", "max_tokens", "top_p", "seed")
_ERROR_LIMIT = 500


class LangChainBackend(Backend):
    """Chat completions through a LangChain chat model.

    Parameters
    ----------
    model : str or None
        ``"provider:model"`` for ``init_chat_model`` (e.g. ``"openai:gpt-4o-mini"``);
        ignored for identity when ``chat_model`` is given.
    chat_model : BaseChatModel or None
        A ready chat model instance; used as is (plus the request's sampling parameters).
    base_url : str or None
        Passed to ``init_chat_model`` (OpenAI-compatible providers).
    api_key_env : str or None
        Environment variable with the API key, passed as ``api_key``. ``None`` lets the
        provider read its own variable, except with ``base_url``: a custom endpoint gets
        only the key named here, else the placeholder ``"EMPTY"`` (so a local server
        never receives e.g. ``OPENAI_API_KEY`` by accident).
    concurrency : int
        ``max_concurrency`` of the batch.
    structured : {"prompt", "json_mode", "function_calling"}
        How the prompt's response schema is used (see the module docstring).
    timeout, max_retries : float, int or None
        Passed to ``init_chat_model`` when given.
    apply_sampling : bool
        Copy the model with each request's temperature / max_tokens / top_p / seed (only
        fields the model class declares). ``False`` keeps the model's own settings.
    """

    name = "langchain"

    def __init__(self, model: str | None = None, chat_model: Any = None,
                 base_url: str | None = None, api_key_env: str | None = None,
                 concurrency: int = 8, structured: str = "prompt",
                 timeout: float | None = None, max_retries: int | None = None,
                 apply_sampling: bool = True):
        try:
            from langchain_core.language_models import BaseChatModel
        except ImportError:
            raise MissingDependencyError("langchain-core", "langchain",
                                         "the langchain backend") from None
        if structured not in STRUCTURED_MODES:
            raise BackendError(f"langchain backend: structured must be one of "
                               f"{', '.join(STRUCTURED_MODES)}, not {structured!r}")
        if concurrency < 1:
            raise BackendError("langchain backend: concurrency must be >= 1")
        self.structured = structured
        self.concurrency = int(concurrency)
        self.apply_sampling = apply_sampling
        self.base_url = base_url.rstrip("/") if base_url else None
        self._secret: str | None = None  # only for scrubbing error texts
        if chat_model is not None:
            if not isinstance(chat_model, BaseChatModel):
                raise BackendError(f"langchain backend: chat_model must be a LangChain "
                                   f"BaseChatModel, not {type(chat_model).__name__}")
            name = (getattr(chat_model, "model_name", None) or getattr(chat_model, "model", None)
                    or "")
            self.model = f"{type(chat_model).__name__}:{name}" if name else type(
                chat_model).__name__
            self._chat_model = chat_model
            logger.info("langchain backend: using the given %s", self.model)
        else:
            if not model:
                raise BackendError("langchain backend: give a 'provider:model' string or a "
                                   "chat_model instance")
            self.model = str(model)
            self._chat_model = self._init_model(self.model, api_key_env, timeout, max_retries)
        logger.info("langchain backend: %s, structured=%s, concurrency %d", self.model,
                    structured, self.concurrency)

    @classmethod
    def from_options(cls, **options: Any) -> LangChainBackend:
        allowed = {"model", "chat_model", "base_url", "api_key_env", "concurrency",
                   "structured", "timeout", "max_retries", "apply_sampling"}
        unknown = set(options) - allowed
        if unknown:
            logger.info("langchain backend ignores options %s", sorted(unknown))
        return cls(**{k: v for k, v in options.items() if k in allowed})

    def _init_model(self, model: str, api_key_env: str | None, timeout: float | None,
                    max_retries: int | None) -> Any:
        try:
            from langchain.chat_models import init_chat_model
        except ImportError:
            raise MissingDependencyError("langchain", "langchain",
                                         "the langchain backend (init_chat_model)") from None
        kwargs: dict[str, Any] = {}
        if self.base_url:
            kwargs["base_url"] = self.base_url
        key = os.environ.get(api_key_env) if api_key_env else None
        if key:
            kwargs["api_key"] = key
            self._secret = key
        elif self.base_url:
            # a custom endpoint never gets the provider's default key (e.g. OPENAI_API_KEY)
            # by accident: only the variable named by api_key_env is sent there
            logger.info("langchain backend: %s; using a placeholder key for %s",
                        f"{api_key_env} is not set" if api_key_env else "no api_key_env given",
                        self._public_url())
            kwargs["api_key"] = _PLACEHOLDER_KEY
        if timeout is not None:
            kwargs["timeout"] = timeout
        if max_retries is not None:
            kwargs["max_retries"] = max_retries
        try:
            return init_chat_model(model, **kwargs)
        except ImportError as exc:
            raise BackendError(f"langchain backend: {self._scrub(str(exc))}") from None
        except (ValueError, TypeError) as exc:
            raise BackendError(f"langchain backend: cannot create '{model}': "
                               f"{self._scrub(str(exc))}") from None

    # -- provenance -----------------------------------------------------------------------
    def _public_url(self) -> str | None:
        if self.base_url is None:
            return None
        parts = urlsplit(self.base_url)
        netloc = parts.hostname or ""
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def identity(self) -> dict[str, Any]:
        """Backend, model and, when given, the endpoint without credentials."""
        out = super().identity()
        if self.base_url:
            out["base_url"] = self._public_url()
        return out

    def describe(self) -> dict[str, Any]:
        return {**self.identity(), "chat_model_class": type(self._chat_model).__name__,
                "structured": self.structured, "concurrency": self.concurrency}

    def _scrub(self, text: str) -> str:
        if self._secret and len(self._secret) >= 4:
            text = text.replace(self._secret, "***")
        return text

    def scrub(self, text: str) -> str:
        return self._scrub(text)

    # -- runnables ------------------------------------------------------------------------
    def _with_sampling(self, params: SamplingParams) -> Any:
        model = self._chat_model
        if not self.apply_sampling:
            return model
        fields = getattr(type(model), "model_fields", {})
        values = params.to_dict()
        update = {f: values[f] for f in _SAMPLING_FIELDS if f in fields and values[f] is not None}
        skipped = [f for f in _SAMPLING_FIELDS if f not in update and values[f] is not None]
        if skipped:
            logger.debug("langchain backend: %s has no field(s) %s; not applied",
                         type(model).__name__, skipped)
        return model.model_copy(update=update) if update else model

    def _runnable(self, params: SamplingParams, schema: dict[str, Any] | None,
                  schema_name: str) -> Any:
        model = self._with_sampling(params)
        if schema is None or self.structured == "prompt":
            return model
        if self.structured == "json_mode":
            return model.bind(response_format={"type": "json_object", "schema": schema})
        tool = {k: v for k, v in schema.items() if k not in ("$schema", "$id")}
        tool["title"] = _TOOL_NAME.sub("_", schema_name)[:64] or "response"
        tool.setdefault("description", f"Give the {schema_name} answer.")
        return model.with_structured_output(tool, method="function_calling", include_raw=True)

    def _groups(self, requests: Sequence[ChatRequest]) -> list[tuple[Any, list[int]]]:
        """Requests that share a runnable (same params and, unless prompt mode, schema)."""
        groups: dict[str, tuple[Any, list[int]]] = {}
        for i, req in enumerate(requests):
            schema = req.schema if self.structured != "prompt" else None
            key = canonical_json({"p": req.params.to_dict(), "s": schema,
                                  "n": req.schema_name if schema is not None else ""})
            if key not in groups:
                groups[key] = (self._runnable(req.params, schema, req.schema_name), [])
            groups[key][1].append(i)
        return list(groups.values())

    # -- completion -----------------------------------------------------------------------
    def complete(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None
                 ) -> list[ChatResult]:
        """Run ``requests`` with ``batch_as_completed``; ``on_result(i, result)`` per answer."""
        results: list[ChatResult | None] = [None] * len(requests)
        for runnable, idx in self._groups(requests):
            inputs = [[dict(m) for m in requests[i].messages] for i in idx]
            config = {"max_concurrency": self.concurrency}
            stream: Iterable[tuple[int, Any]] = runnable.batch_as_completed(
                inputs, config=config, return_exceptions=True)
            for j, out in stream:
                self._deliver(idx[j], out, results, on_result)
        return [r if r is not None else ChatResult(text=None, error="no answer") for r in results]

    async def acomplete(self, requests: Sequence[ChatRequest],
                        on_result: ResultCallback | None = None) -> list[ChatResult]:
        """Async form of :meth:`complete` (``abatch_as_completed``)."""
        results: list[ChatResult | None] = [None] * len(requests)
        for runnable, idx in self._groups(requests):
            inputs = [[dict(m) for m in requests[i].messages] for i in idx]
            config = {"max_concurrency": self.concurrency}
            async for j, out in runnable.abatch_as_completed(inputs, config=config,
                                                             return_exceptions=True):
                self._deliver(idx[j], out, results, on_result)
        return [r if r is not None else ChatResult(text=None, error="no answer") for r in results]

    def _deliver(self, i: int, out: Any, results: list[ChatResult | None],
                 on_result: ResultCallback | None) -> None:
        try:
            res = self._to_result(out)
        except Exception as exc:  # an unexpected output shape must not end the build
            res = ChatResult(text=None, error=self._error_text(exc))
        if res.error:
            logger.warning("langchain request %d failed: %s", i, res.error)
        results[i] = res
        if on_result is not None:
            on_result(i, res)

    def _error_text(self, exc: BaseException) -> str:
        text = " ".join(f"{type(exc).__name__}: {exc}".split())
        if len(text) > _ERROR_LIMIT:
            text = text[:_ERROR_LIMIT] + "..."
        return self._scrub(text)

    def _to_result(self, out: Any) -> ChatResult:
        if isinstance(out, BaseException):
            return ChatResult(text=None, error=self._error_text(out))
        if isinstance(out, dict) and "raw" in out:  # with_structured_output(include_raw=True)
            raw = out["raw"]
            prompt_tokens, completion_tokens = _usage(raw)
            parsed = out.get("parsed")
            if parsed is not None:
                if hasattr(parsed, "model_dump"):
                    parsed = parsed.model_dump()
                text = json.dumps(parsed, ensure_ascii=False)
            else:
                text = _raw_tool_text(raw)
                if out.get("parsing_error") is not None:
                    logger.debug("function call did not parse: %s", out["parsing_error"])
            return ChatResult(text=text, prompt_tokens=prompt_tokens,
                              completion_tokens=completion_tokens)
        prompt_tokens, completion_tokens = _usage(out)
        return ChatResult(text=_content_text(getattr(out, "content", out)),
                          prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


def _usage(message: Any) -> tuple[int, int]:
    meta = getattr(message, "usage_metadata", None) or {}
    return int(meta.get("input_tokens", 0) or 0), int(meta.get("output_tokens", 0) or 0)


def _content_text(content: Any) -> str:
    """Text of a message content: a string, or the text blocks of a content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
        return "".join(parts)
    return "" if content is None else str(content)


def _raw_tool_text(raw: Any) -> str:
    """The answer text of an unparsed function call: its arguments, else the content."""
    if raw is None:
        return ""
    for call in getattr(raw, "tool_calls", None) or []:
        return json.dumps(call.get("args", {}), ensure_ascii=False)
    for call in getattr(raw, "invalid_tool_calls", None) or []:
        if call.get("args"):
            return str(call["args"])
    extra = getattr(raw, "additional_kwargs", {}) or {}
    fc = extra.get("function_call")
    if isinstance(fc, dict) and fc.get("arguments"):
        return str(fc["arguments"])
    return _content_text(getattr(raw, "content", ""))


__all__ = ["STRUCTURED_MODES", "LangChainBackend"]
