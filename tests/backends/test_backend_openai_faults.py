"""Fault injection: StructuredRunner + OpenAIBackend against the scripted fault server.

Each test asserts what a user would see: the value, or a Failure record that names the
item, the prompt, the raw answer and the attempts; and how many requests reached the
server (retries and cache hits are visible there).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from kec.backends.cache import ResponseCache
from kec.backends.openai_backend import OpenAIBackend
from kec.backends.structured import Job, Outcome, StructuredRunner
from kec.prompts import load_prompt
from tests.servers import BAD_SCHEMA_TEXT, INVALID_JSON_TEXT, FaultServer, Rule, free_port

MakeServer = Callable[..., FaultServer]
MakeBackend = Callable[..., OpenAIBackend]
BuildJobs = Callable[[list[str]], list[Job]]


def run(backend: OpenAIBackend, jobs: list[Job], cache: ResponseCache | None = None,
        max_repairs: int = 2) -> tuple[StructuredRunner, dict[str, Outcome]]:
    runner = StructuredRunner(backend, cache=cache, max_repairs=max_repairs, progress=False)
    outcomes = runner.run(jobs)
    assert len(outcomes) == len(jobs)
    return runner, {o.job.item: o for o in outcomes}


def assert_condense(value: dict[str, Any] | None) -> None:
    assert value is not None
    assert set(value) == {"name", "description"}


# -- answers that break the format ---------------------------------------------------------
def test_invalid_json_is_repaired(fault_server: MakeServer, make_openai: MakeBackend,
                                  condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule("dog", ["invalid_json", "ok"])])
    runner, out = run(make_openai(fs, structured_output="json_object"),
                      condense_jobs(["dog", "gnu"]))
    assert_condense(out["dog"].value)
    assert_condense(out["gnu"].value)
    assert runner.failures == []
    assert runner.usage.repairs == 1
    assert runner.usage.calls == 3
    assert fs.count_matching("dog") == 2
    # the repair turn carried the broken answer and the error back to the model
    repair = fs.requests[-1].body["messages"]
    assert repair[-2] == {"role": "assistant", "content": INVALID_JSON_TEXT}
    assert "not valid JSON" in repair[-1]["content"]


def test_schema_breaking_answer_becomes_failure(fault_server: MakeServer,
                                                make_openai: MakeBackend,
                                                condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule("dog", ["bad_schema"])])
    runner, out = run(make_openai(fs, structured_output="json_object"),
                      condense_jobs(["dog", "gnu"]), max_repairs=2)
    assert out["dog"].value is None
    failure = out["dog"].failure
    assert failure is not None and runner.failures == [failure]
    assert failure.item == "dog"
    assert failure.prompt == "condense"
    assert failure.raw == BAD_SCHEMA_TEXT
    assert failure.attempts == 3  # max_repairs + 1
    assert "$" in failure.error  # names the JSON path of the problem
    assert fs.count_matching("dog") == 3
    assert_condense(out["gnu"].value)


# -- transport faults -----------------------------------------------------------------------
def test_rate_limit_then_ok(fault_server: MakeServer, make_openai: MakeBackend,
                            condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule("dog", ["429", "429", "ok"])], retry_after="0")
    t0 = time.monotonic()
    runner, out = run(make_openai(fs, structured_output="json_object"), condense_jobs(["dog"]))
    assert_condense(out["dog"].value)
    assert runner.failures == []
    assert runner.usage.calls == 1  # the retries are the backend's business
    assert fs.actions() == ["429", "429", "ok"]
    assert time.monotonic() - t0 < 2.0


def test_retry_after_is_honoured(fault_server: MakeServer, make_openai: MakeBackend,
                                 condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule("dog", ["429", "ok"])], retry_after="0.4")
    backend = make_openai(fs, structured_output="json_object", backoff_base=0.0,
                          backoff_max=5.0)
    t0 = time.monotonic()
    _, out = run(backend, condense_jobs(["dog"]))
    assert_condense(out["dog"].value)
    assert time.monotonic() - t0 >= 0.4


def test_retry_after_is_capped(fault_server: MakeServer, make_openai: MakeBackend,
                               condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule("dog", ["429", "ok"])], retry_after="3600")
    backend = make_openai(fs, structured_output="json_object", backoff_max=0.05)
    t0 = time.monotonic()
    _, out = run(backend, condense_jobs(["dog"]))
    assert_condense(out["dog"].value)
    assert time.monotonic() - t0 < 3.0


def test_persistent_500_fails_that_item_only(fault_server: MakeServer,
                                             make_openai: MakeBackend,
                                             condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule("dog", ["500"])])
    runner, out = run(make_openai(fs, structured_output="json_object", max_retries=3),
                      condense_jobs(["dog", "gnu", "cow"]))
    failure = out["dog"].failure
    assert failure is not None and failure.item == "dog"
    assert "HTTP 500" in failure.error
    assert "gave up after 4 attempt(s)" in failure.error
    assert failure.raw is None
    assert failure.attempts == 1  # one runner attempt: the transport never answered
    assert fs.count_matching("dog") == 4  # max_retries + 1
    assert_condense(out["gnu"].value)
    assert_condense(out["cow"].value)
    assert len(runner.failures) == 1


def test_hang_times_out_and_is_retried(fault_server: MakeServer, make_openai: MakeBackend,
                                       condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule("dog", ["hang", "ok"])], hang_s=10)
    t0 = time.monotonic()
    runner, out = run(make_openai(fs, structured_output="json_object", timeout=0.5),
                      condense_jobs(["dog", "gnu"]))
    elapsed = time.monotonic() - t0
    assert_condense(out["dog"].value)
    assert_condense(out["gnu"].value)
    assert runner.failures == []
    assert fs.count_matching("dog") == 2
    assert 0.5 <= elapsed < 5.0


def test_persistent_hang_becomes_timeout_failure(fault_server: MakeServer,
                                                 make_openai: MakeBackend,
                                                 condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule("dog", ["hang"])], hang_s=10)
    backend = make_openai(fs, structured_output="json_object", timeout=0.3, max_retries=1)
    _runner, out = run(backend, condense_jobs(["dog", "gnu"]))
    failure = out["dog"].failure
    assert failure is not None
    assert "timed out after 0.3 s" in failure.error
    assert "gave up after 2 attempt(s)" in failure.error
    assert fs.count_matching("dog") == 2
    assert_condense(out["gnu"].value)


def test_dropped_connection_is_retried(fault_server: MakeServer, make_openai: MakeBackend,
                                       condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule("dog", ["drop", "ok"])])
    runner, out = run(make_openai(fs, structured_output="json_object"), condense_jobs(["dog"]))
    assert_condense(out["dog"].value)
    assert runner.failures == []
    assert fs.actions() == ["drop", "ok"]


def test_persistent_drop_becomes_connection_failure(fault_server: MakeServer,
                                                    make_openai: MakeBackend,
                                                    condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule("dog", ["drop"])])
    _runner, out = run(make_openai(fs, structured_output="json_object", max_retries=2),
                      condense_jobs(["dog"]))
    failure = out["dog"].failure
    assert failure is not None
    assert "connection error" in failure.error
    assert fs.count == 3


@pytest.mark.parametrize("status", ["400", "401"])
def test_client_errors_are_not_retried(status: str, fault_server: MakeServer,
                                       make_openai: MakeBackend,
                                       condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule("dog", [status])])
    _runner, out = run(make_openai(fs, structured_output="json_object", max_retries=5),
                      condense_jobs(["dog", "gnu"]))
    failure = out["dog"].failure
    assert failure is not None
    assert f"HTTP {status}" in failure.error and "not retried" in failure.error
    assert fs.count_matching("dog") == 1
    assert_condense(out["gnu"].value)


def test_unreachable_server_fails_fast(make_openai: MakeBackend,
                                       condense_jobs: BuildJobs) -> None:
    class Nowhere:  # a port nothing listens on
        base_url = f"http://127.0.0.1:{free_port()}/v1"

    backend = make_openai(Nowhere, structured_output="json_object", max_retries=2)
    t0 = time.monotonic()
    _runner, out = run(backend, condense_jobs(["dog"]))
    failure = out["dog"].failure
    assert failure is not None
    assert "connection error" in failure.error
    assert "gave up after 3 attempt(s)" in failure.error
    assert time.monotonic() - t0 < 5.0


# -- cache and resume -----------------------------------------------------------------------
def test_mixed_batch_caches_successes_and_resume_calls_only_failed(
        fault_server: MakeServer, make_openai: MakeBackend, condense_jobs: BuildJobs,
        tmp_path: Any) -> None:
    cache = ResponseCache(tmp_path / "cache")
    fs = fault_server(rules=[Rule("dog", ["500"]), Rule("cow", ["bad_schema"])],
                      reject_json_schema=True)
    names = ["dog", "gnu", "cow", "eel", "fox"]
    runner, out = run(make_openai(fs, max_retries=1), condense_jobs(names), cache=cache)
    assert sorted(f.item for f in runner.failures) == ["cow", "dog"]
    for name in ("gnu", "eel", "fox"):
        assert_condense(out[name].value)
    # the successes and cow's three (invalid) answers are on disk; dog got no answer
    assert len(cache) == 3 + 3
    assert fs.count_matching("fox") == 1  # asked once, after the probe had decided

    # the server recovers; a new process (new backend, same cache) resumes the build
    fs.rules = []
    fs.reset()
    runner2, out2 = run(make_openai(fs, max_retries=1), condense_jobs(names), cache=cache)
    assert_condense(out2["dog"].value)
    for name in ("gnu", "eel", "fox"):
        assert out2[name].value == out[name].value  # replayed from the cache
    # cow's cached answers are invalid, so they are replayed (no call) and never final:
    # the re-run asks again with a new seed, and the recovered server answers
    assert runner2.failures == []
    assert_condense(out2["cow"].value)
    for name in ("gnu", "eel", "fox"):
        assert fs.count_matching(name) == 0, name
    assert fs.count_matching("cow") == 1
    # dog reached the server twice (the json_schema probe, rejected, and the answer)
    assert fs.count == fs.count_matching("dog") + 1 == 3
    assert runner2.usage.calls == 2
    assert runner2.usage.cached_calls == 3 + 3


# -- structured-output detection under faults ---------------------------------------------
def test_detection_locks_json_object_once(fault_server: MakeServer, make_openai: MakeBackend,
                                          condense_jobs: BuildJobs,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kec.backends.openai_backend")
    fs = fault_server(reject_json_schema=True)
    backend = make_openai(fs, concurrency=8)
    assert backend.describe()["structured_output"] == "auto (not yet determined)"
    names = [f"thing{i}" for i in range(12)]
    runner, _out = run(backend, condense_jobs(names))
    assert runner.failures == []
    formats = [r.response_format for r in fs.requests]
    assert formats.count("json_schema") == 1  # probed once, the others waited
    assert formats.count("json_object") == 12
    assert backend.structured_mode == "json_object"
    assert backend.describe()["structured_output"] == "json_object (auto-detected)"
    assert "rejected json_schema" in caplog.text
    # a second batch on the same backend does not probe again
    run(backend, condense_jobs(["more"]))
    assert [r.response_format for r in fs.requests].count("json_schema") == 1


def test_detection_under_persistent_500_is_bounded_and_undecided(
        fault_server: MakeServer, make_openai: MakeBackend, condense_jobs: BuildJobs) -> None:
    fs = fault_server(default="500", reject_json_schema=True)
    backend = make_openai(fs, max_retries=2)
    runner, _out = run(backend, condense_jobs(["dog", "gnu"]))
    assert sorted(f.item for f in runner.failures) == ["dog", "gnu"]
    for f in runner.failures:
        assert "HTTP 500" in f.error and "gave up after 3 attempt(s)" in f.error
    # nothing was learnt: no mode locked, none reported
    assert backend.structured_mode is None
    assert backend.describe()["structured_output"] == "auto (not yet determined)"
    # 2 items x 3 attempts x 3 probed forms, then it stops
    assert fs.count == 18


def test_transient_failure_during_detection_is_retried(
        fault_server: MakeServer, make_openai: MakeBackend, condense_jobs: BuildJobs) -> None:
    fs = fault_server(rules=[Rule(None, ["429", "ok"])], reject_json_schema=True)
    backend = make_openai(fs)
    _runner, out = run(backend, condense_jobs(["dog"]))
    assert_condense(out["dog"].value)
    # probe: json_schema rejected, json_object hit 429 (transport: backoff, probe again),
    # json_schema rejected again, json_object answered
    assert fs.actions() == ["reject_json_schema", "429", "reject_json_schema", "ok"]
    assert backend.structured_mode == "json_object"


def test_server_accepting_json_schema_locks_it(fault_server: MakeServer,
                                               make_openai: MakeBackend,
                                               condense_jobs: BuildJobs) -> None:
    fs = fault_server()
    backend = make_openai(fs)
    runner, _out = run(backend, condense_jobs(["dog", "gnu", "cow"]))
    assert runner.failures == []
    assert backend.structured_mode == "json_schema"
    assert {r.response_format for r in fs.requests} == {"json_schema"}
    rf = fs.requests[0].body["response_format"]
    assert rf["json_schema"]["name"] == "condense"
    assert rf["json_schema"]["strict"] is False
    schema = load_prompt("condense").response_schema
    assert rf["json_schema"]["schema"] == {k: v for k, v in schema.items()
                                           if k not in ("$schema", "$id")}


def test_structured_output_none_sends_prompt_only(fault_server: MakeServer,
                                                  make_openai: MakeBackend,
                                                  condense_jobs: BuildJobs) -> None:
    schema = load_prompt("condense").response_schema
    fs = fault_server(fallback_schema=schema)
    _runner, out = run(make_openai(fs, structured_output="none"), condense_jobs(["dog"]))
    assert_condense(out["dog"].value)
    assert "response_format" not in fs.requests[0].body
    assert json.loads(fs.answer_text(fs.requests[0].body)) == out["dog"].value
