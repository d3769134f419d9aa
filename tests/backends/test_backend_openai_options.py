"""OpenAIBackend construction, options, provenance and the retry-delay policy."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from kec.backends import create_backend
from kec.backends.openai_backend import OpenAIBackend, _retry_after
from kec.errors import BackendError


def test_create_backend_passes_options_and_ignores_foreign_ones() -> None:
    backend = create_backend("openai", model="m1", base_url="http://127.0.0.1:9/v1/",
                             concurrency=3, timeout=7, max_retries=2, backoff_base=0.5,
                             backoff_max=4, structured_output="json_object",
                             n_ctx=4096, api_key_env=None)
    assert isinstance(backend, OpenAIBackend)
    assert (backend.concurrency, backend.timeout, backend.max_retries) == (3, 7.0, 2)
    assert backend.base_url == "http://127.0.0.1:9/v1"
    assert backend.structured_mode == "json_object"
    assert backend.identity() == {"backend": "openai", "model": "m1",
                                  "base_url": "http://127.0.0.1:9/v1"}
    d = backend.describe()
    assert d["structured_output"] == "json_object"
    assert d["base_url"] == "http://127.0.0.1:9/v1"


def test_default_model_comes_from_registry() -> None:
    backend = create_backend("openai", base_url="http://127.0.0.1:9/v1")
    assert backend.model == "gpt-4o-mini"


def test_describe_drops_credentials_in_url() -> None:
    backend = OpenAIBackend("m", base_url="http://user:pw@127.0.0.1:9/v1?token=abc")
    assert backend.describe()["base_url"] == "http://127.0.0.1:9/v1"
    assert "pw" not in str(backend.describe()) and "abc" not in str(backend.describe())


def test_openai_without_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(BackendError, match="MY_KEY"):
        OpenAIBackend("gpt-4o-mini", api_key_env="MY_KEY")
    monkeypatch.setenv("MY_KEY", "sk-x")
    assert OpenAIBackend("gpt-4o-mini", api_key_env="MY_KEY").describe()["base_url"] == (
        "https://api.openai.com/v1")


@pytest.mark.parametrize("bad", [
    {"structured_output": "xml"}, {"concurrency": 0}, {"timeout": 0}, {"max_retries": -1},
    {"backoff_base": -1.0}, {"model": ""},
])
def test_invalid_options(bad: dict[str, object]) -> None:
    opts: dict[str, object] = {"model": "m", "base_url": "http://127.0.0.1:9/v1", **bad}
    with pytest.raises(BackendError):
        OpenAIBackend(**opts)  # type: ignore[arg-type]


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", backoff_base=1.0,
                            backoff_max=6.0, seed=1)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 6.0), (9, 6.0)]:
        d = backend._backoff(attempt, None)
        assert 0.5 * full <= d <= full
    assert backend._backoff(1, 2.5) == 2.5  # Retry-After replaces the backoff
    assert backend._backoff(1, 600.0) == 6.0  # ... capped
    assert backend._backoff(1, -3.0) == 0.0
    # jitter comes from the backend's own generator: same seed, same delays
    again = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", backoff_base=1.0,
                          backoff_max=6.0, seed=1)
    other = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", backoff_base=1.0,
                          backoff_max=6.0, seed=1)
    assert [again._backoff(k, None) for k in range(1, 5)] == [
        other._backoff(k, None) for k in range(1, 5)]


def test_retry_after_parsing() -> None:
    assert _retry_after(httpx.Headers({"retry-after": "3"})) == 3.0
    assert _retry_after(httpx.Headers({"retry-after": "0.5"})) == 0.5
    assert _retry_after(httpx.Headers({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert _retry_after(httpx.Headers({"retry-after": "soon"})) is None
    assert _retry_after(httpx.Headers({})) is None
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    delay = _retry_after(httpx.Headers({"retry-after": when}))
    assert delay is not None and 25 <= delay <= 31
