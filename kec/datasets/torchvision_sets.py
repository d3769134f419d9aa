"""Datasets torchvision provides: CIFAR-10/20/100, STL-10, MNIST, DTD, Pets, Flowers-102.

torchvision downloads only when asked (``download=True``, the CLI's ``--download``);
otherwise it reads what is already under ``root`` and a missing dataset is one clear
:class:`~kec.datasets.base.DatasetError` that says how to get it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from kec.datasets.base import DatasetError, ImageDataset, relative_ids
from kec.datasets.registry import cifar100_fine_to_coarse

logger = logging.getLogger(__name__)

_PATH_ATTRS = ("_image_files", "_images")
_TARGET_ATTRS = ("targets", "labels", "_labels")


def _clean(name: str) -> str:
    return " ".join(str(name).replace("_", " ").split())


def _open(entry: dict[str, Any], root: Path, kwargs: dict[str, Any], download: bool) -> Any:
    import torchvision.datasets as tvd

    cls = getattr(tvd, entry["torchvision"], None)
    if cls is None:
        raise DatasetError(f"this torchvision has no {entry['torchvision']} dataset; "
                           "upgrade torchvision")
    try:
        return cls(root=str(root), download=download, **kwargs)
    except (RuntimeError, FileNotFoundError, OSError) as exc:
        hint = ("" if download else
                "; pass --download (download=True) to let torchvision fetch it")
        raise DatasetError(
            f"{entry['title']} not found under {root} ({exc}){hint}. Needs: {entry['needs']}"
        ) from exc


def _targets(ds: Any) -> np.ndarray:
    for attr in _TARGET_ATTRS:
        value = getattr(ds, attr, None)
        if value is not None:
            return np.asarray(value, dtype=np.int64).reshape(-1)
    raise DatasetError(f"cannot read the labels of {type(ds).__name__}")  # pragma: no cover


def _paths(ds: Any) -> list[Path] | None:
    for attr in _PATH_ATTRS:
        value = getattr(ds, attr, None)
        if isinstance(value, list) and value and isinstance(value[0], (str, os.PathLike)):
            return [Path(p) for p in value]
    return None


def load_torchvision(
    entry: dict[str, Any], root: str | os.PathLike[str], split: str, *, download: bool = False
) -> ImageDataset:
    """Load one split of a torchvision-backed registry entry.

    Parameters
    ----------
    entry : dict
        Registry entry (``dataset_info(name)``) with ``torchvision`` and ``splits``.
    root : path-like
        torchvision's ``root``.
    split : str
        A key of ``entry["splits"]``.
    download : bool
        Let torchvision download a missing dataset.
    """
    root = Path(root).expanduser()
    kwargs = dict(entry["splits"][split])
    ds = _open(entry, root, kwargs, download)
    targets = _targets(ds)
    paths = _paths(ds)
    if paths is not None and len(paths) != len(targets):  # pragma: no cover - defensive
        paths = None
    classes = [_clean(c) for c in getattr(ds, "classes", [])]
    name = entry["name"]
    if entry.get("label_map") == "cifar100_coarse":
        fine, coarse, fine_to_coarse = cifar100_fine_to_coarse()
        if classes and [c.replace(" ", "_") for c in classes] != fine:
            raise DatasetError(f"{entry['title']}: unexpected CIFAR-100 class list")
        targets = np.asarray(fine_to_coarse, dtype=np.int64)[targets]
        classes = coarse
    if entry.get("class_names"):
        classes = list(entry["class_names"])
    if not classes:
        classes = [str(i) for i in range(int(targets.max()) + 1)]
    if len(classes) != entry["num_classes"]:
        logger.warning("%s: %d classes, the registry says %d", name, len(classes),
                       entry["num_classes"])
    if paths is not None:
        ids = relative_ids(paths, root)
        loader = None
    else:
        ids = [f"{name}/{split}/{i}" for i in range(len(targets))]

        def loader(i: int) -> Any:
            return ds[i][0]

    logger.info("%s/%s: %d images, %d classes (torchvision %s under %s)", name, split,
                len(targets), len(classes), entry["torchvision"], root)
    return ImageDataset(
        name=name, split=split, class_names=classes, targets=targets, ids=ids, paths=paths,
        loader=loader, root=str(root),
        info={"source": f"torchvision.datasets.{entry['torchvision']}({kwargs})"},
    )
