"""LangChainBackend against the fault server: batching, callbacks, usage, errors, modes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kec.backends import create_backend
from kec.backends.base import ChatRequest, SamplingParams
from kec.backends.langchain_backend import LangChainBackend
from kec.backends.structured import Job, StructuredRunner
from kec.errors import BackendError
from kec.prompts import load_prompt
from tests.servers import FaultServer, Rule

pytest.importorskip("langchain_openai", reason="needs kec[langchain]")

MakeServer = Callable[..., FaultServer]


def requests(names: list[str], params: SamplingParams | None = None) -> list[ChatRequest]:
    prompt = load_prompt("condense")
    return [ChatRequest(prompt.render(labels=[n]), prompt.response_schema,
                        params or SamplingParams(), schema_name=prompt.id) for n in names]


def backend_on(fs: FaultServer, **options: object) -> LangChainBackend:
    opts: dict[str, object] = {"model": "openai:fault-model", "base_url": fs.base_url,
                               "max_retries": 0, "timeout": 5}
    opts.update(options)
    backend = create_backend("langchain", **opts)
    assert isinstance(backend, LangChainBackend)
    return backend


def test_batch_delivers_each_result_with_usage(fault_server: MakeServer) -> None:
    fs = fault_server(rules=[Rule("dog", ["500"])],
                      fallback_schema=load_prompt("condense").response_schema)
    backend = backend_on(fs, concurrency=4)
    seen: list[int] = []
    results = backend.complete(requests(["dog", "gnu", "yak", "owl"]),
                               on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == [0, 1, 2, 3]
    assert not results[0].ok and "500" in (results[0].error or "")
    for r in results[1:]:
        assert r.ok and r.prompt_tokens > 0 and r.completion_tokens > 0
    # prompt mode: plain messages, no response_format
    assert all("response_format" not in r.body for r in fs.requests)


def test_sampling_params_are_sent(fault_server: MakeServer) -> None:
    fs = fault_server()
    backend = backend_on(fs)
    params = SamplingParams(temperature=0.3, max_tokens=77, top_p=0.9, seed=5)
    backend.complete(requests(["dog"], params))
    body = fs.requests[0].body
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9 and body["seed"] == 5
    assert 77 in (body.get("max_tokens"), body.get("max_completion_tokens"))


def test_json_mode_binds_response_format(fault_server: MakeServer) -> None:
    fs = fault_server()
    backend = backend_on(fs, structured="json_mode")
    runner = StructuredRunner(backend, progress=False)
    prompt = load_prompt("condense")
    outcomes = runner.run([Job("dog", prompt, {"labels": ["dog"]})])
    assert outcomes[0].value is not None
    rf = fs.requests[0].body["response_format"]
    assert rf == {"type": "json_object", "schema": prompt.response_schema}


def test_function_calling_answers_through_a_tool_call(fault_server: MakeServer) -> None:
    fs = fault_server(rules=[Rule("gnu", ["bad_schema", "ok"])])
    backend = backend_on(fs, structured="function_calling")
    runner = StructuredRunner(backend, progress=False)
    prompt = load_prompt("condense")
    outcomes = runner.run([Job(n, prompt, {"labels": [n]}) for n in ("dog", "gnu")])
    assert [o.value is not None for o in outcomes] == [True, True]
    assert runner.usage.repairs == 1  # gnu's first tool call broke the schema
    body = fs.requests[0].body
    assert body["tool_choice"]["function"]["name"] == "condense"
    assert body["tools"][0]["function"]["name"] == "condense"
    assert set(body["tools"][0]["function"]["parameters"]["required"]) == {"name",
                                                                           "description"}


def test_instance_identity_and_options() -> None:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(base_url="http://127.0.0.1:9/v1", api_key="EMPTY", model="m2")
    backend = LangChainBackend(chat_model=chat)
    assert backend.identity() == {"backend": "langchain", "model": "ChatOpenAI:m2"}
    assert backend.describe()["structured"] == "prompt"
    with pytest.raises(BackendError, match="structured"):
        LangChainBackend(chat_model=chat, structured="xml")
    with pytest.raises(BackendError, match="BaseChatModel"):
        LangChainBackend(chat_model=object())
    with pytest.raises(BackendError):
        LangChainBackend()
    assert create_backend("langchain", base_url="http://127.0.0.1:9/v1").model == (
        "openai:gpt-4o-mini")
