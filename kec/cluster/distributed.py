r"""Row-sharded data parallelism for the clustering math, on ``torch.distributed``.

kec's OT and k-means are sums over item rows: the semi-dual objective and gradient
(:math:`\sum_i a_i \operatorname{LSE}_j(\cdot)` and :math:`T^\top\mathbf 1`), the k-means
centre sums :math:`s_k = \sum_{i:\ell_i = k} x_i` and sizes, and the guard's cluster
sums and objectives. Under ``torchrun`` each of the ``R`` processes (ranks) holds a
contiguous block of rows and the solvers run unchanged on it; every such sum goes
through :meth:`RowGroup.sum` (``torch.distributed.all_reduce``), so each rank sees the
global value and takes the same next step. With no group active, :func:`current_rows`
is :data:`LOCAL`, whose operations are the identity: one code path for one process and
for many. The backend object exposes them (:meth:`kec.cluster.backend.Backend.reduce_sum`).

What is global and what is local:

- **Global, identical on every rank**: potentials of the texts (``beta``), centres,
  objectives, stopping decisions, cluster sizes. all-reduce hands every rank the same
  bits, so L-BFGS and Lloyd follow the same path on all of them.
- **Local**: everything indexed by a row (labels, row potentials, transported
  features, fusion weights).
- **Seeding** draws global row indices from the shared generator
  (:meth:`RowGroup.take` brings those rows to every rank), so k-means++ gives the seeds
  of one process.

torch is imported only when a group is made (:class:`TorchRows`), never by importing
this module.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

#: what ``torchrun`` sets for every process
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _is_tensor(x: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _take_local(X: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` (host ints) of ``X`` (numpy or torch)."""
    if _is_tensor(X):
        return X[sys.modules["torch"].as_tensor(idx, device=X.device)]
    return X[idx]


def row_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of rank ``rank`` among ``world_size``: contiguous blocks whose
    sizes differ by at most one, in rank order."""
    return n * rank // world_size, n * (rank + 1) // world_size


class RowGroup:
    """The rows of one problem, held by one process (this class) or split over a group.

    Every method takes numpy arrays, torch tensors or Python scalars and returns the same
    kind. This base class is the single-process identity.
    """

    rank = 0
    world_size = 1

    @property
    def distributed(self) -> bool:
        """Whether other processes hold rows too."""
        return self.world_size > 1

    def sum(self, x: Any) -> Any:
        """Elementwise sum of ``x`` over the ranks (``x`` itself in one process)."""
        return x

    def max(self, x: Any) -> Any:
        """Elementwise maximum of ``x`` over the ranks."""
        return x

    def min(self, x: Any) -> Any:
        """Elementwise minimum of ``x`` over the ranks."""
        return x

    def gather(self, x: Any) -> Any:
        """Every rank's ``x`` concatenated along axis 0 in rank order (on every rank)."""
        return x

    def total(self, n: int) -> int:
        """Rows over all ranks, given this rank's ``n``."""
        return int(n)

    def offset(self, n: int) -> int:
        """Global index of this rank's first row, given this rank's ``n``."""
        return 0

    def take(self, X: Any, idx: np.ndarray) -> Any:
        """Rows ``idx`` (global indices, host ints) of the whole row set, on every rank.

        Each rank fills the rows it holds and zeros elsewhere; the sum over ranks is exact
        (one non-zero term per entry).
        """
        return _take_local(X, np.asarray(idx, dtype=np.int64))

    def lowest(self, values: Any, m: int) -> np.ndarray:
        """Global indices of the ``m`` smallest ``values`` (ties: lowest index first)."""
        v = np.asarray(values.detach().cpu().numpy() if _is_tensor(values) else values,
                       dtype=np.float64)
        m = int(min(m, v.size))
        local = np.argsort(v, kind="stable")[:m]
        cand_v = self.gather(v[local])
        cand_i = self.gather(local + self.offset(v.size))
        order = np.lexsort((cand_i, cand_v))[:m]
        return cand_i[order]


LOCAL = RowGroup()
"""All rows in this process: every operation is the identity."""


class TorchRows(RowGroup):
    """The ranks of a ``torch.distributed`` process group, each holding a block of rows.

    Parameters
    ----------
    group : torch.distributed.ProcessGroup, optional
        Default: the world group (``init_process_group`` must have run).
    """

    def __init__(self, group: Any = None) -> None:
        import torch
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised")
        self.torch, self.dist, self.group = torch, dist, group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        nccl = dist.get_backend(group) == "nccl"
        self.comm_device = (torch.device("cuda", torch.cuda.current_device()) if nccl
                            else torch.device("cpu"))
        self.bytes_reduced = 0
        self.n_reductions = 0

    def describe(self) -> dict[str, Any]:
        """What ``summary.json`` records of the process group (``info["distributed"]``)."""
        return {"world_size": self.world_size,
                "backend": self.dist.get_backend(self.group),
                "all_reduces": self.n_reductions, "bytes_all_reduced": self.bytes_reduced}

    # ---------------------------------------------------------------- conversions
    def _to_comm(self, x: Any) -> tuple[Any, Any]:
        """A fresh contiguous tensor on the communication device, and how to undo it."""
        torch = self.torch
        if _is_tensor(x):
            t = x.detach().to(self.comm_device, copy=True).contiguous()
            if t.dtype == torch.bool:
                t = t.to(torch.int64)
            dev, dtype = x.device, x.dtype
            return t, lambda r: r.to(device=dev, dtype=dtype)
        arr = np.asarray(x)
        kind = arr.dtype
        if kind == np.bool_:
            arr = arr.astype(np.int64)
        t = torch.from_numpy(np.array(arr, copy=True, order="C")).to(self.comm_device)
        if isinstance(x, np.generic):
            return t, lambda r: kind.type(r.item())
        if isinstance(x, (bool, int, float)):
            return t, lambda r: type(x)(r.item())
        return t, lambda r: r.cpu().numpy().astype(kind, copy=False)

    def _reduce(self, x: Any, op: Any) -> Any:
        t, back = self._to_comm(x)
        self.dist.all_reduce(t, op=op, group=self.group)
        self.bytes_reduced += t.numel() * t.element_size()
        self.n_reductions += 1
        return back(t)

    # ---------------------------------------------------------------- collectives
    def sum(self, x: Any) -> Any:
        return self._reduce(x, self.dist.ReduceOp.SUM)

    def max(self, x: Any) -> Any:
        return self._reduce(x, self.dist.ReduceOp.MAX)

    def min(self, x: Any) -> Any:
        return self._reduce(x, self.dist.ReduceOp.MIN)

    def _sizes(self, n: int) -> list[int]:
        t = self.torch.tensor([int(n)], dtype=self.torch.int64, device=self.comm_device)
        out = [self.torch.zeros_like(t) for _ in range(self.world_size)]
        self.dist.all_gather(out, t, group=self.group)
        return [int(o.item()) for o in out]

    def total(self, n: int) -> int:
        return int(self.sum(np.int64(n)))

    def offset(self, n: int) -> int:
        return sum(self._sizes(n)[: self.rank])

    def gather(self, x: Any) -> Any:
        t, back = self._to_comm(x)
        sizes = self._sizes(t.shape[0])
        top = max(sizes)
        pad = self.torch.zeros((top, *t.shape[1:]), dtype=t.dtype, device=t.device)
        pad[: t.shape[0]] = t
        out = [self.torch.empty_like(pad) for _ in range(self.world_size)]
        self.dist.all_gather(out, pad, group=self.group)
        return back(self.torch.cat([o[:s] for o, s in zip(out, sizes)]))

    def take(self, X: Any, idx: np.ndarray) -> Any:
        idx = np.asarray(idx, dtype=np.int64)
        n = int(X.shape[0])
        start = self.offset(n)
        mine = np.flatnonzero((idx >= start) & (idx < start + n))
        if _is_tensor(X):
            out = self.torch.zeros((idx.size, *X.shape[1:]), dtype=X.dtype, device=X.device)
            pos = self.torch.as_tensor(mine, device=X.device)
        else:
            out = np.zeros((idx.size, *X.shape[1:]), dtype=X.dtype)
            pos = mine
        if mine.size:
            out[pos] = _take_local(X, idx[mine] - start)
        return self.sum(out)


_ACTIVE: list[RowGroup] = []


def current_rows() -> RowGroup:
    """The row group the clustering math runs in: the innermost :func:`sharded` block,
    else :data:`LOCAL`."""
    return _ACTIVE[-1] if _ACTIVE else LOCAL


@contextlib.contextmanager
def sharded(group: RowGroup | None = None) -> Iterator[RowGroup]:
    """Run the clustering math inside with each rank holding its block of rows.

    ``group``: a :class:`RowGroup`; default a :class:`TorchRows` over the initialised
    world group.
    """
    rows = TorchRows() if group is None else group
    _ACTIVE.append(rows)
    try:
        yield rows
    finally:
        _ACTIVE.pop()


def block_of(features: Any, rows: RowGroup) -> np.ndarray:
    """This rank's rows (:func:`row_range`) of a feature set.

    A sharded set (:class:`kec.feature_shards.ShardedFeatureSet`) reads only the shards
    that hold them; a one-file set or an array is sliced.

    Raises
    ------
    ClusteringInputError
        Fewer rows than processes.
    """
    n = len(features)
    if n < rows.world_size:
        from kec.cluster._checks import ClusteringInputError

        raise ClusteringInputError(f"{n} rows for {rows.world_size} processes: every "
                                   "process needs at least one row")
    start, stop = row_range(n, rows.rank, rows.world_size)
    if hasattr(features, "rows") and callable(features.rows):
        return features.rows(start, stop)
    arr = getattr(features, "features", features)
    return np.asarray(arr[start:stop])


def torchrun_env_missing(environ: Any = None) -> list[str]:
    """The ``torchrun`` variables missing from ``environ`` (default ``os.environ``)."""
    env = os.environ if environ is None else environ
    return [v for v in TORCHRUN_ENV if v not in env]


def init_from_env(device: str | None = None, timeout_s: float = 1800.0) -> RowGroup:
    """Join the process group ``torchrun`` describes in the environment.

    NCCL when ``device`` is a CUDA device (each rank on GPU ``LOCAL_RANK``), gloo
    otherwise.

    Raises
    ------
    RuntimeError
        The ``torchrun`` variables are missing or torch.distributed is unavailable.
    """
    missing = torchrun_env_missing()
    if missing:
        raise RuntimeError(f"not started by torchrun ({', '.join(missing)} not set)")
    import datetime

    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed")
    backend = "gloo"
    if device is not None and str(device).startswith("cuda"):
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        backend = "nccl"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return TorchRows()


def shutdown() -> None:
    """Leave the process group (if one was joined)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


__all__ = [
    "LOCAL",
    "TORCHRUN_ENV",
    "RowGroup",
    "TorchRows",
    "block_of",
    "current_rows",
    "init_from_env",
    "row_range",
    "sharded",
    "shutdown",
    "torchrun_env_missing",
]
