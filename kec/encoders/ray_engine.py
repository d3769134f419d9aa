"""``kec embed ... --engine ray``: Ray Data over an actor pool of encoders, sharded output.

The unit of work is one forward batch: ``batch_size`` consecutive items, cut where the
single-process path cuts them (:func:`kec.encoders.images.batch_ranges`, a new batch at
each WebDataset shard; :func:`kec.encoders.collection.encode_collection` for texts). A
unit travels as one row, so Ray's block sizes never change which items share a matrix
product, and the features are bit for bit those of ``--engine local`` (a product's
rounding depends on its row count). The pipeline, for images::

    rows        one per batch of files (folder,   |  one per WebDataset tar shard
                list file)                        |
      |  map_batches(_decode_file_units)  tasks   |  map_batches(_decode_tar_units) tasks:
      |    read, decode, preprocess: one row per  |    read the shard start to end, one
      |    unit, (batch_size, 3, H, W) float32    |    decoded row per batch of samples
      v                                           v
    map_batches(_ImageEncoderActor)  actor pool: one encoder per GPU (``num_gpus=1``),
      |                              or ``workers`` encoders on CPU, each with its share
      |                              of the cores as torch threads; one unit per call
      v
    driver: iter_batches (input order kept) -> ShardWriter -> OUT/index.json + shards

and for a text collection, rows are blocks of ``batch_size`` texts and
``map_batches(_TextEncoderActor)`` encodes one block per call.

Ray and ``ray[data]`` are an optional extra (``pip install 'kec[ray]'``); nothing here
imports them before a function is called. Every worker must be able to import kec and
read the input paths (a shared file system on a multi-node cluster); only the driver
writes the output folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kec.errors import KecError, MissingDependencyError

logger = logging.getLogger(__name__)


class RayEngineError(KecError):
    """The Ray run could not start or a worker failed."""


@dataclass
class RayEmbedding:
    """What a Ray embedding run wrote.

    Attributes
    ----------
    folder : pathlib.Path
        The sharded feature set.
    n, dim, shards : int
        Rows written, their dimension, shard files.
    labelled : bool
        Every row has a label.
    skipped : list of dict
        ``{"id", "error"}`` of each item that could not be read or decoded.
    encoder : dict
        The encoder's ``describe()``.
    workers : int
        Encoder actors used.
    """

    folder: Path
    n: int
    dim: int
    shards: int
    labelled: bool
    skipped: list[dict[str, str]] = field(default_factory=list)
    encoder: dict[str, Any] = field(default_factory=dict)
    workers: int = 0


@dataclass(frozen=True)
class RayPlan:
    """Where the encoders run: how many actors, on which device, with what resources."""

    workers: int
    device: str
    num_gpus: float
    num_cpus: float
    threads: int


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # ray without the [data] extra lacks it
    except ImportError as exc:
        raise MissingDependencyError("ray[data]", "ray", "--engine ray") from exc
    return ray


def init_ray(address: str | None = None, *, quiet: bool = False) -> Any:
    """Connect to Ray: ``address`` (``"auto"``, ``"ray://host:10001"``, ...) or a local
    instance on this machine. A session already initialised (a notebook, the tests) is
    reused as it is."""
    ray = _import_ray()
    level = logging.ERROR if quiet else logging.WARNING
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, logging_level=level,
                     log_to_driver=not quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayEngineError(f"cannot start or reach Ray"
                                 f"{f' at {address}' if address else ''}: {exc}") from None
    if quiet:
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(level)
        ray.data.DataContext.get_current().enable_progress_bars = False
    return ray


def _probe(fn: Any, spec: Mapping[str, Any], plan: RayPlan) -> Any:
    """Run ``fn(spec)`` where the encoders run: in this process on CPU, else in a Ray task
    holding a GPU (the description records the device's precision)."""
    ray = _import_ray()
    with _worker_errors("loading the encoder"):
        if plan.num_gpus == 0:
            return fn(spec)
        return ray.get(ray.remote(num_gpus=plan.num_gpus)(fn).remote(spec))


def _bound(cls: type, **attrs: Any) -> type:
    """A subclass of the actor class ``cls`` carrying ``attrs`` (its configuration), so
    Ray pickles it with the class instead of as constructor arguments."""
    return type(cls.__name__, (cls,), attrs)


def plan_workers(ray: Any, workers: int | None, device: str | None) -> RayPlan:
    """One encoder actor per GPU of the cluster (or ``workers``), else ``workers`` on CPU.

    On CPU the cluster's cores are shared out: each actor gets ``cores // workers`` torch
    threads, and asks Ray for no CPU slot, so the decoding tasks keep the slots.
    """
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", 1)))
    on_gpu = device.startswith("cuda") if device else gpus > 0
    if on_gpu:
        if gpus < 1:
            raise RayEngineError(f"--device {device} asked for, but the Ray cluster has no GPU")
        n = workers or gpus
        return RayPlan(workers=n, device=device or "cuda", num_gpus=1.0, num_cpus=1.0,
                       threads=0)
    n = workers or 1
    return RayPlan(workers=n, device=device or "cpu", num_gpus=0.0, num_cpus=0.0,
                   threads=max(1, cpus // n))


def _unwrap(exc: BaseException) -> BaseException:
    """The KecError a Ray worker raised, if that is what ``exc`` wraps."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, KecError):
            return exc
        exc = getattr(exc, "cause", None) or exc.__cause__  # type: ignore[assignment]
        seen += 1
    return exc


@contextlib.contextmanager
def _worker_errors(what: str) -> Iterator[None]:
    """Turn a failure inside a Ray worker into one clear line."""
    ray = _import_ray()
    user_code = getattr(getattr(ray.data, "exceptions", None), "UserCodeException",
                        ray.exceptions.RayError)  # ray >= 2.10 wraps UDF errors in it
    except_types = (ray.exceptions.RayError, user_code)
    try:
        yield
    except except_types as exc:
        cause = _unwrap(exc)
        if isinstance(cause, KecError):
            raise cause from None
        text = " ".join(str(cause or exc).split())
        raise RayEngineError(f"{what} failed in a Ray worker: {text[:300]}") from None


def _set_threads(threads: int) -> None:
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


# -- images -----------------------------------------------------------------------------

def _probe_image_encoder(spec: Mapping[str, Any]) -> tuple[dict[str, Any], int, Any,
                                                            tuple[int, ...]]:
    """Load the encoder once where the actors will run: its description, dimension,
    preprocessing and the shape of a preprocessed image."""
    from PIL import Image

    enc = _image_encoder(spec)
    shape = tuple(enc.clip.preprocess(Image.new("RGB", (8, 8))).shape)
    return enc.describe(), enc.dim, enc.clip.preprocess, shape


def _image_encoder(spec: Mapping[str, Any]) -> Any:
    from kec.encoders.factory import create_image_encoder

    return create_image_encoder(spec["model"], spec["pretrained"], device=spec["device"],
                                precision=spec["precision"])


class _EncoderActor:
    """A Ray Data actor holding one loaded encoder, made by ``make(spec)`` after setting
    the torch threads. ``spec`` and ``threads`` are set on a subclass made by
    :func:`_bound`."""

    spec: Mapping[str, Any] = {}
    threads = 0
    make: Any = None

    def __init__(self) -> None:
        _set_threads(self.threads)
        self.encoder = type(self).make(self.spec)


class _ImageEncoderActor(_EncoderActor):
    """Encodes decoded batches; each row is one unit (one forward batch)."""

    make = staticmethod(_image_encoder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        ids: list[str] = []
        labels: list[str] = []
        errors: list[str] = []
        feats = []
        for unit_ids, unit_labels, unit_errors, pixels in zip(
                batch["ids"], batch["labels"], batch["errors"], batch["pixels"], strict=True):
            ok = np.array([e == "" for e in unit_errors], dtype=bool)
            rows = np.zeros((len(ok), self.encoder.dim), dtype=np.float32)
            if ok.any():  # exactly the images the single-process batch holds
                rows[ok] = self.encoder.encode_batch(torch.from_numpy(pixels[:len(ok)][ok]))
            feats.append(rows)
            ids.extend(map(str, unit_ids))
            labels.extend(map(str, unit_labels))
            errors.extend(map(str, unit_errors))
        return {"id": np.array(ids, dtype=object), "label": np.array(labels, dtype=object),
                "error": np.array(errors, dtype=object), "features": np.concatenate(feats)}


def _objects(value: Any) -> np.ndarray:
    """A one-row object column holding ``value`` as it is (a list stays one list)."""
    out = np.empty(1, dtype=object)
    out[0] = value
    return out


def _unit_row(ids: list[str], labels: list[str], data: list[Any], errors: list[str],
              transform: Any, shape: tuple[int, ...], size: int) -> dict[str, np.ndarray]:
    """One unit as a row: its items decoded and preprocessed into a ``(size, *shape)``
    array (zeros after the last item and for items that failed, whose ``errors`` say why).

    ``data`` holds image bytes, or paths to read.
    """
    from kec.encoders.images import decode_image, read_image_bytes

    pixels = np.zeros((size, *shape), dtype=np.float32)
    errors = list(errors)
    for i, item in enumerate(data):
        if errors[i]:
            continue
        try:
            raw = item if isinstance(item, bytes) else read_image_bytes(str(item))
            pixels[i] = decode_image(raw, transform).numpy()
        except Exception as exc:  # any read or decoder failure: worded as kec embed's loader
            errors[i] = f"{type(exc).__name__}: {exc}"
    return {"ids": _objects(list(ids)), "labels": _objects(list(labels)),
            "errors": _objects(errors), "pixels": pixels[None]}


def _decode_file_units(batch: dict[str, np.ndarray], transform: Any, shape: tuple[int, ...],
                       size: int) -> Iterator[dict[str, np.ndarray]]:
    """Rows of file paths (one unit each) -> decoded unit rows."""
    for ids, labels, paths in zip(batch["ids"], batch["labels"], batch["paths"], strict=True):
        yield _unit_row(list(map(str, ids)), list(map(str, labels)), list(paths),
                        [""] * len(ids), transform, shape, size)


def _decode_tar_units(batch: dict[str, np.ndarray], transform: Any, shape: tuple[int, ...],
                      size: int) -> Iterator[dict[str, np.ndarray]]:
    """Rows naming tar shards -> decoded unit rows: each shard read start to end, cut into
    units of ``size`` samples (a new unit at each shard, as :func:`batch_ranges` does)."""
    from kec.encoders.webdataset import read_tar_samples

    for tar, prefix in zip(batch["tar"], batch["prefix"], strict=True):
        samples = list(read_tar_samples(str(tar), str(prefix)))
        for start in range(0, len(samples), size):
            unit = samples[start:start + size]
            yield _unit_row([u[0] for u in unit], [u[1] or "" for u in unit],
                            [u[2] for u in unit], [u[3] for u in unit], transform, shape, size)


def image_dataset(source: Any, batch_size: int) -> tuple[Any, Any, int]:
    """The Ray dataset of an image source's units before decoding, the function that
    decodes them, and the number of input rows.

    ``source`` is a ``find_images`` result (one row per forward batch of files, as
    :func:`kec.encoders.images.batch_ranges` cuts them), or ``(tars, base)`` from
    :func:`kec.encoders.webdataset.tar_source` (one row per shard, cut into batches by
    the task that reads it).
    """
    from kec.encoders.images import batch_ranges

    ray = _import_ray()
    if isinstance(source, tuple):
        from kec.encoders.webdataset import shard_ids

        tars, base = source
        rows = [{"tar": str(t), "prefix": p} for t, p in zip(tars, shard_ids(tars, base),
                                                                 strict=True)]
        # a shard holds many batches: any number of actors has work
        return (ray.data.from_items(rows, override_num_blocks=len(rows)), _decode_tar_units,
                sys.maxsize)
    labels = source.labels or [""] * len(source)
    rows = [{"ids": [source.ids[i] for i in unit], "labels": [labels[i] for i in unit],
             "paths": [str(source.paths[i]) for i in unit]}
            for unit in batch_ranges(len(source), batch_size, source.breaks)]
    return ray.data.from_items(rows, override_num_blocks=len(rows)), _decode_file_units, \
        len(rows)


def embed_images_ray(
    source: Any,
    out: str | os.PathLike[str],
    *,
    model: str,
    pretrained: str | None,
    workers: int | None = None,
    device: str | None = None,
    precision: str | None = None,
    batch_size: int = 64,
    shard_rows: int | None = None,
    address: str | None = None,
    quiet: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> RayEmbedding:
    """Encode images with Ray Data and write a sharded feature set at ``out``.

    Parameters
    ----------
    source : ImageSource or (list of Path, Path or None)
        Files from :func:`kec.encoders.images.find_images`, or WebDataset shards from
        :func:`kec.encoders.webdataset.tar_source` (each shard is read by one task).
    out : path-like
        The sharded set's folder (checked before Ray starts).
    model, pretrained, device, precision : str
        As :func:`kec.encoders.factory.create_image_encoder`.
    workers : int, optional
        Encoder actors (default: one per GPU of the cluster, else 1).
    batch_size : int
        Images per forward pass.
    shard_rows : int, optional
        Rows per output shard.
    address : str, optional
        Ray cluster address; default a local instance.
    quiet : bool
        No progress output.
    extra : mapping, optional
        Provenance recorded in ``index.json``.
    """
    from kec.feature_shards import DEFAULT_SHARD_ROWS, check_shard_folder

    check_shard_folder(out)
    ray = init_ray(address, quiet=quiet)
    plan = plan_workers(ray, workers, device)
    spec = {"model": model, "pretrained": pretrained, "device": plan.device,
            "precision": precision}
    describe, dim, transform, shape = _probe(_probe_image_encoder, spec, plan)
    with _ordered(ray):  # a dataset keeps the context it was made in
        ds, decode, units = image_dataset(source, batch_size)
        workers = min(plan.workers, units)
        ds = ds.map_batches(decode, fn_kwargs={"transform": transform, "shape": shape,
                                               "size": batch_size},
                            batch_size=1, batch_format="numpy")
        ds = ds.map_batches(
            _bound(_ImageEncoderActor, spec=spec, threads=plan.threads), batch_size=1,
            batch_format="numpy", num_gpus=plan.num_gpus, num_cpus=plan.num_cpus,
            compute=ray.data.ActorPoolStrategy(size=workers))
        result = _write_shards(ds, out, kind="image", encoder=describe, dim=dim,
                               shard_rows=shard_rows or DEFAULT_SHARD_ROWS, extra=extra)
    result.workers = workers
    return result


# -- text collections -------------------------------------------------------------------

def _text_encoder(spec: Mapping[str, Any]) -> Any:
    from kec.encoders.factory import create_text_encoder

    return create_text_encoder(spec["encoder"], device=spec["device"],
                               batch_size=spec["batch_size"])


def _probe_text_encoder(spec: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    enc = _text_encoder(spec)
    return enc.describe(), enc.dim


class _TextEncoderActor(_EncoderActor):
    """Encodes text blocks; each row is one block (one forward batch)."""

    make = staticmethod(_text_encoder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids: list[str] = []
        labels: list[str] = []
        feats = []
        for block_ids, block_texts, block_labels in zip(batch["ids"], batch["texts"],
                                                        batch["labels"], strict=True):
            feats.append(self.encoder.encode([str(t) for t in block_texts]))
            ids.extend(str(i) for i in block_ids)
            labels.extend(str(lb) for lb in block_labels)
        return {"id": np.array(ids, dtype=object), "label": np.array(labels, dtype=object),
                "error": np.array([""] * len(ids), dtype=object),
                "features": np.concatenate(feats)}


def text_blocks(ids: Sequence[str], texts: Sequence[str], labels: Sequence[str] | None,
                block: int) -> list[dict[str, list[str]]]:
    """Rows of ``block`` consecutive items from the first: the single-process blocks."""
    labels = labels if labels is not None else [""] * len(texts)
    return [{"ids": list(ids[s:s + block]), "texts": list(texts[s:s + block]),
             "labels": list(labels[s:s + block])} for s in range(0, len(texts), block)]


def embed_collection_ray(
    ids: Sequence[str],
    texts: Sequence[str],
    labels: Sequence[str] | None,
    out: str | os.PathLike[str],
    *,
    encoder: str = "minilm",
    workers: int | None = None,
    device: str | None = None,
    batch_size: int = 256,
    shard_rows: int | None = None,
    address: str | None = None,
    quiet: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> RayEmbedding:
    """Encode a text collection with Ray Data and write a sharded set (kind ``items``).

    Parameters are those of :func:`embed_images_ray`, with ``encoder`` a text encoder
    spec (``minilm``, ``sentence-transformers:NAME``, ``clip:MODEL:PRETRAINED``).
    """
    from kec.feature_shards import DEFAULT_SHARD_ROWS, check_shard_folder

    check_shard_folder(out)
    ray = init_ray(address, quiet=quiet)
    plan = plan_workers(ray, workers, device)
    spec = {"encoder": encoder, "device": plan.device, "batch_size": batch_size}
    describe, dim = _probe(_probe_text_encoder, spec, plan)
    blocks = text_blocks(ids, texts, labels, batch_size)
    workers = min(plan.workers, len(blocks))
    with _ordered(ray):  # a dataset keeps the context it was made in
        ds = ray.data.from_items(blocks, override_num_blocks=len(blocks)).map_batches(
            _bound(_TextEncoderActor, spec=spec, threads=plan.threads), batch_size=1,
            batch_format="numpy", num_gpus=plan.num_gpus, num_cpus=plan.num_cpus,
            compute=ray.data.ActorPoolStrategy(size=workers))
        result = _write_shards(ds, out, kind="items", encoder=describe, dim=dim,
                               shard_rows=shard_rows or DEFAULT_SHARD_ROWS, extra=extra)
    result.workers = workers
    return result


# -- the driver: ordered batches into shards ---------------------------------------------

@contextlib.contextmanager
def _ordered(ray: Any) -> Iterator[None]:
    """Keep Ray Data's output in input order for the datasets made and run inside
    (the setting is restored afterwards)."""
    opts = ray.data.DataContext.get_current().execution_options
    before = opts.preserve_order
    opts.preserve_order = True
    try:
        with warnings.catch_warnings():
            # a small input cannot keep every actor busy: Ray says so, harmlessly
            warnings.filterwarnings("ignore", message="The minimum number of concurrent")
            yield
    finally:
        opts.preserve_order = before


def _write_shards(ds: Any, out: str | os.PathLike[str], *, kind: str,
                  encoder: dict[str, Any], dim: int, shard_rows: int,
                  extra: Mapping[str, Any] | None) -> RayEmbedding:
    from kec.feature_shards import ShardedSetError, ShardWriter

    skipped: list[dict[str, str]] = []
    with ShardWriter(out, kind=kind, encoder=encoder, shard_rows=shard_rows) as writer, \
            _worker_errors("encoding"):
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            errors = batch["error"]
            ok = errors == ""
            ids = batch["id"]
            skipped.extend({"id": str(i), "error": str(e)}
                           for i, e in zip(ids[~ok], errors[~ok], strict=True))
            if ok.any():
                labels = [str(lb) or None for lb in batch["label"][ok]]
                writer.add(batch["features"][ok], [str(i) for i in ids[ok]], labels)
        if writer.rows == 0:
            first = f"; first error: {skipped[0]['id']}: {skipped[0]['error']}" \
                if skipped else ""
            raise ShardedSetError(f"no item could be encoded{first}")
        folder = writer.close({**dict(extra or {}), "skipped": skipped})
    return RayEmbedding(folder=folder, n=writer.n, dim=dim, shards=writer.shard_count,
                        labelled=writer.labelled, skipped=skipped, encoder=encoder)
