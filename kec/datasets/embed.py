"""Encode a dataset's images into a kec feature file (files or in-memory images alike)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from kec.datasets.base import DatasetError, ImageDataset
from kec.features import save_features

logger = logging.getLogger(__name__)


def embed_dataset(ds: ImageDataset, encoder: Any, *, progress: bool = False,
                  checkpoint: Any = None) -> tuple[np.ndarray, list[int], list[dict[str, str]]]:
    """Encode every image of ``ds`` with an image encoder (``ClipImageEncoder``).

    ``checkpoint`` (a :class:`kec.encoders.checkpoint.EmbeddingCheckpoint`) makes file
    datasets resumable: rows are saved as batches complete and reused by id and content
    hash. In-memory datasets ignore it.

    Returns
    -------
    features : numpy.ndarray
        ``(n_ok, d)`` float32 unit rows.
    kept : list of int
        Row of ``ds`` of each feature row.
    skipped : list of dict
        ``{"id", "error"}`` of each image that could not be read.
    """
    if ds.paths is not None:
        if checkpoint is not None:
            feats, kept, failed = encoder.encode_files(ds.paths, progress=progress, ids=ds.ids,
                                                       checkpoint=checkpoint)
        else:
            feats, kept, failed = encoder.encode_files(ds.paths, progress=progress)
        skipped = [{"id": ds.ids[i], "error": msg} for i, msg in failed]
    else:
        from tqdm.auto import tqdm

        chunks = []
        kept = []
        skipped = []
        batch = int(getattr(encoder, "batch_size", 64))
        with tqdm(total=len(ds), desc="encoding images", unit="img", disable=not progress,
                  leave=False) as bar:
            for idx, images in ds.iter_images(batch):
                chunks.append(encoder.encode(images))
                kept.extend(idx)
                bar.update(len(idx))
        feats = np.concatenate(chunks) if chunks else np.empty((0, encoder.dim), np.float32)
    if not kept:
        raise DatasetError(f"none of the {len(ds)} images of {ds.name} could be read")
    if skipped:
        logger.warning("%s: skipped %d unreadable images", ds.name, len(skipped))
    return np.asarray(feats, dtype=np.float32), kept, skipped


def save_dataset_features(path: str | os.PathLike[str], ds: ImageDataset, encoder: Any, *,
                          progress: bool = False, extra: dict[str, Any] | None = None,
                          checkpoint: Any = None) -> Path:
    """Encode ``ds`` and write a feature file whose ``extra.dataset`` lets any kec tool
    (e.g. ``kec report``) load the images again with :func:`kec.datasets.load_dataset`.

    ``extra`` adds further provenance to the file's ``extra`` metadata; ``checkpoint``
    is passed to :func:`embed_dataset`."""
    feats, kept, skipped = embed_dataset(ds, encoder, progress=progress, checkpoint=checkpoint)
    labels = ds.labels
    return save_features(
        path, feats, ids=[ds.ids[i] for i in kept], kind="image", encoder=encoder.describe(),
        labels=[labels[i] for i in kept],
        extra={"dataset": ds.describe(), "class_names": ds.class_names, "skipped": skipped,
               "source": {"origin": "dataset", "location": ds.root, "count": len(ds),
                          "labelled": True}, **(extra or {})},
    )
