"""OpenAIBackend and LangChainBackend against the real llama.cpp server running SmolLM2.

The 135M model's answers make little sense; these tests check the plumbing with a real
model: structured requests through StructuredRunner give schema-valid values, the
structured-output detection settles on json_object, usage is counted.
"""

from __future__ import annotations

import logging

import pytest

from kec.backends.base import ChatRequest, SamplingParams
from kec.backends.cache import ResponseCache
from kec.backends.langchain_backend import LangChainBackend
from kec.backends.openai_backend import OpenAIBackend
from kec.backends.structured import Job, StructuredRunner
from kec.prompts import load_prompt

pytestmark = pytest.mark.slow

PARAMS = SamplingParams(temperature=0.0, max_tokens=120, seed=0)
MODEL = "smollm2-135m-instruct"


def jobs() -> list[Job]:
    condense = load_prompt("condense")
    attributes = load_prompt("concept_attributes")
    pair = load_prompt("pair_attributes")
    corgi = {"name": "corgi", "description": "a small dog with short legs"}
    fox = {"name": "red fox", "description": "a small orange wild canid"}
    return [
        Job("corgi-group", condense, {"labels": ["corgi", "welsh corgi", "pembroke"]}),
        Job("truck-group", condense, {"labels": ["fire truck", "fire engine"]}),
        Job("corgi", attributes, {"name": corgi["name"], "description": corgi["description"],
                                  "n": 3}),
        Job("corgi-vs-fox", pair, {"name_a": corgi["name"], "description_a": corgi["description"],
                                   "name_b": fox["name"], "description_b": fox["description"],
                                   "n": 2}),
    ]


def assert_all_valid(runner: StructuredRunner, outcomes: list) -> None:
    assert runner.failures == [], [f.to_dict() for f in runner.failures]
    for o in outcomes:
        assert o.value is not None
        assert set(o.value) == set(o.job.prompt.response_schema["required"])
    assert runner.usage.prompt_tokens > 0 and runner.usage.completion_tokens > 0


def test_openai_backend_on_llamacpp_server(llama_base_url: str, tmp_path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kec.backends.openai_backend")
    backend = OpenAIBackend(MODEL, base_url=llama_base_url, concurrency=4, timeout=60,
                            max_retries=2)
    cache = ResponseCache(tmp_path / "cache")
    runner = StructuredRunner(backend, cache=cache, params=PARAMS, progress=False)
    outcomes = runner.run(jobs())
    assert_all_valid(runner, outcomes)
    # llama.cpp's server answers json_schema with HTTP 500: json_object + schema is locked
    assert backend.structured_mode == "json_object"
    assert backend.describe()["structured_output"] == "json_object (auto-detected)"
    assert "rejected json_schema: HTTP 500" in caplog.text
    assert "using response_format json_object + schema" in caplog.text
    # a second run is served from the cache
    again = StructuredRunner(backend, cache=cache, params=PARAMS, progress=False)
    values = [o.value for o in again.run(jobs())]
    assert values == [o.value for o in outcomes]
    assert again.usage.calls == 0 and again.usage.cached_calls == len(outcomes)


def test_langchain_instance_json_mode(llama_base_url: str) -> None:
    pytest.importorskip("langchain_openai", reason="needs kec[langchain]")
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(base_url=llama_base_url, api_key="EMPTY", model=MODEL, max_retries=1)
    backend = LangChainBackend(chat_model=chat, structured="json_mode", concurrency=2)
    assert backend.identity() == {"backend": "langchain", "model": f"ChatOpenAI:{MODEL}"}
    runner = StructuredRunner(backend, params=PARAMS, progress=False)
    outcomes = runner.run(jobs()[:2])
    assert_all_valid(runner, outcomes)


def test_langchain_init_chat_model_function_calling(llama_base_url: str) -> None:
    pytest.importorskip("langchain_openai", reason="needs kec[langchain]")
    backend = LangChainBackend(f"openai:{MODEL}", base_url=llama_base_url,
                               structured="function_calling", concurrency=2, max_retries=1)
    assert backend.identity() == {"backend": "langchain", "model": f"openai:{MODEL}",
                                  "base_url": llama_base_url}
    assert backend.describe()["chat_model_class"] == "ChatOpenAI"
    runner = StructuredRunner(backend, params=PARAMS, progress=False)
    outcomes = runner.run(jobs()[2:3])
    assert_all_valid(runner, outcomes)


def test_langchain_prompt_mode_returns_text_and_usage(llama_base_url: str) -> None:
    pytest.importorskip("langchain_openai", reason="needs kec[langchain]")
    backend = LangChainBackend(f"openai:{MODEL}", base_url=llama_base_url, max_retries=1)
    prompt = load_prompt("condense")
    request = ChatRequest(prompt.render(labels=["corgi"]), prompt.response_schema,
                          SamplingParams(max_tokens=16), schema_name="condense")
    seen: list[int] = []
    [result] = backend.complete([request], on_result=lambda i, r: seen.append(i))
    assert result.ok and result.text
    # (no bound on completion_tokens: ChatOpenAI sends max_completion_tokens, which
    # llama_cpp.server 0.3 ignores)
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    assert seen == [0]
