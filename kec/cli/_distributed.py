"""``kec cluster --distributed``: one clustering over the processes ``torchrun`` starts.

Every process (rank) reads its block of item rows (:func:`kec.cluster.distributed.
block_of`: only the shards holding them for a sharded feature set), runs the method
inside :func:`kec.cluster.distributed.sharded`, and the labels are gathered; rank 0
writes the result folder, the other ranks write nothing. gloo on the CPU, NCCL with a
CUDA device (each rank on GPU ``LOCAL_RANK``).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

from kec.errors import KecError

#: methods whose every row sum goes through kec.cluster.distributed
METHODS = ("kmeans", "cae", "kec", "kec+cae")
#: OT solvers that run with rows split over processes
OT_METHODS = ("auto", "chunked", "semi_relaxed")


def check(args: argparse.Namespace) -> None:
    """The checks of ``--distributed`` that need no file and no process group.

    Raises
    ------
    KecError
        Not started by ``torchrun``, or an option that runs in one process only.
    """
    from kec.cluster.distributed import torchrun_env_missing

    missing = torchrun_env_missing()
    if missing:
        raise KecError(f"--distributed runs under torchrun ({', '.join(missing)} not set): "
                       "torchrun --nproc-per-node N $(which kec) cluster ... --distributed")
    if args.method not in METHODS:
        raise KecError(f"--distributed supports --method {', '.join(METHODS)}, not "
                       f"{args.method}")
    if args.clusterer != "kmeans":
        raise KecError(f"--distributed needs --clusterer kmeans (got {args.clusterer}: "
                       "scikit-learn's clusterers run in one process)")
    if getattr(args, "ot_method", None) not in (None, *OT_METHODS):
        raise KecError(f"--distributed needs --ot-method {', '.join(OT_METHODS)} (got "
                       f"{args.ot_method}, which runs in one process)")


@contextlib.contextmanager
def group(args: argparse.Namespace, device: str | None) -> Iterator[Any]:
    """The process group for this run (``None`` without ``--distributed``), left at the
    end."""
    if not getattr(args, "distributed", False):
        yield None
        return
    from kec.cluster.distributed import init_from_env, sharded, shutdown

    try:
        rows = init_from_env(device)
    except RuntimeError as exc:
        raise KecError(f"--distributed: {exc}") from None
    try:
        with sharded(rows):
            yield rows
    finally:
        shutdown()

