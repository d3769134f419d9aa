"""Offline batch inference on Ray Data: a build's independent prompts through engine actors.

The builder hands a backend every cache miss of one step at once
(:meth:`~kec.backends.base.Backend.complete`; cached prompts are never sent). These
backends turn that batch into a Ray Dataset, one row per request, and stream it through a
pool of engine actors, each holding one model loaded once:

.. code-block:: text

    ray.data.from_items(rows) -> engine stage (actor pool, `concurrency` actors)
                              -> iter_rows(): each answer is handed back (and cached by
                                 the runner) as its block finishes

Only the engine stage differs between engines:

``ray-llamacpp``
    :class:`EngineActor` running kec's llama.cpp backend (the embedded SmolLM2 by
    default), ``map_batches(EngineActor, compute=ActorPoolStrategy(size=concurrency))``.
    It runs on any CPU machine, in Ray's local mode or on a cluster (``RAY_ADDRESS``).
``ray-vllm``
    Ray Data's LLM processor with the vLLM engine
    (``ray.data.llm.vLLMEngineProcessorConfig`` + ``build_processor``) when
    ``ray.data.llm`` can be imported; otherwise the same :class:`EngineActor` stage as
    ``ray-llamacpp`` running kec's in-process ``vllm`` backend, one GPU per actor.
    **Neither vLLM path has ever run here**: vLLM cannot be installed on the test
    machines. What is tested is the shared code path (rows in, engine actors, rows out,
    streaming, failures) with llama.cpp as the engine, and the row mapping of the vLLM
    processor (:func:`vllm_processor_row`, :func:`vllm_processor_result`) as pure
    functions.

Requests and answers cross the Ray object store as JSON strings (one column each), so
messages, schemas and sampling parameters of any shape survive Arrow. Each answer records
the actor that gave it; :meth:`RayBatchBackend.describe` counts answers per actor.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import socket
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

from kec.backends.base import Backend, ChatRequest, ChatResult, ResultCallback, SamplingParams
from kec.errors import BackendError, MissingDependencyError

logger = logging.getLogger(__name__)


# -- rows: requests and answers as JSON strings -------------------------------------------
def encode_request(request: ChatRequest) -> str:
    """One request as the JSON text of its Dataset row."""
    return json.dumps({"messages": [dict(m) for m in request.messages],
                       "schema": request.schema, "schema_name": request.schema_name,
                       "params": request.params.to_dict()}, ensure_ascii=False)


def decode_request(text: str) -> ChatRequest:
    """The inverse of :func:`encode_request`."""
    d = json.loads(text)
    return ChatRequest(tuple(d["messages"]), d["schema"], SamplingParams(**d["params"]),
                       schema_name=d["schema_name"])


def encode_result(result: ChatResult, worker: str) -> str:
    """One answer (or its error) and the actor that gave it, as JSON text."""
    return json.dumps({"text": result.text, "error": result.error,
                       "prompt_tokens": result.prompt_tokens,
                       "completion_tokens": result.completion_tokens, "worker": worker},
                      ensure_ascii=False)


def decode_result(text: str) -> tuple[ChatResult, str]:
    """The answer of a row and the actor that gave it."""
    d = json.loads(text)
    return (ChatResult(text=d["text"], prompt_tokens=int(d["prompt_tokens"]),
                       completion_tokens=int(d["completion_tokens"]), error=d["error"]),
            str(d["worker"]))


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class EngineActor:
    """A kec backend inside a Ray actor: the model is loaded once, in the constructor.

    Ray Data calls the instance with a batch of rows (``index``, ``request``) and gets the
    rows back with a ``result`` column. A failed request is an answer with ``error`` set
    (the backend's own contract), never an exception, so one bad row cannot fail the
    Dataset.

    Parameters
    ----------
    backend : str
        A registered backend name (``llamacpp``, ``vllm``, ...).
    options : dict
        Its options, as :func:`kec.backends.create_backend` takes them.
    """

    def __init__(self, backend: str, options: dict[str, Any]):
        from kec.backends import create_backend

        self.backend = create_backend(backend, **options)
        self.worker = _worker_name()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        requests = [decode_request(str(t)) for t in batch["request"]]
        results = self.backend.complete(requests)
        encoded = [encode_result(r, self.worker) for r in results]
        return {"index": np.asarray(batch["index"]), "result": np.asarray(encoded, dtype=object)}


def engine_class(backend: str, options: dict[str, Any]) -> type[EngineActor]:
    """An :class:`EngineActor` class with ``backend`` and ``options`` built in: Ray Data
    then creates its actors without constructor arguments in the object store (which
    Ray warns would break an actor restart)."""

    class Engine(EngineActor):
        def __init__(self) -> None:
            super().__init__(backend, dict(options))

    Engine.__name__ = Engine.__qualname__ = f"{backend.capitalize()}Engine"
    return Engine


# -- the vLLM processor of ray.data.llm: row mapping (pure) ---------------------------------
def vllm_processor_row(row: dict[str, Any]) -> dict[str, Any]:
    """A request row as the input of ray.data.llm's vLLM processor: ``messages`` and
    ``sampling_params`` (the schema as ``structured_outputs.json``, vLLM >= 0.12)."""
    request = decode_request(str(row["request"]))
    p = request.params
    sampling: dict[str, Any] = {"temperature": p.temperature, "top_p": p.top_p,
                                "max_tokens": p.max_tokens}
    if p.seed is not None:
        sampling["seed"] = p.seed
    if request.schema is not None:
        sampling["structured_outputs"] = {"json": json.dumps(request.schema)}
    return {"index": row["index"], "messages": [dict(m) for m in request.messages],
            "sampling_params": sampling}


def vllm_processor_result(row: dict[str, Any]) -> dict[str, Any]:
    """An output row of the vLLM processor as a ``result`` row (its error column, when
    ``should_continue_on_error`` is on, becomes the answer's error)."""
    error = row.get("__inference_error__") or None
    result = ChatResult(text=None if error else str(row.get("generated_text") or ""),
                        prompt_tokens=int(row.get("num_input_tokens") or 0),
                        completion_tokens=int(row.get("num_generated_tokens") or 0),
                        error=str(error) if error else None)
    return {"index": row["index"], "result": encode_result(result, "ray.data.llm vLLM")}


# -- the backends ---------------------------------------------------------------------------
class RayBatchBackend(Backend):
    """Run each batch of requests as a Ray Dataset through a pool of engine actors.

    Parameters
    ----------
    engine : str
        The kec backend each actor runs (``llamacpp``, ``vllm``, ``openai``, ...).
    model : str
        Its model (recorded in :meth:`identity`).
    engine_options : dict or None
        Further options of the engine backend (``create_backend`` style).
    concurrency : int
        Engine actors (model replicas) in the pool.
    batch_size : int
        Requests per actor call; smaller batches spread a small build better and hand
        answers back (to the cache) sooner.
    num_cpus, num_gpus : float
        Resources each actor reserves. In Ray's local mode the pool must fit the machine.
    address : str or None
        Ray cluster to join; ``None``: ``$RAY_ADDRESS``, else a local Ray started here
        (and stopped by :meth:`close`).
    """

    name: ClassVar[str] = "ray"

    def __init__(self, engine: str, model: str, engine_options: dict[str, Any] | None = None,
                 concurrency: int = 2, batch_size: int = 4, num_cpus: float = 1.0,
                 num_gpus: float = 0.0, address: str | None = None):
        if importlib.util.find_spec("ray") is None:
            raise MissingDependencyError("ray[data]", "ray", f"the {self.name} backend")
        if concurrency < 1:
            raise BackendError(f"{self.name} backend: concurrency (engine actors) must be >= 1")
        if batch_size < 1:
            raise BackendError(f"{self.name} backend: batch_size must be >= 1")
        if num_cpus < 0 or num_gpus < 0:
            raise BackendError(f"{self.name} backend: num_cpus and num_gpus must be >= 0")
        self.engine = engine
        self.model = str(model)
        self.engine_options = {"model": self.model, **(engine_options or {})}
        self.concurrency = int(concurrency)
        self.batch_size = int(batch_size)
        self.num_cpus = float(num_cpus)
        self.num_gpus = float(num_gpus)
        self.workers: Counter[str] = Counter()  # answers per actor
        self._owns_ray = False
        self._address = address or os.environ.get("RAY_ADDRESS") or None
        self._start_ray()
        self._check_resources()

    # -- Ray ----------------------------------------------------------------------------------
    def _start_ray(self) -> None:
        import ray

        if ray.is_initialized():
            return
        logger.info("starting Ray (%s)", self._address or "local")
        ray.init(address=self._address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, ignore_reinit_error=True)
        self._owns_ray = True

    def _check_resources(self) -> None:
        """A pool larger than the cluster would wait forever: refuse it at once."""
        import ray

        have = ray.cluster_resources()
        for what, each in (("CPU", self.num_cpus), ("GPU", self.num_gpus)):
            need = each * self.concurrency
            if need > have.get(what, 0.0) + 1e-9:
                raise BackendError(
                    f"{self.name} backend: {self.concurrency} engine actor(s) x {each:g} {what} "
                    f"need {need:g} {what}s; the Ray cluster has {have.get(what, 0.0):g} "
                    "(lower --concurrency)")

    def _rows(self, requests: Sequence[ChatRequest]) -> tuple[Any, int]:
        """The requests as a Dataset of one block per batch, and the number of batches."""
        import ray

        rows = [{"index": i, "request": encode_request(r)} for i, r in enumerate(requests)]
        blocks = max(1, math.ceil(len(rows) / self.batch_size))
        try:
            return ray.data.from_items(rows, override_num_blocks=blocks), blocks
        except TypeError:  # Ray < 2.10
            return ray.data.from_items(rows, parallelism=blocks), blocks

    def _engine_stage(self, ds: Any, n_batches: int) -> Any:
        """The engine actors: one batch of rows in, the same rows with ``result`` out
        (no more actors than batches)."""
        import ray

        return ds.map_batches(
            engine_class(self.engine, self.engine_options),
            # one batch at a time per actor: the batches spread over every actor
            compute=ray.data.ActorPoolStrategy(size=min(self.concurrency, n_batches),
                                               max_tasks_in_flight_per_actor=1),
            batch_size=self.batch_size, num_cpus=self.num_cpus, num_gpus=self.num_gpus or None)

    # -- Backend ------------------------------------------------------------------------------
    def complete(self, requests: Sequence[ChatRequest], on_result: ResultCallback | None = None
                 ) -> list[ChatResult]:
        """Answers in request order; ``on_result`` is called as each block finishes.

        Raises
        ------
        BackendError
            The engine stage itself failed (an actor could not load its model, a worker
            died); the answers handed to ``on_result`` before stay valid.
        """
        if not requests:
            return []
        _quiet_ray_data()
        results: list[ChatResult | None] = [None] * len(requests)
        ds = self._engine_stage(*self._rows(requests))
        try:
            for row in ds.iter_rows():
                i = int(row["index"])
                res, worker = decode_result(str(row["result"]))
                self.workers[worker] += res.ok
                results[i] = res
                if on_result is not None:
                    on_result(i, res)
        except Exception as exc:  # Ray wraps the actor's exception; one line is enough
            raise BackendError(f"{self.name} backend: the engine stage failed: "
                               f"{_first_line(exc)} (Ray's logs: "
                               "/tmp/ray/session_latest/logs)") from None
        missing = ChatResult(text=None, error="no answer came back from the engine stage")
        return [r if r is not None else missing for r in results]

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), **self._engine_identity()}

    def _engine_identity(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        import ray

        return {**self.identity(), "engine": self.engine, "actors": self.concurrency,
                "batch_size": self.batch_size, "ray_version": ray.__version__,
                "ray_address": self._address or "local",
                "answers_per_actor": dict(sorted(self.workers.items()))}

    def close(self) -> None:
        if self._owns_ray:
            import ray

            self._owns_ray = False
            ray.shutdown()


class RayLlamaCppBackend(RayBatchBackend):
    """llama.cpp engines (the embedded SmolLM2 by default) in Ray actors: the CPU engine
    that runs the Ray Data path anywhere. ``n_threads`` of each engine = ``num_cpus``."""

    name = "ray-llamacpp"

    def __init__(self, model: str | None = None, concurrency: int = 2, batch_size: int = 1,
                 num_cpus: float = 1.0, n_ctx: int = 2048, seed: int = 0,
                 repeat_penalty: float = 1.1, address: str | None = None):
        from kec.backends.llamacpp import EMBEDDED_MODEL, resolve_model_path

        path = resolve_model_path(model)  # a missing file fails here, before Ray starts
        name = EMBEDDED_MODEL if model in (None, "", EMBEDDED_MODEL) else str(path)
        self.repeat_penalty = float(repeat_penalty)
        options = {"n_ctx": n_ctx, "seed": seed, "repeat_penalty": self.repeat_penalty,
                   "n_threads": max(int(num_cpus), 1)}
        super().__init__("llamacpp", name, options, concurrency=concurrency,
                         batch_size=batch_size, num_cpus=num_cpus, address=address)

    @classmethod
    def from_options(cls, **options: Any) -> RayLlamaCppBackend:
        allowed = {"model", "concurrency", "batch_size", "num_cpus", "n_ctx", "seed",
                   "repeat_penalty", "address"}
        return cls(**{k: v for k, v in options.items() if k in allowed})

    def _engine_identity(self) -> dict[str, Any]:
        return {"repeat_penalty": self.repeat_penalty}


class RayVLLMBackend(RayBatchBackend):
    """vLLM engines on a Ray cluster: ray.data.llm's vLLM processor when it can be
    imported, else kec's ``vllm`` backend in :class:`EngineActor` (one per
    ``tensor_parallel_size`` GPUs). Never run on real vLLM (see the module docstring)."""

    name = "ray-vllm"

    def __init__(self, model: str, concurrency: int = 1, batch_size: int = 64,
                 tensor_parallel_size: int = 1, address: str | None = None,
                 **engine_kwargs: Any):
        self.processor = importlib.util.find_spec("ray") is not None and _has_ray_llm()
        if not self.processor and importlib.util.find_spec("vllm") is None:
            raise MissingDependencyError("vllm", "vllm", "the ray-vllm backend (ray.data.llm "
                                         "or vllm)")
        self.engine_kwargs = {"tensor_parallel_size": int(tensor_parallel_size),
                              **engine_kwargs}
        super().__init__("vllm", model, self.engine_kwargs, concurrency=concurrency,
                         batch_size=batch_size, num_cpus=1.0,
                         num_gpus=float(tensor_parallel_size), address=address)

    @classmethod
    def from_options(cls, **options: Any) -> RayVLLMBackend:
        allowed = {"model", "concurrency", "batch_size", "tensor_parallel_size", "address",
                   "gpu_memory_utilization", "max_model_len", "dtype", "seed"}
        return cls(**{k: v for k, v in options.items() if k in allowed})

    def _engine_stage(self, ds: Any, n_batches: int) -> Any:
        """ray.data.llm's vLLM processor (never run here), else the actor stage."""
        if not self.processor:
            return super()._engine_stage(ds, n_batches)
        from ray.data import llm

        config = llm.vLLMEngineProcessorConfig(
            model_source=self.model, engine_kwargs=self.engine_kwargs,
            concurrency=self.concurrency, batch_size=self.batch_size,
            should_continue_on_error=True)
        build = getattr(llm, "build_processor", None) or llm.build_llm_processor
        processor = build(config, preprocess=vllm_processor_row,
                          postprocess=vllm_processor_result)
        return processor(ds)

    def describe(self) -> dict[str, Any]:
        engine = ("ray.data.llm vLLMEngineProcessor" if self.processor
                  else "kec vllm backend in Ray actors")
        return {**super().describe(), "engine": engine}


def _has_ray_llm() -> bool:
    """Whether ``ray.data.llm`` imports (it needs ``ray[llm]``: vLLM, aiohttp, ...)."""
    try:
        import ray.data.llm  # noqa: F401
    except Exception:  # ImportError, or a broken optional dependency behind it
        return False
    return True


def _quiet_ray_data() -> None:
    """No Ray Data progress bars or per-run banners on kec's stderr (kec shows its own)."""
    import ray.data

    # no per-run banners, and no stack traces: a failure reaches the user as one
    # BackendError line; Ray keeps its full logs under /tmp/ray/session_latest/logs
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False


def _first_line(exc: BaseException) -> str:
    """The most telling line of a (Ray-wrapped) exception."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    tail = [ln for ln in lines if "Error" in ln.split(":", 1)[0]]
    text = (tail[-1] if tail else (lines[-1] if lines else type(exc).__name__))
    return text[:300]


__all__ = ["EngineActor", "RayBatchBackend", "RayLlamaCppBackend", "RayVLLMBackend",
           "decode_request", "decode_result", "encode_request", "encode_result", "engine_class",
           "vllm_processor_result", "vllm_processor_row"]
