"""Ray Data batch inference (kec.backends.ray_batch) in Ray's local mode with 2 CPUs.

The plumbing (rows in, engine actors, rows out, streaming, failures) runs with kec's
openai backend as the engine against a loopback server (no model to load); the knowledge
of a build on 2 llama.cpp actors is compared with the single-process llama.cpp build's.
Ray tests skip when ray is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kec.backends.base import ChatRequest, ChatResult, SamplingParams
from kec.backends.cache import ResponseCache
from kec.backends.ray_batch import (
    RayBatchBackend,
    decode_request,
    decode_result,
    encode_request,
    encode_result,
    vllm_processor_result,
    vllm_processor_row,
)
from kec.backends.structured import Job, StructuredRunner
from kec.errors import BackendError, MissingDependencyError
from kec.prompts import load_prompt
from tests.conftest import needs_llama
from tests.servers import FaultServer

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="needs kec[ray] (ray[data])")
MakeServer = Callable[..., FaultServer]
BuildJobs = Callable[[list[str]], list[Job]]


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """Ray's local mode on 2 CPUs, started once (or the Ray this session already runs)."""
    if not HAS_RAY:
        pytest.skip("needs kec[ray] (ray[data])")
    import ray

    if ray.is_initialized():
        yield
        return
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)
    yield
    ray.shutdown()


def _requests(names: list[str]) -> list[ChatRequest]:
    prompt = load_prompt("condense")
    return [ChatRequest(prompt.render(labels=[n, f"{n} photo"]), prompt.response_schema,
                        schema_name="condense") for n in names]


def _openai_engine(fs: FaultServer, **kwargs: Any) -> RayBatchBackend:
    """Engine actors running kec's openai backend against ``fs``."""
    options = {"base_url": fs.base_url, "structured_output": "json_object", "timeout": 10,
               "max_retries": 0}
    return RayBatchBackend("openai", "fault-model", options, **kwargs)


# -- rows (pure) --------------------------------------------------------------------------
@given(st.text(), st.one_of(st.none(), st.integers(0, 2**31)), st.floats(0, 2),
       st.booleans())
def test_requests_and_results_survive_their_rows(text: str, seed: int | None,
                                                 temperature: float, with_schema: bool) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}} if with_schema else None
    req = ChatRequest(({"role": "user", "content": text},), schema,
                      SamplingParams(temperature=temperature, max_tokens=7, seed=seed), "x")
    assert decode_request(encode_request(req)) == req
    res = ChatResult(text=text, prompt_tokens=3, completion_tokens=4)
    assert decode_result(encode_result(res, "h:1")) == (res, "h:1")
    failed = ChatResult(text=None, error=text or "e")
    assert decode_result(encode_result(failed, "h:2"))[0] == failed


def test_vllm_processor_rows() -> None:
    """The rows ray.data.llm's vLLM processor takes and gives (its documented columns)."""
    [req] = _requests(["gnu"])
    row = vllm_processor_row({"index": 3, "request": encode_request(req)})
    assert row["index"] == 3 and row["messages"] == list(req.messages)
    sp = row["sampling_params"]
    assert (sp["temperature"], sp["max_tokens"], sp["seed"]) == (0.0, 384, 0)
    assert json.loads(sp["structured_outputs"]["json"]) == req.schema
    unseeded = ChatRequest(req.messages, None, SamplingParams(seed=None))
    sp = vllm_processor_row({"index": 0, "request": encode_request(unseeded)})["sampling_params"]
    assert "seed" not in sp and "structured_outputs" not in sp
    out = vllm_processor_result({"index": 3, "generated_text": '{"name": "gnu"}',
                                 "num_input_tokens": 50, "num_generated_tokens": 6,
                                 "__inference_error__": ""})
    res, _ = decode_result(out["result"])
    assert out["index"] == 3 and res.ok and res.text == '{"name": "gnu"}'
    assert (res.prompt_tokens, res.completion_tokens) == (50, 6)
    bad = vllm_processor_result({"index": 1, "generated_text": "",
                                 "__inference_error__": "CUDA OOM"})
    res, _ = decode_result(bad["result"])
    assert not res.ok and res.error == "CUDA OOM"


# -- the Ray Data path --------------------------------------------------------------------
@needs_ray
def test_a_batch_streams_through_engine_actors_in_request_order(
        ray_local: None, fault_server: MakeServer) -> None:
    fs = fault_server(delay=0.1)
    backend = _openai_engine(fs, concurrency=2, batch_size=2)
    names = [f"item{i}x" for i in range(8)]
    seen: list[int] = []
    results = backend.complete(_requests(names), on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == list(range(8))  # each answer handed back once
    for name, res in zip(names, results):  # the answer of each request, in order
        assert res.ok
        body = next(r.body for r in fs.requests if name in json.dumps(r.body))
        assert res.text == fs.answer_text(body)
    assert fs.count == 8  # each request sent once
    d = backend.describe()
    assert d["backend"] == "ray" and d["engine"] == "openai" and d["actors"] == 2
    assert sum(d["answers_per_actor"].values()) == 8
    assert backend.identity() == {"backend": "ray", "model": "fault-model"}
    backend.close()  # Ray was started by the fixture: left running
    import ray

    assert ray.is_initialized()


@needs_ray
def test_cached_prompts_are_not_sent(ray_local: None, fault_server: MakeServer,
                                     condense_jobs: BuildJobs, tmp_path: Path) -> None:
    fs = fault_server()
    backend = _openai_engine(fs, concurrency=2, batch_size=4)
    jobs = condense_jobs(["gnu", "yak", "eel"])
    first = StructuredRunner(backend, ResponseCache(tmp_path), progress=False)
    assert all(o.value for o in first.run(jobs)) and first.usage.calls == 3
    again = StructuredRunner(backend, ResponseCache(tmp_path), progress=False)
    more = condense_jobs(["gnu", "yak", "eel", "owl"])
    assert all(o.value for o in again.run(more))
    assert again.usage.cached_calls == 3 and again.usage.calls == 1
    assert fs.count == 4  # only the new prompt went through Ray
    assert sum(backend.workers.values()) == 4


@needs_ray
def test_an_engine_that_cannot_start_is_one_clear_error(ray_local: None,
                                                        fault_server: MakeServer) -> None:
    fs = fault_server()
    backend = RayBatchBackend("openai", "", {"base_url": fs.base_url}, concurrency=1)
    with pytest.raises(BackendError) as info:
        backend.complete(_requests(["gnu"]))
    message = str(info.value)
    assert "engine stage failed" in message and "a model name is required" in message
    assert "\n" not in message and fs.count == 0


@needs_ray
def test_a_pool_larger_than_the_cluster_is_refused(ray_local: None,
                                                   fault_server: MakeServer) -> None:
    import ray

    cpus = int(ray.cluster_resources()["CPU"])
    with pytest.raises(BackendError, match=f"need {cpus + 1} CPUs; the Ray cluster has {cpus}"):
        _openai_engine(fault_server(), concurrency=cpus + 1)
    with pytest.raises(BackendError, match="GPU"):
        _openai_engine(fault_server(), concurrency=1, num_gpus=1)
    with pytest.raises(BackendError, match="concurrency"):
        _openai_engine(fault_server(), concurrency=0)


@needs_ray
@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_ray_vllm_without_vllm_is_a_clear_error() -> None:
    from kec.backends import create_backend
    from kec.backends.ray_batch import _has_ray_llm

    if _has_ray_llm():
        pytest.skip("ray.data.llm imports here")
    with pytest.raises(MissingDependencyError, match="vllm"):
        create_backend("ray-vllm")


@needs_ray
@needs_llama
@pytest.mark.slow  # two builds of the embedded model, one on 2 Ray actors: 1-4 minutes
@pytest.mark.timeout(900)
def test_ray_llamacpp_build_equals_the_single_process_build(
        ray_local: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kec.cli.main import main
    from kec.knowledge import load_knowledge

    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"groups": [{"labels": ["zebra"]},
                                             {"labels": ["tulip", "tulips"]}]}))

    def build(backend: str, out: Path) -> dict[str, Any]:
        assert main(["knowledge", "build", "--groups", str(groups), "--out", str(out),
                     "--backend", backend, "--concurrency", "2", "--no-cache", "--quiet",
                     "--max-pairs", "0", "--n-attributes", "1", "--n-captions", "1",
                     "--max-tokens", "96",
                     "--allow-failures"]) == 0
        return load_knowledge(out)

    single = build("llamacpp", tmp_path / "single.json")
    on_ray = build("ray-llamacpp", tmp_path / "ray.json")
    capsys.readouterr()
    assert on_ray["concepts"] == single["concepts"]
    assert on_ray["pairs"] == single["pairs"]
    # the same prompts were sent: same calls, repairs and tokens
    assert on_ray["provenance"]["usage"] == single["provenance"]["usage"]
    ray_backend = on_ray["provenance"]["backend"]
    assert ray_backend["backend"] == "ray-llamacpp" and ray_backend["actors"] == 2
    assert len(ray_backend["answers_per_actor"]) >= 2  # the work was spread
