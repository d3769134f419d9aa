"""In-process vLLM: batched chat with schema-constrained decoding (GPU).

Uses ``SamplingParams(structured_outputs=StructuredOutputsParams(json=schema))`` (vLLM >=
0.12; the old ``guided_decoding`` fields are gone and would be silently ignored). Install
with ``pip install 'kec[vllm]'`` on a CUDA machine.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from kec.backends.base import Backend, ChatRequest, ChatResult, ResultCallback
from kec.errors import MissingDependencyError

logger = logging.getLogger(__name__)


class VLLMBackend(Backend):
    """All requests of a batch go to ``vllm.LLM.chat`` at once, each with its own schema.

    Parameters
    ----------
    model : str
        A Hugging Face model id or local directory, as ``vllm.LLM`` takes it.
    **llm_kwargs
        Passed to ``vllm.LLM`` (``tensor_parallel_size``, ``gpu_memory_utilization``, ...).
    """

    name = "vllm"

    def __init__(self, model: str, **llm_kwargs: Any):
        try:
            import vllm
            from vllm.sampling_params import StructuredOutputsParams
        except ImportError:
            raise MissingDependencyError("vllm", "vllm", "the vllm backend") from None
        self._vllm = vllm
        self._so = StructuredOutputsParams
        self.model = model
        self.llm_kwargs = llm_kwargs
        logger.info("loading %s with vLLM", model)
        self._llm = vllm.LLM(model=model, **llm_kwargs)

    @classmethod
    def from_options(cls, **options: Any) -> VLLMBackend:
        allowed = {"tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "dtype",
                   "seed"}
        return cls(options["model"], **{k: v for k, v in options.items() if k in allowed})

    def describe(self) -> dict[str, Any]:
        return {**self.identity(), "vllm_version": getattr(self._vllm, "__version__", "?"),
                "structured_output": "structured_outputs.json"}

    def _sampling(self, req: ChatRequest) -> Any:
        p = req.params
        kwargs: dict[str, Any] = {"temperature": p.temperature, "top_p": p.top_p,
                                  "max_tokens": p.max_tokens, "seed": p.seed}
        if req.schema is not None:
            kwargs["structured_outputs"] = self._so(json=req.schema)
        return self._vllm.SamplingParams(**kwargs)

    def complete(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None
                 ) -> list[ChatResult]:
        if not requests:
            return []
        convs = [list(r.messages) for r in requests]
        try:
            outs = self._llm.chat(convs, [self._sampling(r) for r in requests], use_tqdm=False)
        except Exception as exc:  # one bad batch must not end the build
            results = [ChatResult(text=None, error=f"{type(exc).__name__}: {exc}")
                       for _ in requests]
        else:
            results = [
                ChatResult(text=o.outputs[0].text, prompt_tokens=len(o.prompt_token_ids or []),
                           completion_tokens=len(o.outputs[0].token_ids))
                for o in outs
            ]
        if on_result is not None:
            for i, res in enumerate(results):
                on_result(i, res)
        return results
