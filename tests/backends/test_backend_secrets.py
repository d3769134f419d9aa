"""The API key reaches the server's Authorization header and nothing else: not the cache,
not identity()/describe(), not logs (DEBUG, every logger), not error texts."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from kec.backends import create_backend
from kec.backends.cache import ResponseCache
from kec.backends.structured import Job, StructuredRunner
from tests.servers import FaultServer, Rule

FAKE_KEY = "sk-kec-test-7f3a9c1e5b2d4f60a8e1c3b5d7f9a2c4"
MakeServer = Callable[..., FaultServer]


def _tree_text(root: Path) -> str:
    return "\n".join(p.read_text("utf-8", "replace") for p in sorted(root.rglob("*"))
                     if p.is_file())


def _assert_secret_nowhere(key: str, *, texts: dict[str, str]) -> None:
    for where, text in texts.items():
        assert key not in text, f"API key leaked into {where}"
        assert key[-12:] not in text, f"part of the API key leaked into {where}"


@pytest.mark.parametrize("backend_name", ["openai", "langchain"])
def test_api_key_never_leaks(backend_name: str, fault_server: MakeServer,
                             condense_jobs: Callable[[list[str]], list[Job]], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                             capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KEC_TEST_API_KEY", FAKE_KEY)
    caplog.set_level(logging.DEBUG)  # root: every library's debug logging is captured
    # dog: 401 whose message quotes the key (as OpenAI's does); gnu: 500 forever; cow: ok
    fs = fault_server(rules=[Rule("dog", ["401"]), Rule("gnu", ["500"])])
    if backend_name == "openai":
        backend = create_backend("openai", model="fault-model", base_url=fs.base_url,
                                 api_key_env="KEC_TEST_API_KEY", max_retries=1,
                                 backoff_base=0.01, structured_output="json_object")
    else:
        pytest.importorskip("langchain_openai", reason="needs kec[langchain]")
        backend = create_backend("langchain", model="openai:fault-model",
                                 base_url=fs.base_url, api_key_env="KEC_TEST_API_KEY",
                                 max_retries=0, structured="json_mode")
    cache_dir = tmp_path / "cache"
    runner = StructuredRunner(backend, cache=ResponseCache(cache_dir), progress=False)
    outcomes = {o.job.item: o for o in runner.run(condense_jobs(["dog", "gnu", "cow"]))}
    backend.close()

    # positive control: the key was really used, and the scenario really happened
    assert fs.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert outcomes["cow"].value is not None
    assert sorted(f.item for f in runner.failures) == ["dog", "gnu"]
    assert any("401" in f.error for f in runner.failures)
    assert cache_dir.exists() and any(cache_dir.rglob("*.json"))

    out, err = capfd.readouterr()
    _assert_secret_nowhere(FAKE_KEY, texts={
        "the cache directory": _tree_text(cache_dir),
        "identity()": json.dumps(backend.identity()),
        "describe()": json.dumps(backend.describe()),
        "failure records": json.dumps([f.to_dict() for f in runner.failures]),
        "the logs": caplog.text + "\n".join(str(r.args) for r in caplog.records),
        "stdout/stderr": out + err,
        "repr(backend)": repr(backend),
    })
    assert "***" in next(f.error for f in runner.failures if f.item == "dog")
