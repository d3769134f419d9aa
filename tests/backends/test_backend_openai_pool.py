"""OpenAIBackend on a pool of replicas: real loopback servers speaking the OpenAI
chat-completions protocol, counted per prompt across all of them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kec.backends.cache import ResponseCache
from kec.backends.openai_backend import OpenAIBackend
from kec.backends.structured import Job, StructuredRunner
from kec.errors import BackendError, EndpointDownError
from tests.servers import FaultServer, Rule, free_port, requests_per_prompt

MakeServer = Callable[..., FaultServer]
BuildJobs = Callable[[list[str]], list[Job]]


def _pool(servers: list[FaultServer] | list[str], **overrides: object) -> OpenAIBackend:
    urls = [s if isinstance(s, str) else s.base_url for s in servers]
    opts: dict[str, object] = {"model": "fault-model", "base_url": urls, "timeout": 2.0,
                               "max_retries": 3, "backoff_base": 0.01, "backoff_max": 0.05,
                               "seed": 0, "structured_output": "json_object"}
    opts.update(overrides)
    return OpenAIBackend(**opts)  # type: ignore[arg-type]


def _run(backend: OpenAIBackend, jobs: list[Job], cache: ResponseCache | None = None
         ) -> StructuredRunner:
    runner = StructuredRunner(backend, cache=cache, progress=False)
    outcomes = runner.run(jobs)
    assert len(outcomes) == len(jobs)
    return runner


def _names(n: int) -> list[str]:
    return [f"item{i}x" for i in range(n)]


def test_load_is_spread_by_requests_in_flight(fault_server: MakeServer,
                                              condense_jobs: BuildJobs) -> None:
    servers = [fault_server(delay=0.05) for _ in range(3)]
    backend = _pool(servers, concurrency=6)
    runner = _run(backend, condense_jobs(_names(30)))
    assert runner.failures == [] and runner.usage.calls == 30
    answered = [fs.count for fs in servers]
    assert sum(answered) == 30 and min(answered) >= 6, answered
    stats = backend.describe()["replicas"]
    assert [s["answered"] for s in stats] == answered
    assert all(s["max_in_flight"] <= 2 for s in stats)  # 6 in flight over 3 replicas
    assert max(fs.max_in_flight for fs in servers) <= 3  # the server counts a bit later
    assert set(requests_per_prompt(servers).values()) == {1}  # no prompt sent twice


def test_a_replica_killed_mid_run_loses_nothing_and_repeats_nothing(
        fault_server: MakeServer, condense_jobs: BuildJobs) -> None:
    dying = fault_server(rules=[Rule(None, ["ok"] * 3 + ["die"])], delay=0.02)
    alive = fault_server(delay=0.02)
    backend = _pool([dying, alive], concurrency=4)
    runner = _run(backend, condense_jobs(_names(24)))
    assert runner.failures == [] and runner.usage.calls == 24
    assert not backend.breaker_open
    ok = requests_per_prompt([dying, alive], "ok")
    assert len(ok) == 24 and set(ok.values()) == {1}  # each prompt answered exactly once
    # the only requests sent twice are those the dying replica took down with it
    sent = requests_per_prompt([dying, alive])
    lost = dying.actions().count("die")  # in flight when it died
    assert 1 <= lost <= 4 and sum(sent.values()) == 24 + lost and max(sent.values()) == 2
    a, b = backend.describe()["replicas"]
    assert (a["answered"], a["ejections"], a["in_rotation"]) == (3, 1, False)
    assert b["answered"] == 21 and b["in_rotation"]


def test_an_ejected_replica_is_probed_again_and_rejoins(fault_server: MakeServer,
                                                        condense_jobs: BuildJobs) -> None:
    flaky = fault_server(rules=[Rule(None, ["503", "503", "ok"])])  # gateway down, then back
    steady = fault_server(delay=0.05)
    backend = _pool([flaky, steady], concurrency=1, cooldown=0.2)
    runner = _run(backend, condense_jobs(_names(20)))
    assert runner.failures == []
    f, s = backend.describe()["replicas"]
    assert f["ejections"] == 1 and f["in_rotation"] and f["answered"] >= 2
    assert f["answered"] + s["answered"] == 20
    assert set(requests_per_prompt([flaky, steady], "ok").values()) == {1}


def test_every_replica_dead_stops_fast(condense_jobs: BuildJobs) -> None:
    dead = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(3)]
    # production backoff (1 s base, 5 retries): the breaker must stop it within seconds
    backend = _pool(dead, max_retries=5, backoff_base=1.0, backoff_max=30.0, concurrency=8)
    t0 = time.perf_counter()
    with pytest.raises(EndpointDownError, match="every LLM endpoint is down") as info:
        _run(backend, condense_jobs(_names(20)))
    assert time.perf_counter() - t0 < 5
    assert info.value.exit_code == 4 and "consecutive requests" in str(info.value)
    assert all(not s["in_rotation"] for s in backend.describe()["replicas"])


def test_one_dead_replica_of_two_does_not_open_the_breaker(fault_server: MakeServer,
                                                           condense_jobs: BuildJobs) -> None:
    """16 requests fail at once on the dead replica, more than the breaker threshold (8):
    the breaker still stays shut, because the other replica is in rotation."""
    dead = f"http://127.0.0.1:{free_port()}/v1"
    alive = fault_server(delay=0.1)
    backend = _pool([dead, alive], concurrency=32)
    runner = _run(backend, condense_jobs(_names(32)))
    assert runner.failures == [] and not backend.breaker_open
    assert alive.count == 32


def test_the_cache_key_holds_no_url_so_a_build_resumes_on_other_replicas(
        fault_server: MakeServer, condense_jobs: BuildJobs, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    first = [fault_server(), fault_server()]
    ra = _run(_pool(first), condense_jobs(_names(10)), cache)
    assert ra.usage.calls == 10
    other = [fault_server() for _ in range(3)]  # new ports, another order, another size
    backend = _pool(list(reversed(other)))
    rb = _run(backend, condense_jobs(_names(12)), cache)
    assert rb.usage.cached_calls == 10 and rb.usage.calls == 2
    assert sum(fs.count for fs in other) == 2
    ident = backend.identity()
    assert ident == {"backend": "openai", "model": "fault-model", "endpoint": "replica pool"}
    assert ident == _pool(first).identity()
    entry = json.loads(next((tmp_path / "cache").rglob("*.json")).read_text("utf-8"))
    assert "127.0.0.1" not in json.dumps(entry["backend"])
    # a single endpoint keeps its URL in the key, as before
    assert _pool(first[:1]).identity()["base_url"] == first[0].base_url


def test_pool_options_are_checked() -> None:
    with pytest.raises(BackendError, match="listed twice"):
        _pool(["http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1/"])
    with pytest.raises(BackendError, match="http"):
        _pool(["http://127.0.0.1:9/v1", "127.0.0.1:10/v1"])
    backend = _pool(["http://u:pw@127.0.0.1:9/v1", "http://127.0.0.1:10/v1"])
    assert "pw" not in json.dumps(backend.describe())
    assert [s["url"] for s in backend.describe()["replicas"]] == [
        "http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"]
