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


def inside(root: Path, image_id: str) -> Path | None:
    """``root / image_id`` when it lies inside ``root`` once ``..`` and absolute ids are
    resolved lexically, else ``None``: ``/etc/x.png`` or ``../../x.png`` never leave it."""
    base = Path(os.path.abspath(root))
    path = Path(os.path.normpath(base / image_id))
    return path if base in path.parents else None


class ImageResolver:
    """Open an image by its result id, only from the folders the images were recorded in
    or the user names.

    Tried in order: ``images_root / id``; the dataset recorded in the feature file
    (``extra.dataset``, through :func:`kec.datasets.load_dataset`, which also serves
    in-memory datasets such as CIFAR; an id is looked up in its index); the folder
    recorded as ``extra.source.location`` (for a list file, the list's folder). A path
    must lie inside its folder (:func:`inside`): a result folder received from someone
    else cannot make the report embed ``/etc/...`` or ``~/private/...`` by naming it as an
    id. Such ids are counted in ``refused`` and never opened; ids inside a folder that
    cannot be found or read are counted in ``failures``.

    Parameters
    ----------
    images_root : path-like, optional
        A folder the ids are relative to (``kec report --images DIR``); absolute ids are
        opened when they lie inside it.
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
        self.refused = 0

    @property
    def located(self) -> bool:
        """Whether any folder or dataset is known to look images up in."""
        return bool(self.images_root or self.source_root or self.dataset_ref)

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

    def _roots(self) -> list[Path]:
        roots = [self.images_root, self.source_root]
        if self.dataset_ref and isinstance(self.dataset_ref.get("root"), str):
            roots.append(Path(self.dataset_ref["root"]))
        return [r for r in roots if r is not None]

    def open(self, image_id: str) -> Any | None:
        """An RGB ``PIL.Image``, or ``None`` when the image cannot be found or read, or
        lies outside every known folder (then counted in ``refused``)."""
        if self._roots() and all(inside(r, image_id) is None for r in self._roots()):
            self.refused += 1
            return None
        first = inside(self.images_root, image_id) if self.images_root else None
        image = _read_image(first) if first is not None else None
        ds = self._load_dataset() if image is None else None
        if ds is not None:
            try:
                return ds.load_image(ds.index_of(image_id))
            except (KeyError, OSError, ValueError) as exc:
                logger.debug("dataset lookup of %s failed: %s", image_id, exc)
        if image is None and self.source_root is not None:
            path = inside(self.source_root, image_id)
            image = _read_image(path) if path is not None else None
        if image is None:
            self.failures += 1
        return image


def _read_image(path: Path) -> Any | None:
    """The RGB image at ``path``, or ``None`` when it is not a readable image file."""
    from PIL import Image

    if not path.is_file():
        return None
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # PIL raises SyntaxError for some broken files, DecompressionBombError for huge ones
        logger.debug("cannot read %s: %s", path, exc)
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
