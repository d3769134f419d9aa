"""One array API over numpy and torch, so kec's clustering math has one code path.

In the spirit of POT's ``ot.backend`` (Flamary et al., "POT: Python Optimal Transport",
JMLR 2021): a function writes ``nx = get_backend(X, U)`` once and then calls ``nx.exp``,
``nx.matmul``... instead of ``np.exp``/``torch.exp``. The same code then runs on numpy
arrays (today's CPU path) and on torch tensors on any device (CPU torch in tests, CUDA on
a GPU).

Conventions
-----------
- **torch is imported lazily.** Importing :mod:`kec.cluster` never imports torch; a
  value is recognised as a tensor only when ``torch`` is already in ``sys.modules`` (no
  tensor can exist otherwise).
- **Mixed inputs** (a torch tensor next to numpy arrays) select the torch backend; move
  the numpy ones with ``nx.asarray(x, like=tensor)`` or :func:`as_backend_array`.
- **dtypes** are given by name: ``"float32"``, ``"float64"``, ``"float16"``,
  ``"bfloat16"`` (torch only; numpy has no bfloat16) or as a numpy/torch dtype.
- **Devices** are strings: ``"cpu"``, ``"cuda"``, ``"cuda:1"``. ``device="cpu"`` with
  numpy input keeps numpy (the tuned CPU path); a CUDA device always means torch.
- Reductions take ``axis`` (numpy's name) and ``keepdims``.
- **Sums over item rows** that must cover every process's rows (rows split over
  ``torch.distributed`` ranks, :mod:`kec.cluster.distributed`) go through
  :meth:`Backend.reduce_sum` / :attr:`Backend.rows`: the identity in one process.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from kec.cluster._checks import ClusteringInputError
from kec.cluster.distributed import RowGroup, current_rows

DEVICES = ("auto", "cpu", "cuda")
_DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64")


def _torch_module() -> Any | None:
    """The torch module if it has been imported, else ``None`` (never imports it)."""
    return sys.modules.get("torch")


def is_torch(x: object) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch)."""
    torch = _torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a dependency of kec
        raise ClusteringInputError(
            "this device needs PyTorch; install torch or use device='cpu'"
        ) from exc
    return torch


def dtype_name(dtype: object) -> str:
    """Canonical name (``"float32"``...) of a dtype given by name, numpy or torch dtype."""
    if isinstance(dtype, str):
        name = dtype.lower().replace("torch.", "")
        name = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32",
                "float": "float32", "fp64": "float64", "double": "float64"}.get(name, name)
    elif is_torch_dtype(dtype):
        name = str(dtype).replace("torch.", "")
    else:
        try:
            name = np.dtype(dtype).name  # type: ignore[call-overload]
        except TypeError as exc:
            raise ClusteringInputError(f"unknown dtype {dtype!r}") from exc
    if name not in _DTYPE_NAMES:
        raise ClusteringInputError(f"dtype must be one of {_DTYPE_NAMES}, got {dtype!r}")
    return name


def is_torch_dtype(dtype: object) -> bool:
    """Whether ``dtype`` is a ``torch.dtype``."""
    torch = _torch_module()
    return torch is not None and isinstance(dtype, torch.dtype)


class Backend:
    """Array operations kec needs; subclassed by :class:`NumpyBackend`, :class:`TorchBackend`.

    Every method takes and returns arrays of this backend. ``axis=None`` reduces over all
    entries.
    """

    name = "base"

    # ---------------------------------------------------------------- conversion
    def is_array(self, x: object) -> bool:
        """Whether ``x`` is an array of this backend."""
        raise NotImplementedError

    def dtype(self, dtype: object) -> Any:
        """This backend's dtype object for a name / numpy / torch dtype."""
        raise NotImplementedError

    def asarray(
        self, x: Any, *, dtype: object = None, device: str | None = None, like: Any = None
    ) -> Any:
        """``x`` (numpy, torch, list, scalar) as an array of this backend.

        ``like``: take ``dtype`` and ``device`` from this array where not given.
        """
        raise NotImplementedError

    def from_numpy(self, x: np.ndarray, *, device: str | None = None,
                   dtype: object = None) -> Any:
        """A numpy array as an array of this backend (shares memory where possible)."""
        return self.asarray(x, dtype=dtype, device=device)

    def to_numpy(self, x: Any) -> np.ndarray:
        """An array of this backend as numpy (a copy off the CPU)."""
        raise NotImplementedError

    def astype(self, x: Any, dtype: object) -> Any:
        """``x`` cast to ``dtype`` (no copy when it already has it)."""
        raise NotImplementedError

    def device(self, x: Any) -> str:
        """Device of ``x`` as a string (``"cpu"`` for numpy)."""
        raise NotImplementedError

    def dtype_of(self, x: Any) -> str:
        """Canonical dtype name of ``x``."""
        return dtype_name(x.dtype)

    # ---------------------------------------------------------------- row sharding
    @property
    def rows(self) -> RowGroup:
        """The processes holding the other rows of the problem
        (:func:`kec.cluster.distributed.current_rows`; the identity in one process)."""
        return current_rows()

    def reduce_sum(self, x: Any) -> Any:
        """``x`` summed over the processes that hold the other rows (:mod:`kec.cluster.
        distributed`); ``x`` itself in one process. Used for every sum over item rows."""
        return current_rows().sum(x)

    # ---------------------------------------------------------------- creation
    def zeros(self, shape: int | tuple[int, ...], *, dtype: object = None,
              device: str | None = None, like: Any = None) -> Any:
        """Array of zeros; ``dtype`` defaults to ``like``'s, else float64."""
        raise NotImplementedError

    def full(self, shape: int | tuple[int, ...], value: float, *, dtype: object = None,
             device: str | None = None, like: Any = None) -> Any:
        """Array filled with ``value``."""
        raise NotImplementedError

    def empty(self, shape: int | tuple[int, ...], *, dtype: object = None,
              device: str | None = None, like: Any = None) -> Any:
        """Uninitialised array."""
        raise NotImplementedError

    # ---------------------------------------------------------------- math
    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        """Matrix product ``a @ b`` (into ``out`` when given)."""
        raise NotImplementedError

    def matmul_fp32(self, a: Any, b: Any, out: Any = None) -> Any:
        """``a @ b`` as float32 for float16/bfloat16 inputs: products summed in float32.

        On CUDA one ``torch.mm(..., out_dtype=float32)``; elsewhere the inputs are upcast
        first, which gives the same numbers (every product of two 16-bit floats is exact
        in float32). Other dtypes: a plain :meth:`matmul`.
        """
        return self.matmul(a, b, out=out)

    def exp(self, x: Any, out: Any = None) -> Any:
        """Element-wise :math:`e^x` (into ``out`` when given; ``out=x`` is in place)."""
        raise NotImplementedError

    def log(self, x: Any, out: Any = None) -> Any:
        """Element-wise natural logarithm (into ``out`` when given)."""
        raise NotImplementedError

    def sqrt(self, x: Any) -> Any:
        """Element-wise square root."""
        raise NotImplementedError

    def abs(self, x: Any) -> Any:
        """Element-wise absolute value."""
        raise NotImplementedError

    def logsumexp(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        r""":math:`\log\sum\exp x`, stabilised by the maximum."""
        raise NotImplementedError

    def max(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        """Maximum (values only)."""
        raise NotImplementedError

    def min(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        """Minimum (values only)."""
        raise NotImplementedError

    def sum(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        """Sum."""
        raise NotImplementedError

    def mean(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        """Mean."""
        raise NotImplementedError

    def norm(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        """Euclidean (L2) norm."""
        raise NotImplementedError

    def maximum(self, a: Any, b: Any) -> Any:
        """Element-wise maximum (``b`` may be a scalar)."""
        raise NotImplementedError

    def minimum(self, a: Any, b: Any) -> Any:
        """Element-wise minimum (``b`` may be a scalar)."""
        raise NotImplementedError

    def clip(self, x: Any, low: float | None = None, high: float | None = None,
             out: Any = None) -> Any:
        """``x`` limited to ``[low, high]`` (into ``out`` when given)."""
        raise NotImplementedError

    def flatnonzero(self, x: Any) -> Any:
        """Indices of the non-zero (true) entries of the flattened ``x``."""
        raise NotImplementedError

    def putmask(self, x: Any, mask: Any, value: float) -> None:
        """Set ``x[mask] = value`` in place."""
        raise NotImplementedError

    def any(self, x: Any) -> bool:
        """Whether any entry is true (a Python bool: synchronises a device)."""
        return bool(x.any())

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        """``a`` where ``cond`` else ``b``."""
        raise NotImplementedError

    def argmax(self, x: Any, axis: int | None = None) -> Any:
        """Index of the maximum."""
        raise NotImplementedError

    def argmin(self, x: Any, axis: int | None = None) -> Any:
        """Index of the minimum (the first, on ties)."""
        raise NotImplementedError

    def topk(self, x: Any, k: int, axis: int = -1) -> tuple[Any, Any]:
        """The ``k`` largest values along ``axis``, sorted descending, and their indices."""
        raise NotImplementedError

    def concatenate(self, arrays: list[Any], axis: int = 0) -> Any:
        """Join arrays along ``axis``."""
        raise NotImplementedError

    def isfinite(self, x: Any) -> Any:
        """Element-wise finiteness."""
        raise NotImplementedError

    def synchronize(self, x: Any = None) -> None:
        """Wait for queued device work (for timing); a no-op on the CPU."""


class NumpyBackend(Backend):
    """numpy arrays on the CPU."""

    name = "numpy"

    def is_array(self, x: object) -> bool:
        return isinstance(x, np.ndarray)

    def dtype(self, dtype: object) -> Any:
        name = dtype_name(dtype)
        if name == "bfloat16":
            raise ClusteringInputError("bfloat16 needs torch tensors; numpy has no bfloat16")
        return np.dtype(name)

    def asarray(self, x: Any, *, dtype: object = None, device: str | None = None,
                like: Any = None) -> Any:
        if device is not None and resolve_device(device) != "cpu":
            raise ClusteringInputError(f"numpy arrays live on the CPU, not {device!r}")
        if is_torch(x):
            x = x.detach().cpu()
            if dtype is None and like is None and dtype_name(x.dtype) == "bfloat16":
                dtype = "float32"
            x = x.float().numpy() if dtype_name(x.dtype) == "bfloat16" else x.numpy()
        if dtype is None and like is not None:
            dtype = like.dtype
        return np.asarray(x, dtype=None if dtype is None else self.dtype(dtype))

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def astype(self, x: Any, dtype: object) -> Any:
        return np.asarray(x).astype(self.dtype(dtype), copy=False)

    def device(self, x: Any) -> str:
        return "cpu"

    def _new(self, fn: Any, shape: Any, dtype: object, device: str | None, like: Any,
             *args: Any) -> Any:
        if like is not None and dtype is None:
            dtype = like.dtype
        self.asarray(0.0, device=device)  # validates the device
        return fn(shape, *args, dtype=self.dtype("float64" if dtype is None else dtype))

    def zeros(self, shape: int | tuple[int, ...], *, dtype: object = None,
              device: str | None = None, like: Any = None) -> Any:
        return self._new(np.zeros, shape, dtype, device, like)

    def full(self, shape: int | tuple[int, ...], value: float, *, dtype: object = None,
             device: str | None = None, like: Any = None) -> Any:
        return self._new(np.full, shape, dtype, device, like, value)

    def empty(self, shape: int | tuple[int, ...], *, dtype: object = None,
              device: str | None = None, like: Any = None) -> Any:
        return self._new(np.empty, shape, dtype, device, like)

    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        return np.matmul(a, b, out=out)

    def exp(self, x: Any, out: Any = None) -> Any:
        return np.exp(x, out=out)

    def log(self, x: Any, out: Any = None) -> Any:
        return np.log(x, out=out)

    def sqrt(self, x: Any) -> Any:
        return np.sqrt(x)

    def abs(self, x: Any) -> Any:
        return np.abs(x)

    def logsumexp(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        mx = np.max(x, axis=axis, keepdims=True)
        mx = np.where(np.isfinite(mx), mx, 0.0)
        with np.errstate(divide="ignore"):
            out = np.log(np.sum(np.exp(x - mx), axis=axis, keepdims=True)) + mx
        return out if keepdims else np.squeeze(out, axis=axis)

    def max(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return np.max(x, axis=axis, keepdims=keepdims)

    def min(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return np.min(x, axis=axis, keepdims=keepdims)

    def sum(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return np.sum(x, axis=axis, keepdims=keepdims)

    def mean(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return np.mean(x, axis=axis, keepdims=keepdims)

    def norm(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return np.linalg.norm(x, axis=axis, keepdims=keepdims)

    def maximum(self, a: Any, b: Any) -> Any:
        return np.maximum(a, b)

    def minimum(self, a: Any, b: Any) -> Any:
        return np.minimum(a, b)

    def clip(self, x: Any, low: float | None = None, high: float | None = None,
             out: Any = None) -> Any:
        return np.clip(x, low, high, out=out)

    def flatnonzero(self, x: Any) -> Any:
        return np.flatnonzero(x)

    def putmask(self, x: Any, mask: Any, value: float) -> None:
        np.putmask(x, mask, value)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        return np.where(cond, a, b)

    def argmax(self, x: Any, axis: int | None = None) -> Any:
        return np.argmax(x, axis=axis)

    def argmin(self, x: Any, axis: int | None = None) -> Any:
        return np.argmin(x, axis=axis)

    def topk(self, x: Any, k: int, axis: int = -1) -> tuple[Any, Any]:
        n = x.shape[axis]
        k = int(min(k, n))
        part = np.argpartition(-x, k - 1, axis=axis) if k < n else np.indices(x.shape)[axis]
        idx = np.take(part, np.arange(k), axis=axis)
        vals = np.take_along_axis(x, idx, axis=axis)
        order = np.argsort(-vals, axis=axis, kind="stable")
        return np.take_along_axis(vals, order, axis=axis), np.take_along_axis(idx, order, axis)

    def concatenate(self, arrays: list[Any], axis: int = 0) -> Any:
        return np.concatenate(arrays, axis=axis)

    def isfinite(self, x: Any) -> Any:
        return np.isfinite(x)


class TorchBackend(Backend):
    """torch tensors on any device (imports torch when instantiated)."""

    name = "torch"

    def __init__(self) -> None:
        self.torch = _import_torch()

    def is_array(self, x: object) -> bool:
        return isinstance(x, self.torch.Tensor)

    def dtype(self, dtype: object) -> Any:
        return getattr(self.torch, dtype_name(dtype))

    def asarray(self, x: Any, *, dtype: object = None, device: str | None = None,
                like: Any = None) -> Any:
        torch = self.torch
        if like is not None:
            dtype = like.dtype if dtype is None else dtype
            device = str(like.device) if device is None else device
        tdtype = None if dtype is None else self.dtype(dtype)
        dev = None if device is None else resolve_device(device)
        if isinstance(x, torch.Tensor):
            return x.to(device=dev if dev is not None else x.device,
                        dtype=tdtype if tdtype is not None else x.dtype)
        if isinstance(x, np.ndarray) and tdtype is not None and x.dtype.kind == "f" \
                and dtype_name(dtype) != "bfloat16":
            x = x.astype(np.dtype(dtype_name(dtype)), copy=False)
        t = torch.as_tensor(x)
        return t.to(device=dev if dev is not None else t.device,
                    dtype=tdtype if tdtype is not None else t.dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        x = x.detach()
        if x.dtype == self.torch.bfloat16:
            x = x.float()
        return x.cpu().numpy()

    def astype(self, x: Any, dtype: object) -> Any:
        return x.to(self.dtype(dtype))

    def device(self, x: Any) -> str:
        return str(x.device)

    def _kw(self, dtype: object, device: str | None, like: Any) -> dict[str, Any]:
        if like is not None:
            device = str(like.device) if device is None else device
            dtype = like.dtype if dtype is None else dtype
        return {"dtype": self.dtype("float64" if dtype is None else dtype),
                "device": resolve_device(device or "cpu")}

    def zeros(self, shape: int | tuple[int, ...], *, dtype: object = None,
              device: str | None = None, like: Any = None) -> Any:
        return self.torch.zeros(shape, **self._kw(dtype, device, like))

    def full(self, shape: int | tuple[int, ...], value: float, *, dtype: object = None,
             device: str | None = None, like: Any = None) -> Any:
        shape = (shape,) if isinstance(shape, int) else shape
        return self.torch.full(shape, value, **self._kw(dtype, device, like))

    def empty(self, shape: int | tuple[int, ...], *, dtype: object = None,
              device: str | None = None, like: Any = None) -> Any:
        return self.torch.empty(shape, **self._kw(dtype, device, like))

    def matmul(self, a: Any, b: Any, out: Any = None) -> Any:
        if out is None:
            return self.torch.matmul(a, b)
        return self.torch.matmul(a, b, out=out)

    def matmul_fp32(self, a: Any, b: Any, out: Any = None) -> Any:
        torch = self.torch
        if a.dtype not in (torch.bfloat16, torch.float16):
            return self.matmul(a, b, out=out)
        if a.is_cuda and a.ndim == 2 and b.ndim == 2:
            try:
                if out is None:
                    return torch.mm(a, b, out_dtype=torch.float32)
                return torch.mm(a, b, out_dtype=torch.float32, out=out)
            except (RuntimeError, TypeError):  # older torch: no out_dtype
                pass
        return self.matmul(a.float(), b.float(), out=out)

    def exp(self, x: Any, out: Any = None) -> Any:
        if out is None:
            return self.torch.exp(x)
        return self.torch.exp(x, out=out)

    def log(self, x: Any, out: Any = None) -> Any:
        if out is None:
            return self.torch.log(x)
        return self.torch.log(x, out=out)

    def sqrt(self, x: Any) -> Any:
        return self.torch.sqrt(x)

    def abs(self, x: Any) -> Any:
        return self.torch.abs(x)

    def logsumexp(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        if axis is None:
            out = self.torch.logsumexp(x.reshape(-1), dim=0)
            return out.reshape((1,) * x.ndim) if keepdims else out
        return self.torch.logsumexp(x, dim=axis, keepdim=keepdims)

    def _reduce(self, fn: Any, x: Any, axis: int | None, keepdims: bool) -> Any:
        if axis is None:
            out = fn(x)
            return out.reshape((1,) * x.ndim) if keepdims else out
        return fn(x, dim=axis, keepdim=keepdims)

    def max(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return self._reduce(self.torch.amax, x, axis, keepdims)

    def min(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return self._reduce(self.torch.amin, x, axis, keepdims)

    def sum(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return self._reduce(self.torch.sum, x, axis, keepdims)

    def mean(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return self._reduce(self.torch.mean, x, axis, keepdims)

    def norm(self, x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        return self.torch.linalg.vector_norm(x, dim=axis, keepdim=keepdims)

    def _scalar(self, b: Any, like: Any) -> Any:
        return b if isinstance(b, self.torch.Tensor) else self.torch.as_tensor(
            b, dtype=like.dtype, device=like.device)

    def maximum(self, a: Any, b: Any) -> Any:
        return self.torch.maximum(a, self._scalar(b, a))

    def minimum(self, a: Any, b: Any) -> Any:
        return self.torch.minimum(a, self._scalar(b, a))

    def clip(self, x: Any, low: float | None = None, high: float | None = None,
             out: Any = None) -> Any:
        if out is None:
            return self.torch.clamp(x, low, high)
        return self.torch.clamp(x, low, high, out=out)

    def flatnonzero(self, x: Any) -> Any:
        return self.torch.nonzero(x.reshape(-1)).flatten()

    def putmask(self, x: Any, mask: Any, value: float) -> None:
        x.masked_fill_(mask, value)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        like = a if isinstance(a, self.torch.Tensor) else b
        return self.torch.where(cond, self._scalar(a, like), self._scalar(b, like))

    def argmax(self, x: Any, axis: int | None = None) -> Any:
        return self.torch.argmax(x, dim=axis)

    def argmin(self, x: Any, axis: int | None = None) -> Any:
        return self.torch.argmin(x, dim=axis)

    def topk(self, x: Any, k: int, axis: int = -1) -> tuple[Any, Any]:
        k = int(min(k, x.shape[axis]))
        vals, idx = self.torch.topk(x, k, dim=axis, largest=True, sorted=True)
        return vals, idx

    def concatenate(self, arrays: list[Any], axis: int = 0) -> Any:
        return self.torch.cat(list(arrays), dim=axis)

    def isfinite(self, x: Any) -> Any:
        return self.torch.isfinite(x)

    def synchronize(self, x: Any = None) -> None:
        if x is not None and getattr(x, "is_cuda", False):
            self.torch.cuda.synchronize(x.device)
        elif x is None and self.torch.cuda.is_available() and self.torch.cuda.is_initialized():
            self.torch.cuda.synchronize()


_NUMPY = NumpyBackend()
_TORCH: TorchBackend | None = None


def get_backend(*arrays: Any) -> Backend:
    """The backend for these arrays: torch if any is a torch tensor, else numpy.

    ``None`` entries are ignored. Mixed inputs select torch (see the module notes).
    """
    global _TORCH
    if any(is_torch(a) for a in arrays if a is not None):
        if _TORCH is None:
            _TORCH = TorchBackend()
        return _TORCH
    return _NUMPY


def torch_backend() -> TorchBackend:
    """The torch backend (imports torch)."""
    global _TORCH
    if _TORCH is None:
        _TORCH = TorchBackend()
    return _TORCH


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"`` → ``"cuda"`` when torch sees a GPU, else ``"cpu"``; others are checked.

    ``"cuda"`` without a usable GPU raises :class:`ClusteringInputError`. Only ``"auto"``
    and ``"cuda"`` import torch.

    Returns
    -------
    str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    """
    dev = "auto" if device is None else str(device).strip().lower()
    if dev == "cpu":
        return "cpu"
    if dev == "auto":
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency of kec
            return "cpu"
        return "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cuda" or dev.startswith("cuda:"):
        torch = _import_torch()
        if not torch.cuda.is_available():
            raise ClusteringInputError(
                f"device {device!r} asked for, but torch sees no CUDA GPU "
                "(use --device cpu or auto)"
            )
        return dev
    raise ClusteringInputError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")


def method_device(choice: str | None = "auto") -> str | None:
    """The ``device`` to give kec's methods for a user's ``auto | cpu | cuda`` choice.

    ``None`` (the numpy path, the fastest on a CPU) for ``cpu`` and for ``auto`` without a
    visible GPU; ``"cuda"`` for ``cuda`` and for ``auto`` with one. torch is imported only
    to look for a GPU, and not at all when it is not installed.
    """
    if choice in (None, "cpu"):
        return None
    if choice == "cuda" or str(choice).startswith("cuda:"):
        return str(choice)
    if choice != "auto":
        raise ValueError(f"device must be auto, cpu or cuda, got {choice!r}")
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return "cuda" if torch.cuda.is_available() else None


def as_backend_array(x: Any, device: str | None = None, dtype: object = None) -> Any:
    """``x`` on ``device`` in ``dtype``: numpy on ``"cpu"``, a torch tensor on CUDA.

    ``device=None`` keeps ``x``'s backend and device; a torch tensor asked for on
    ``"cpu"`` stays a (CPU) torch tensor, so torch-CPU tests exercise the torch path.
    ``dtype=None`` keeps the dtype.
    """
    if device is None:
        return get_backend(x).asarray(x, dtype=dtype)
    dev = resolve_device(device)
    if dev == "cpu" and not is_torch(x):
        return _NUMPY.asarray(x, dtype=dtype)
    return torch_backend().asarray(x, dtype=dtype, device=dev)


def to_host(x: Any) -> np.ndarray:
    """``x`` as a numpy array: numpy passes through, a torch tensor is copied off its
    device (bfloat16 as float32)."""
    return np.asarray(get_backend(x).to_numpy(x) if is_torch(x) else x)


__all__ = [
    "DEVICES",
    "Backend",
    "NumpyBackend",
    "TorchBackend",
    "as_backend_array",
    "dtype_name",
    "get_backend",
    "is_torch",
    "resolve_device",
    "to_host",
    "torch_backend",
]
