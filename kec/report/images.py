"""Find the images behind result ids, pick representative ones, make base64 thumbnails."""

from __future__ import annotations

import base64
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


class ImageResolver:
    """Open an image by its result id.

    Tried in order: ``images_root / id``; the dataset recorded in the feature file
    (``extra.dataset``, through :func:`kec.datasets.load_dataset`, which also serves
    in-memory datasets such as CIFAR); the folder recorded as ``extra.source.location``;
    the id as a path.

    Parameters
    ----------
    images_root : path-like, optional
        A folder the ids are relative to.
    feature_extra : dict, optional
        ``FeatureSet.metadata["extra"]`` of the image features.
    """

    def __init__(self, images_root: str | os.PathLike[str] | None = None,
                 feature_extra: dict[str, Any] | None = None):
        self.images_root = Path(images_root) if images_root else None
        extra = feature_extra or {}
        self.dataset_ref = extra.get("dataset") if isinstance(extra.get("dataset"), dict) else None
        source = extra.get("source") if isinstance(extra.get("source"), dict) else {}
        loc = source.get("location")
        self.source_root = Path(loc) if loc and source.get("origin") == "folder" else None
        if loc and source.get("origin") == "file-list":
            self.source_root = Path(loc).parent
        self._dataset: Any = None
        self._dataset_failed = False
        self.failures = 0

    def _load_dataset(self) -> Any:
        if self._dataset is None and not self._dataset_failed and self.dataset_ref:
            from kec.datasets import load_dataset
            from kec.errors import KecError

            ref = self.dataset_ref
            try:
                self._dataset = load_dataset(ref["name"], ref["root"], ref.get("split"),
                                             **(ref.get("options") or {}))
            except (KecError, KeyError, TypeError) as exc:
                logger.warning("cannot reopen dataset %s for thumbnails: %s", ref, exc)
                self._dataset_failed = True
        return self._dataset

    def open(self, image_id: str) -> Any | None:
        """An RGB ``PIL.Image``, or ``None`` when the image cannot be found or read."""
        from PIL import Image

        candidates = []
        if self.images_root is not None:
            candidates.append(self.images_root / image_id)
        ds = self._load_dataset()
        if ds is not None:
            try:
                return ds.load_image(ds.index_of(image_id))
            except (KeyError, OSError, ValueError) as exc:
                logger.debug("dataset lookup of %s failed: %s", image_id, exc)
        if self.source_root is not None:
            candidates.append(self.source_root / image_id)
        candidates.append(Path(image_id))
        for path in candidates:
            if path.is_file():
                try:
                    with Image.open(path) as im:
                        im.load()
                        return im.convert("RGB")
                except OSError as exc:
                    logger.debug("cannot read %s: %s", path, exc)
        self.failures += 1
        return None


def thumbnail_data_uri(image: Any, size: int = 96, quality: int = 80) -> str:
    """A square-cropped JPEG thumbnail as a ``data:`` URI."""
    from PIL import ImageOps

    thumb = ImageOps.fit(image.convert("RGB"), (size, size))
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def representatives(features: np.ndarray | None, members: Sequence[int], n: int
                    ) -> list[int]:
    """The ``n`` members closest (cosine) to their normalised mean: the cluster centre.

    Without features, the first ``n`` members.
    """
    members = list(members)
    if features is None or not members:
        return members[:n]
    x = np.asarray(features[members], dtype=np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    centre = x.mean(axis=0)
    centre /= max(float(np.linalg.norm(centre)), 1e-12)
    order = np.argsort(-(x @ centre), kind="stable")
    return [members[i] for i in order[:n]]
