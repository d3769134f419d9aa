"""A bad server cannot crash or exhaust kec (issue 9 items 1-8), through real HTTP.

Every case runs StructuredRunner + OpenAIBackend against the loopback fault server in
``tests/servers.py`` and asserts what a user sees: a Failure record with a clear message
(or an EndpointDownError), how many requests reached the server, bounded time and memory,
and what reached the cache.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from kec.backends.cache import ResponseCache
from kec.backends.openai_backend import OpenAIBackend
from kec.backends.structured import AnswerError, Job, StructuredRunner, parse_answer
from kec.errors import EndpointDownError, KecError
from tests.servers import DEEP_LEVELS, FaultServer, Rule, free_port

MakeServer = Callable[..., FaultServer]
MakeBackend = Callable[..., OpenAIBackend]
BuildJobs = Callable[[list[str]], list[Job]]
FAKE_KEY = "sk-kec-echo-0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def _run(backend: OpenAIBackend, jobs: list[Job], cache: ResponseCache | None = None,
         **kw: object) -> StructuredRunner:
    runner = StructuredRunner(backend, cache=cache, progress=False, **kw)  # type: ignore[arg-type]
    runner.run(jobs)
    return runner


def _cache_text(root: Path) -> str:
    return "\n".join(p.read_text("utf-8") for p in sorted(root.rglob("*.json")))


# -- item 2: protocol errors ---------------------------------------------------------------
@pytest.mark.parametrize("action, says", [
    ("empty_choices", "empty 'choices' list"),
    ("html", "Content-Type 'text/html'"),
    ("deep_body", "nested too deeply"),
])
def test_protocol_error_is_clear_and_not_retried(action: str, says: str,
                                                 fault_server: MakeServer,
                                                 make_openai: MakeBackend,
                                                 condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule("dog", [action])])
    runner = _run(make_openai(fs, structured_output="json_object", max_retries=5),
                  condense_jobs(["dog", "gnu"]))
    [failure] = runner.failures
    assert failure.item == "dog"
    assert "protocol error" in failure.error and says in failure.error
    assert "--base-url" in failure.error  # tells the user what to check
    assert fs.count_matching("dog") == 1  # not retried 6 times
    assert runner.usage.failed_calls == 1 and runner.usage.calls == 1


# -- item 3: answers nested 100,000 deep -------------------------------------------------------
def test_parse_answer_of_deep_nesting_is_an_answer_error() -> None:
    deep = '{"name": ' + "[" * DEEP_LEVELS + "]" * DEEP_LEVELS + "}"
    with pytest.raises(AnswerError, match="nested too deeply"):
        parse_answer(deep, None)


def test_deep_answer_fails_cleanly_and_reruns_do_not_crash(fault_server: MakeServer,
                                                          make_openai: MakeBackend,
                                                          condense_jobs: BuildJobs,
                                                          tmp_path: Path) -> None:
    fs = fault_server(rules=[Rule("dog", ["deep"])])
    cache = ResponseCache(tmp_path / "cache")
    jobs = condense_jobs(["dog", "gnu"])
    # the 200,010-character answer is under this limit, so it is cached and parsed
    runner = _run(make_openai(fs, structured_output="json_object"), jobs, cache,
                  max_repairs=0, max_answer_chars=10**6)
    [failure] = runner.failures
    assert "nested too deeply" in failure.error and failure.item == "dog"
    # a re-run reads the cached deep answer: still a clean failure, not a RecursionError;
    # as the cached answer is invalid, the re-run tries dog once more with a new seed
    again = _run(make_openai(fs, structured_output="json_object"), jobs, cache,
                 max_repairs=0, max_answer_chars=10**6)
    assert [f.item for f in again.failures] == ["dog"]
    assert again.usage.calls == 1 and again.usage.cached_calls == 2


def test_cached_answer_that_breaks_the_runner_is_invalidated(fault_server: MakeServer,
                                                            make_openai: MakeBackend,
                                                            condense_jobs: BuildJobs,
                                                            tmp_path: Path) -> None:
    """Whatever makes checking a cached answer blow up, the run goes on and the entry is
    dropped, so the next run asks again instead of crashing with 0 requests."""
    fs = fault_server()
    cache = ResponseCache(tmp_path / "cache")
    jobs = condense_jobs(["dog"])
    _run(make_openai(fs, structured_output="json_object"), jobs, cache)
    assert len(cache) == 1

    def explode(job: Job, value: dict) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    runner = _run(make_openai(fs, structured_output="json_object"), jobs, cache,
                  validate=explode)
    [failure] = runner.failures
    assert "dropped from the cache" in failure.error
    assert len(cache) == 0
    again = _run(make_openai(fs, structured_output="json_object"), jobs, cache)
    assert again.failures == [] and again.usage.calls == 1


# -- item 4: message.content of the wrong type -------------------------------------------------
@pytest.mark.parametrize("action, kind", [("content_int", "number"),
                                          ("content_list", "list")])
def test_non_string_content_is_a_clear_failure(action: str, kind: str,
                                               fault_server: MakeServer,
                                               make_openai: MakeBackend,
                                               condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule("dog", [action])])
    runner = _run(make_openai(fs, structured_output="json_object"),
                  condense_jobs(["dog", "gnu"]))
    [failure] = runner.failures
    assert f"message.content is a {kind}" in failure.error
    assert fs.count_matching("dog") == 1


# -- item 5: size limits -------------------------------------------------------------------
def _measured(fn: Callable[[], object]) -> tuple[object, float, int]:
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return out, elapsed, peak


def test_huge_body_is_refused_by_its_content_length(fault_server: MakeServer,
                                                    make_openai: MakeBackend,
                                                    condense_jobs: BuildJobs,
                                                    tmp_path: Path) -> None:
    fs = fault_server(rules=[Rule("dog", ["huge"])], huge_bytes=50 * 1024 * 1024)
    cache = ResponseCache(tmp_path / "cache")
    backend = make_openai(fs, structured_output="json_object")
    runner, elapsed, peak = _measured(
        lambda: _run(backend, condense_jobs(["dog", "gnu"]), cache))
    [failure] = runner.failures  # type: ignore[attr-defined]
    assert "over the 4194304-byte cap" in failure.error and "declares" in failure.error
    assert fs.count_matching("dog") == 1  # not retried
    assert peak < 20 * 1024 * 1024 and elapsed < 5
    assert sum(p.stat().st_size for p in (tmp_path / "cache").rglob("*.json")) < 10_000


def test_never_ending_stream_is_cut_at_the_cap(fault_server: MakeServer,
                                               make_openai: MakeBackend,
                                               condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule("dog", ["stream"])])
    backend = make_openai(fs, structured_output="json_object", max_response_bytes=1 << 20,
                          timeout=10.0)
    runner, elapsed, peak = _measured(lambda: _run(backend, condense_jobs(["dog"])))
    [failure] = runner.failures  # type: ignore[attr-defined]
    assert "kept coming, over the 1048576-byte cap" in failure.error
    assert elapsed < 5  # cut at the cap, long before the 10 s timeout
    assert peak < 12 * 1024 * 1024


def test_slowloris_is_bounded_by_the_timeout(fault_server: MakeServer,
                                             make_openai: MakeBackend,
                                             condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule("dog", ["slowloris"])], trickle_s=0.05)
    backend = make_openai(fs, structured_output="json_object", timeout=0.5, max_retries=1)
    runner, elapsed, _ = _measured(lambda: _run(backend, condense_jobs(["dog"])))
    [failure] = runner.failures  # type: ignore[attr-defined]
    assert "timed out after 0.5 s" in failure.error
    assert fs.count_matching("dog") == 2  # max_retries=1: two attempts
    assert elapsed < 2 * 0.5 + 1.5  # two timeouts, not one per trickled byte


def test_oversized_answer_is_not_cached_nor_echoed(fault_server: MakeServer,
                                                   make_openai: MakeBackend,
                                                   condense_jobs: BuildJobs,
                                                   tmp_path: Path) -> None:
    fs = fault_server(rules=[Rule("dog", ["huge_answer"])], huge_answer_chars=300_000)
    cache = ResponseCache(tmp_path / "cache")
    runner = _run(make_openai(fs, structured_output="json_object"),
                  condense_jobs(["dog", "gnu"]), cache, max_repairs=2)
    [failure] = runner.failures
    assert "over the 200000-character limit" in failure.error
    assert fs.count_matching("dog") == 1  # no repair round-trip carried it back
    assert all(len(json.dumps(r.body)) < 20_000 for r in fs.requests)
    assert len(cache) == 1  # only gnu's answer
    assert len(failure.raw or "") <= 2000


# -- items 1: circuit breaker on a dead or dying endpoint ----------------------------------
def test_dead_endpoint_opens_the_breaker_fast(make_openai: MakeBackend,
                                              condense_jobs: BuildJobs) -> None:
    class Dead:
        base_url = f"http://127.0.0.1:{free_port()}/v1"

    # production backoff (1 s base, 30 s max, 5 retries); the breaker must stop it early
    backend = make_openai(Dead(), structured_output="json_object", max_retries=5,
                          backoff_base=1.0, backoff_max=30.0, concurrency=8)
    runner = StructuredRunner(backend, progress=False)
    names = [f"item{i}x" for i in range(39)]
    t0 = time.perf_counter()
    with pytest.raises(EndpointDownError, match="consecutive requests") as info:
        runner.run(condense_jobs(names))
    assert time.perf_counter() - t0 < 10
    assert isinstance(info.value, KecError) and info.value.exit_code == 4
    assert backend.breaker_open
    # later batches are refused at once, without a request
    with pytest.raises(EndpointDownError):
        runner.run(condense_jobs(["late"]))


def test_server_killed_mid_run_keeps_the_cache(fault_server: MakeServer,
                                              make_openai: MakeBackend,
                                              condense_jobs: BuildJobs,
                                              tmp_path: Path) -> None:
    fs = fault_server(rules=[Rule("item5x", ["die"])])
    cache = ResponseCache(tmp_path / "cache")
    backend = make_openai(fs, structured_output="json_object", concurrency=1, max_retries=5,
                          breaker_threshold=4)
    runner = StructuredRunner(backend, cache=cache, progress=False)
    names = [f"item{i}x" for i in range(12)]
    t0 = time.perf_counter()
    with pytest.raises(EndpointDownError):
        runner.run(condense_jobs(names))
    assert time.perf_counter() - t0 < 10
    assert len(cache) == 5  # item0x..item4x answered before the server died: kept
    assert runner.usage.calls == 5
    assert runner.usage.failed_calls == 1  # item5x; the requests never sent are not counted
    texts = [json.loads(p.read_text("utf-8"))["text"] for p in
             (tmp_path / "cache").rglob("*.json")]
    assert all(isinstance(json.loads(t), dict) for t in texts)


def test_gateway_errors_open_the_breaker_but_500_does_not(fault_server: MakeServer,
                                                          make_openai: MakeBackend,
                                                          condense_jobs: BuildJobs) -> None:
    names = [f"item{i}x" for i in range(6)]
    gateway = fault_server(default="503")
    backend = make_openai(gateway, structured_output="json_object", breaker_threshold=4)
    with pytest.raises(EndpointDownError, match="HTTP 503"):
        _run(backend, condense_jobs(names))
    assert gateway.count == len(names)  # the six first attempts were in flight; no retry
    broken = fault_server(default="500")  # the server itself answers: not "down"
    backend = make_openai(broken, structured_output="json_object", breaker_threshold=4,
                          max_retries=1)
    runner = _run(backend, condense_jobs(names))
    assert len(runner.failures) == 6 and not backend.breaker_open


def test_breaker_resets_on_success(fault_server: MakeServer, make_openai: MakeBackend,
                                   condense_jobs: BuildJobs) -> None:
    """Scattered connection drops never open the breaker while the server answers."""
    fs = fault_server(rules=[Rule(f"item{i}x", ["drop", "ok"]) for i in range(6)])
    backend = make_openai(fs, structured_output="json_object", concurrency=1,
                          breaker_threshold=2)
    runner = _run(backend, condense_jobs([f"item{i}x" for i in range(6)]))
    assert runner.failures == [] and not backend.breaker_open


def test_failed_requests_are_counted_apart(fault_server: MakeServer, make_openai: MakeBackend,
                                           condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule("dog", ["400"])])
    runner = _run(make_openai(fs, structured_output="json_object"),
                  condense_jobs(["dog", "gnu", "cow"]))
    assert runner.usage.calls == 2 and runner.usage.failed_calls == 1


# -- item 6: two runs on one cache ---------------------------------------------------------
def test_two_runs_on_one_cache_ask_each_prompt_once(fault_server: MakeServer,
                                                    make_openai: MakeBackend,
                                                    condense_jobs: BuildJobs,
                                                    tmp_path: Path) -> None:
    fs = fault_server(delay=0.05)
    names = [f"item{i}x" for i in range(16)]
    errors: list[BaseException] = []
    runners: list[StructuredRunner] = []

    def build() -> None:
        try:
            backend = make_openai(fs, structured_output="json_object", concurrency=4)
            runner = StructuredRunner(backend, cache=ResponseCache(tmp_path / "cache"),
                                      progress=False)
            runners.append(runner)
            runner.run(condense_jobs(names))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert fs.count == len(names)  # 16 unique prompts, 16 requests (not 32)
    assert sum(r.usage.calls for r in runners) == 16
    assert sum(r.usage.cached_calls for r in runners) == 16
    assert all(not r.failures for r in runners)


# -- item 7: the endpoint is part of the cache key -----------------------------------------
def test_cache_is_not_shared_across_endpoints(fault_server: MakeServer,
                                              make_openai: MakeBackend,
                                              condense_jobs: BuildJobs,
                                              tmp_path: Path) -> None:
    a, b = fault_server(), fault_server()
    cache = ResponseCache(tmp_path / "cache")
    _run(make_openai(a, structured_output="json_object"), condense_jobs(["dog"]), cache)
    rb = _run(make_openai(b, structured_output="json_object"), condense_jobs(["dog"]), cache)
    assert rb.usage.cached_calls == 0 and b.count == 1
    backend = make_openai(b, structured_output="json_object")
    assert backend.identity()["base_url"] == b.base_url
    # credentials in the URL never reach the identity (and so the cache key)
    userinfo = b.base_url.replace("http://", "http://user:pw@")
    ident = OpenAIBackend("m", base_url=userinfo, timeout=1).identity()
    assert ident["base_url"] == b.base_url and "pw" not in json.dumps(ident)
    # a cached entry's endpoint is the endpoint that answered
    entry = json.loads(next((tmp_path / "cache").rglob("*.json")).read_text("utf-8"))
    assert entry["backend"]["base_url"] in (a.base_url, b.base_url)


# -- item 8: a key echoed in an answer ---------------------------------------------------------
def test_echoed_key_is_scrubbed_before_cache_logs_and_output(
        fault_server: MakeServer, condense_jobs: BuildJobs, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KEC_ECHO_KEY", FAKE_KEY)
    caplog.set_level(logging.DEBUG)
    fs = fault_server(rules=[Rule("dog", ["echo_key"]), Rule("gnu", ["echo_key", "ok"])])
    backend = OpenAIBackend("fault-model", base_url=fs.base_url, api_key_env="KEC_ECHO_KEY",
                            structured_output="json_object", timeout=2, max_retries=0)
    cache_dir = tmp_path / "cache"

    def reject_gnu(job: Job, value: dict) -> None:  # forces a repair that echoes the answer
        if job.item == "gnu" and "***" in json.dumps(value):
            raise AnswerError("placeholder")

    runner = StructuredRunner(backend, cache=ResponseCache(cache_dir), progress=False,
                              validate=reject_gnu)
    out = {o.job.item: o for o in runner.run(condense_jobs(["dog", "gnu"]))}
    assert fs.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"  # it was sent
    assert "***" in json.dumps(out["dog"].value)
    stdout, stderr = capfd.readouterr()
    for where, text in {"cache": _cache_text(cache_dir), "value": json.dumps(out["dog"].value),
                        "logs": caplog.text, "output": stdout + stderr,
                        "requests sent back": json.dumps([r.body for r in fs.requests])
                        }.items():
        assert FAKE_KEY not in text, f"key leaked into {where}"


def test_size_limits_are_configurable_from_the_environment(
        fault_server: MakeServer, make_openai: MakeBackend, condense_jobs: BuildJobs,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEC_MAX_RESPONSE_BYTES", "2048")
    monkeypatch.setenv("KEC_MAX_ANSWER_CHARS", "10")
    fs = fault_server()
    backend = make_openai(fs, structured_output="json_object")
    runner = StructuredRunner(backend, progress=False)
    assert backend.max_response_bytes == 2048 and runner.max_answer_chars == 10
    runner.run(condense_jobs(["dog"]))
    assert "over the 10-character limit" in runner.failures[0].error
    monkeypatch.setenv("KEC_MAX_RESPONSE_BYTES", "lots")
    with pytest.raises(KecError, match="KEC_MAX_RESPONSE_BYTES must be an integer"):
        make_openai(fs)
