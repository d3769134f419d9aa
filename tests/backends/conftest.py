"""Fixtures for backend tests: the real llama.cpp server (once per session), fault servers,
and small job builders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kec.backends.openai_backend import OpenAIBackend
from kec.backends.structured import Job
from kec.prompts import load_prompt
from tests.servers import FaultServer, fault_server_factory, llama_server, llama_server_available


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's real key must never travel to a test server."""
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "LANGSMITH_API_KEY",
                "LANGCHAIN_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    monkeypatch.setenv("LANGCHAIN_TRACING_V2", "false")


@pytest.fixture(scope="session")
def llama_base_url() -> Iterator[str]:
    """Base URL (``.../v1``) of a real ``llama_cpp.server`` running SmolLM2-135M-Instruct."""
    ok, why = llama_server_available()
    if not ok:
        pytest.skip(f"llama.cpp server tests need it: {why}")
    with llama_server(n_ctx=2048, ready_timeout=60) as url:
        yield url


@pytest.fixture
def fault_server() -> Iterator[Callable[..., FaultServer]]:
    """``make(**kwargs)`` starts a :class:`FaultServer`; all are stopped after the test."""
    make, stop_all = fault_server_factory()
    yield make
    stop_all()


@pytest.fixture
def condense_jobs() -> Callable[[list[str]], list[Job]]:
    """``build(["dog", "gnu"])``: one condense job per name, its label list holding it.

    Fault-server rules match names as substrings of the messages, so a name must not
    occur in the template's own text ("cat" does: "categories")."""
    prompt = load_prompt("condense")
    template_text = " ".join(m["content"] for m in prompt.messages)

    def build(names: list[str]) -> list[Job]:
        clash = [n for n in names if n in template_text]
        assert not clash, f"names {clash} occur in the template text; pick others"
        return [Job(name, prompt, {"labels": [name, f"{name} photo"]}) for name in names]

    return build


@pytest.fixture
def make_openai() -> Iterator[Callable[..., OpenAIBackend]]:
    """``make(server, **overrides)``: an :class:`OpenAIBackend` on a fault server with
    test-sized transport settings (2 s timeout, 3 retries, 10-50 ms backoff)."""
    made: list[OpenAIBackend] = []

    def make(server: FaultServer, **overrides: Any) -> OpenAIBackend:
        opts: dict[str, Any] = {"model": "fault-model", "base_url": server.base_url,
                                "timeout": 2.0, "max_retries": 3, "backoff_base": 0.01,
                                "backoff_max": 0.05, "seed": 0}
        opts.update(overrides)
        backend = OpenAIBackend(**opts)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
