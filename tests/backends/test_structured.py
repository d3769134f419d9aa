"""StructuredRunner: a retry changes the sample, and an invalid answer is never final,
not even from the cache (issue 17: a re-run gave the same three failures)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kec.backends.base import Backend, ChatRequest, ChatResult, SamplingParams
from kec.backends.cache import ResponseCache
from kec.backends.structured import (
    AnswerError,
    Job,
    StructuredRunner,
    attempt_params,
    parse_answer,
    short_reason,
)
from kec.prompts import load_prompt


class SeededBackend(Backend):
    """Greedy and low seeds give a placeholder; seed >= ``good_from`` a real answer
    (a model whose greedy answer is bad, and some samples are good)."""

    name = "seeded"
    model = "seeded-1"

    def __init__(self, good_from: int):
        self.good_from = good_from
        self.requests: list[ChatRequest] = []

    def _complete_one(self, request: ChatRequest) -> ChatResult:
        self.requests.append(request)
        seed = request.params.seed or 0
        good = request.params.temperature > 0 and seed >= self.good_from
        attrs = ["long curved tail", "striped fur"] if good else ["A", "B"]
        return ChatResult(text=json.dumps({"attributes": attrs}))


def _placeholders(job: Job, value: dict) -> None:
    if all(len(a) == 1 for a in value["attributes"]):
        raise AnswerError(f"every item ({value['attributes']!r}) is a placeholder letter",
                          "placeholder attributes", content=True)


def _run(backend: Backend, cache: Path | None) -> StructuredRunner:
    prompt = load_prompt("concept_attributes")
    job = Job("c1", prompt, {"name": "tiger", "description": "", "n": 2}, ("tiger",))
    runner = StructuredRunner(backend, ResponseCache(cache), SamplingParams(seed=0),
                              max_repairs=2, progress=False, validate=_placeholders)
    runner.outcome = runner.run([job])[0]  # type: ignore[attr-defined]
    return runner


def test_each_retry_draws_a_new_sample_and_names_the_problem() -> None:
    backend = SeededBackend(good_from=2)
    runner = _run(backend, None)
    assert runner.outcome.value == {"attributes": ["long curved tail", "striped fur"]}
    seeds = [(r.params.temperature, r.params.seed) for r in backend.requests]
    assert seeds == [(0.0, 0), (0.7, 1), (0.7, 2)]
    repair = backend.requests[1].messages[-1]["content"]
    assert "placeholder letter" in repair
    assert "JSON Schema" not in repair  # a content problem: no schema to copy
    assert runner.usage.repairs == 2 and runner.failures == []


def test_a_rerun_retries_with_new_seeds_and_then_serves_the_good_answer(tmp_path: Path
                                                                      ) -> None:
    backend = SeededBackend(good_from=4)
    first = _run(backend, tmp_path)  # attempts 0, 1, 2: all placeholders
    assert first.outcome.value is None and first.usage.calls == 3
    [failure] = first.failures
    assert failure.answered and failure.attempts == 3
    assert failure.reason == "placeholder attributes"
    assert failure.raw == json.dumps({"attributes": ["A", "B"]})

    backend.requests.clear()
    second = _run(backend, tmp_path)  # replays 0-2 from the cache, then seeds 3 and 4
    assert second.usage.cached_calls == 3 and second.usage.calls == 2
    assert [r.params.seed for r in backend.requests] == [3, 4]
    assert second.outcome.value == {"attributes": ["long curved tail", "striped fur"]}
    assert second.failures == []

    backend.requests.clear()
    third = _run(backend, tmp_path)  # everything cached: no call
    assert third.usage.calls == 0 and backend.requests == []
    assert third.outcome.value == second.outcome.value


def test_a_new_round_starts_from_the_prompt_alone(tmp_path: Path) -> None:
    backend = SeededBackend(good_from=99)
    _run(backend, tmp_path)
    _run(backend, tmp_path)
    lengths = [len(r.messages) for r in backend.requests]
    assert lengths == [2, 4, 6, 2, 4, 6]  # attempt 3 does not carry the bad answers


def test_attempt_params() -> None:
    p = SamplingParams(temperature=0.0, seed=5)
    assert attempt_params(p, 0) is p
    assert attempt_params(p, 3) == SamplingParams(temperature=0.7, seed=8)
    assert attempt_params(SamplingParams(temperature=1.2, seed=None), 1) == SamplingParams(
        temperature=1.2, seed=None)


def test_short_reasons_carry_no_raw_answer() -> None:
    schema = load_prompt("condense").response_schema
    with pytest.raises(AnswerError) as cut:
        parse_answer('```json\n{"name": "a sunflower with a very long', schema)
    assert cut.value.reason == "not valid JSON (cut off)" and "sunflower" in str(cut.value)
    with pytest.raises(AnswerError) as long:
        parse_answer('{"name": "x", "description": "' + "y" * 400 + '"}', schema)
    assert long.value.reason == "breaks the schema at $.description (maxLength)"
    assert short_reason("HTTP 500\nbody with \x1b[31m") == "HTTP 500"
    assert len(short_reason("z" * 500)) == 120
