"""OpenAIBackend runs a batch concurrently (bounded), delivers each answer as it arrives,
and can be called from sync code, repeatedly, or from inside a running event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from kec.backends.base import ChatRequest, ChatResult
from kec.backends.openai_backend import OpenAIBackend
from kec.prompts import load_prompt
from tests.servers import FaultServer, Rule

MakeServer = Callable[..., FaultServer]
MakeBackend = Callable[..., OpenAIBackend]


def requests(names: list[str]) -> list[ChatRequest]:
    prompt = load_prompt("condense")
    return [ChatRequest(prompt.render(labels=[n]), prompt.response_schema,
                        schema_name=prompt.id) for n in names]


def test_concurrent_batch_is_much_faster_than_sequential(fault_server: MakeServer,
                                                         make_openai: MakeBackend) -> None:
    delay, n = 0.2, 16
    fs = fault_server(delay=delay)
    backend = make_openai(fs, concurrency=8, structured_output="json_object")
    seen: list[int] = []
    t0 = time.monotonic()
    results = backend.complete(requests([f"thing{i}" for i in range(n)]),
                               on_result=lambda i, r: seen.append(i))
    elapsed = time.monotonic() - t0
    assert all(r.ok for r in results)
    assert sorted(seen) == list(range(n))
    assert 2 <= fs.max_in_flight <= 8
    # a behaviour check with a large margin, not a benchmark: sequential would take 3.2 s
    assert elapsed < 0.5 * n * delay, f"{elapsed:.2f} s"


def test_concurrency_is_bounded(fault_server: MakeServer, make_openai: MakeBackend) -> None:
    fs = fault_server(delay=0.05)
    backend = make_openai(fs, concurrency=3, structured_output="json_object")
    results = backend.complete(requests([f"thing{i}" for i in range(12)]))
    assert all(r.ok for r in results)
    assert fs.max_in_flight <= 3


def test_results_are_delivered_as_they_arrive(fault_server: MakeServer,
                                              make_openai: MakeBackend) -> None:
    # "slow" hangs once (0.6 s timeout), the others answer at once: their callbacks must
    # run long before complete() returns (this is what lets a killed build resume)
    fs = fault_server(rules=[Rule("slow", ["hang", "ok"])], hang_s=10)
    backend = make_openai(fs, timeout=0.6, structured_output="json_object")
    t0 = time.monotonic()
    when: dict[int, float] = {}
    threads: set[int] = set()

    def on_result(i: int, res: ChatResult) -> None:
        when[i] = time.monotonic() - t0
        threads.add(threading.get_ident())

    results = backend.complete(requests(["slow", "dog", "gnu", "yak"]), on_result=on_result)
    total = time.monotonic() - t0
    assert all(r.ok for r in results)
    assert max(when[i] for i in (1, 2, 3)) < 0.5 <= when[0] <= total
    assert threads == {threading.get_ident()}  # callbacks run in the caller's thread


def test_repeated_calls_and_call_from_running_loop(fault_server: MakeServer,
                                                   make_openai: MakeBackend) -> None:
    fs = fault_server(reject_json_schema=True)
    backend = make_openai(fs)
    first = backend.complete(requests(["dog"]))
    second = backend.complete(requests(["dog", "gnu"]))
    assert first[0].ok and second[0].text == first[0].text and second[1].ok

    async def inside_a_loop() -> list[ChatResult]:  # e.g. a Jupyter cell
        return backend.complete(requests(["yak"]))

    third = asyncio.run(inside_a_loop())
    assert third[0].ok
    fourth = asyncio.run(backend.acomplete(requests(["owl"])))
    assert fourth[0].ok
    assert [r.response_format for r in fs.requests].count("json_schema") == 1
    assert backend.complete([]) == []


def test_results_keep_request_order(fault_server: MakeServer,
                                    make_openai: MakeBackend) -> None:
    fs = fault_server(rules=[Rule("dog", ["429", "ok"])])
    backend = make_openai(fs, structured_output="json_object")
    names = ["dog", "gnu", "yak", "owl"]
    results = backend.complete(requests(names))
    by_label = {}
    for rec in fs.requests:
        if rec.action == "ok":
            by_label[rec.body["messages"][1]["content"]] = fs.answer_text(rec.body)
    for name, req, res in zip(names, requests(names), results):
        assert res.text == by_label[req.messages[1]["content"]], name
    assert all(r.prompt_tokens > 0 and r.completion_tokens > 0 for r in results)
