"""`kec knowledge build` on a pool of replicas (issue 18, deliverable 5): two loopback
OpenAI-compatible servers, one killed mid-build, give the complete build with no duplicate
calls; a build killed mid-way resumes on other replicas; a dead pool exits 4 fast."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kec.cli.main import main
from kec.knowledge import load_knowledge
from tests.servers import FaultServer, Rule, free_port, requests_per_prompt

GROUPS = [["gnu", "wildebeest"], ["dog", "puppy"], ["yak", "ox"], ["eel", "moray"],
          ["owl", "barn owl"], ["bee", "honeybee"]]
PROMPTS = 3 * len(GROUPS)  # condense, attributes and captions per concept (no pairs)


@pytest.fixture
def groups(tmp_path: Path) -> Path:
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({"groups": [{"labels": g} for g in GROUPS]}))
    return path


def _args(urls: list[str], groups: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    pool = [a for url in urls for a in ("--base-url", url)]
    return ["knowledge", "build", "--groups", str(groups), "--out", str(out),
            "--backend", "openai", "--model", "fault-model", *pool, "--cache-dir", str(cache),
            "--max-pairs", "0", "--quiet", "--structured-output", "json_object",
            "--timeout", "5", *extra]


@pytest.fixture
def reference(groups: Path, tmp_path: Path) -> dict:
    """The same build on one server, uninterrupted."""
    out = tmp_path / "ref.json"
    with FaultServer() as fs:
        assert main(_args([fs.base_url], groups, out, tmp_path / "ref-cache")) == 0
        assert fs.count == PROMPTS
    return load_knowledge(out)


def test_two_replicas_one_killed_mid_build_give_the_complete_build(
        groups: Path, tmp_path: Path, reference: dict) -> None:
    out = tmp_path / "k.json"
    with FaultServer(rules=[Rule(None, ["ok"] * 4 + ["die"])], delay=0.02) as dying, \
            FaultServer(delay=0.02) as alive:
        code = main(_args([dying.base_url, alive.base_url], groups, out, tmp_path / "c",
                          "--concurrency", "4"))
        servers = [dying, alive]
        answered = requests_per_prompt(servers, "ok")
        sent = requests_per_prompt(servers)
        lost = sum(a != "ok" for a in dying.actions())  # in flight when it died
    assert code == 0
    doc = load_knowledge(out)
    assert doc["concepts"] == reference["concepts"]  # complete, and the same answers
    assert doc["provenance"]["failures"] == []
    # no duplicate calls: every prompt answered once, all servers together; the only
    # requests sent twice are those the dying server took down with it
    assert len(answered) == PROMPTS and set(answered.values()) == {1}
    assert 1 <= lost <= 4 and sum(sent.values()) == PROMPTS + lost
    replicas = doc["provenance"]["backend"]["replicas"]
    assert [r["url"] for r in replicas] == [dying.base_url, alive.base_url]
    assert [r["answered"] for r in replicas] == [4, PROMPTS - 4]
    assert replicas[0]["ejections"] == 1
    assert doc["provenance"]["usage"]["calls"] == PROMPTS


def test_a_killed_build_resumes_on_other_replicas_with_zero_repeated_calls(
        groups: Path, tmp_path: Path, reference: dict) -> None:
    cache, out = tmp_path / "cache", tmp_path / "k.json"
    cmd = [sys.executable, "-m", "kec.cli.main"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with FaultServer(delay=0.3) as a, FaultServer(delay=0.3) as b:
        proc = subprocess.Popen(cmd + _args([a.base_url, b.base_url], groups, out, cache,
                                            "--concurrency", "2"), env=env)
        deadline = time.time() + 60
        while a.count + b.count < PROMPTS // 2 and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert a.count > 0 and b.count > 0  # both replicas served the first half
    assert not out.exists()
    kept = sum(1 for _ in cache.glob("*/*.json"))
    assert kept >= 1
    # other ports, another pool size: the cache key holds no URL
    with FaultServer() as c, FaultServer() as d, FaultServer() as e:
        assert main(_args([c.base_url, d.base_url, e.base_url], groups, out, cache)) == 0
        assert c.count + d.count + e.count == PROMPTS - kept
    assert load_knowledge(out)["concepts"] == reference["concepts"]


def test_every_replica_dead_exits_4_within_seconds(groups: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    dead = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]
    out = tmp_path / "k.json"
    t0 = time.perf_counter()
    code = main(_args(dead, groups, out, tmp_path / "c", "--concurrency", "8"))
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == 4 and elapsed < 10, err
    assert "every LLM endpoint is down (2 replicas)" in err and "cached" in err
    assert not out.exists() and "Traceback" not in err


def test_base_url_file_adds_replicas(groups: Path, tmp_path: Path) -> None:
    out = tmp_path / "k.json"
    with FaultServer() as a, FaultServer() as b, FaultServer() as c:
        urls = tmp_path / "replicas.txt"
        urls.write_text(f"# two replicas\n{a.base_url}\n\n{b.base_url}  # second\n")
        assert main(_args([c.base_url], groups, out, tmp_path / "c",
                          "--base-url-file", str(urls))) == 0
        counts = [a.count, b.count, c.count]
    replicas = load_knowledge(out)["provenance"]["backend"]["replicas"]
    assert [r["url"] for r in replicas] == [c.base_url, a.base_url, b.base_url]
    assert sum(counts) == PROMPTS and min(counts) >= 1


@pytest.mark.parametrize(("extra", "says"), [
    (["--base-url-file", "{tmp}/missing.txt"], "URL file not found"),
    (["--base-url", "localhost:8000/v1"], "bad endpoint URL"),
    (["--base-url", "http://127.0.0.1:9/v1", "--base-url", "http://127.0.0.1:9/v1/"],
     "listed twice"),
    (["--backend", "llamacpp", "--base-url", "http://127.0.0.1:9/v1", "--base-url",
      "http://127.0.0.1:10/v1"], "only --backend openai takes a pool"),
])
def test_bad_endpoint_options_fail_at_once(groups: Path, tmp_path: Path, extra: list[str],
                                           says: str, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    out = tmp_path / "k.json"
    argv = ["knowledge", "build", "--groups", str(groups), "--out", str(out), "--backend",
            "openai", "--cache-dir", str(tmp_path / "c"), "--quiet",
            *[x.replace("{tmp}", str(tmp_path)) for x in extra]]
    t0 = time.perf_counter()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert time.perf_counter() - t0 < 2  # before any model or encoder is loaded
    assert says in err and err.count("\n") == 1 and not out.exists()
