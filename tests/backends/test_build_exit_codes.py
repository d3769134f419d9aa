"""`kec knowledge build` says when it failed (issue 9 item 1): exit 3 with failures unless
--allow-failures, exit 4 within seconds on a dead endpoint with the cache kept, and the
summary line counts failed requests apart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from kec.cli.main import main
from kec.knowledge import load_knowledge
from tests.servers import FaultServer, Rule, free_port

GROUPS = [["gnu", "wildebeest"], ["dog", "puppy"], ["yak", "ox"], ["eel", "moray"]]


@pytest.fixture
def groups(tmp_path: Path) -> Path:
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({"groups": [{"labels": g} for g in GROUPS]}))
    return path


def _args(base_url: str, groups: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["knowledge", "build", "--groups", str(groups), "--out", str(out),
            "--backend", "openai", "--model", "fault-model", "--base-url", base_url,
            "--cache-dir", str(cache), "--max-pairs", "0", "--n-captions", "0", "--quiet",
            "--structured-output", "json_object", *extra]


def test_a_clean_build_exits_0(groups: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    with FaultServer() as fs:
        assert main(_args(fs.base_url, groups, tmp_path / "k.json", tmp_path / "c")) == 0
    assert "LLM calls 8 (+0 cached, 0 repairs, 0 failed requests)" in capsys.readouterr().err


def test_failures_exit_3_unless_allowed(groups: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "k.json"
    with FaultServer(rules=[Rule("puppy", ["400"])]) as fs:
        code = main(_args(fs.base_url, groups, out, tmp_path / "c", "--max-retries", "0"))
    err = capsys.readouterr().err
    assert code == 3
    # dog/puppy's condensation got no answer; its attribute request (which now carries
    # the WordNet description, "puppy" included) got none either
    assert "2 LLM answer(s) failed" in err and "--allow-failures" in err
    assert "LLM calls 6 (+0 cached, 0 repairs, 2 failed requests)" in err
    assert "Traceback" not in err
    doc = load_knowledge(out)  # the file is still written, with the fallback marked
    assert sum(bool(c.get("fallback")) for c in doc["concepts"]) == 1
    assert doc["provenance"]["usage"]["failed_calls"] == 2

    with FaultServer(rules=[Rule("puppy", ["400"])]) as fs:
        code = main(_args(fs.base_url, groups, out, tmp_path / "c", "--max-retries", "0",
                          "--allow-failures"))
    assert code == 0


def test_dead_endpoint_stops_within_seconds_with_exit_4(groups: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    """Production retry settings (5 retries, 1-30 s backoff): without the breaker this took
    minutes; the breaker stops it long before 60 s and leaves no half-written file."""
    dead = f"http://127.0.0.1:{free_port()}/v1"
    out = tmp_path / "k.json"
    t0 = time.perf_counter()
    code = main(_args(dead, groups, out, tmp_path / "c", "--concurrency", "8"))
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == 4 and elapsed < 60
    assert "circuit breaker" in err.lower() or "endpoint is down" in err
    assert "cached" in err and not out.exists()
    assert err.count("\n") < 40  # not 117 warnings
    assert "Traceback" not in err


@pytest.mark.slow  # about 25 s: one request's production backoff before the breaker opens
def test_server_killed_mid_build_exits_4_and_the_rerun_resumes(groups: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]
                                                               ) -> None:
    cache = tmp_path / "c"
    out = tmp_path / "k.json"
    with FaultServer(rules=[Rule("yak", ["die"])]) as fs:
        t0 = time.perf_counter()
        code = main(_args(fs.base_url, groups, out, cache, "--concurrency", "1"))
        elapsed = time.perf_counter() - t0
    assert code == 4 and elapsed < 60, capsys.readouterr().err
    kept = sum(1 for _ in cache.glob("*/*.json"))
    assert kept == 2  # gnu and dog were condensed before the server died
    assert not out.exists()
    # the server comes back on its port: the re-run asks only for what is missing
    port = int(fs.base_url.rsplit(":", 1)[1].split("/")[0])
    with FaultServer(port=port) as back:
        assert main(_args(back.base_url, groups, out, cache)) == 0
        assert back.count == 2 * len(GROUPS) - kept



# -- what main() says when a command is cut short ------------------------------------------
def test_ctrl_c_promises_a_resume_only_where_work_is_cached(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    import kec.cli.cluster as cluster_cli
    import kec.cli.knowledge as knowledge_cli

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cluster_cli, "cmd_cluster", interrupted)
    monkeypatch.setattr(knowledge_cli, "cmd_build", interrupted)
    assert main(["cluster", "f.st", "--k", "2", "--out", "r"]) == 130
    assert capsys.readouterr().err.strip() == "kec: interrupted"
    assert main(["knowledge", "build", "--labels", "l.txt", "--out", "k.json"]) == 130
    assert "cached; run the same command to resume" in capsys.readouterr().err


def test_os_errors_are_one_line(monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    import kec.cli.cluster as cluster_cli

    def disk_full(args: object) -> int:
        raise OSError(28, "No space left on device", "r/summary.json")

    monkeypatch.setattr(cluster_cli, "cmd_cluster", disk_full)
    assert main(["cluster", "f.st", "--k", "2", "--out", "r"]) == 1
    err = capsys.readouterr().err
    assert err == "kec: error: r/summary.json: No space left on device\n"
