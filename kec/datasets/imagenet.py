"""ImageNet-1K and its subsets (ImageNet-10, ImageNet-Dogs) from a local class-folder copy.

ImageNet cannot be downloaded automatically (it needs an account), so these loaders read
the usual layout: ``ROOT/train/<wnid>/*.JPEG`` and ``ROOT/val/<wnid>/*.JPEG`` (the
validation images sorted into class folders, as the common ``valprep.sh`` does).
``ROOT`` may also be the split folder itself (``ROOT/<wnid>/``).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from kec.datasets.base import DatasetError, ImageDataset, relative_ids
from kec.datasets.registry import class_list
from kec.encoders.images import IMAGE_EXTENSIONS

logger = logging.getLogger(__name__)

_WNID = re.compile(r"^n\d{8}$")


def _split_folder(root: Path, folder: str) -> Path:
    candidate = root / folder
    if candidate.is_dir():
        return candidate
    if root.is_dir() and any(_WNID.match(p.name) for p in root.iterdir() if p.is_dir()):
        return root  # ROOT is already the split folder
    raise DatasetError(
        f"no ImageNet '{folder}' folder under {root}: expected {candidate}/<wnid>/*.JPEG "
        "(class-folder layout; sort the validation images into wnid folders first)"
    )


def _images_in(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in filenames
                     if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS)
    return sorted(found)


def load_imagenet_folder(
    entry: dict[str, Any], root: str | os.PathLike[str], split: str, *,
    require_all: bool | None = None,
) -> ImageDataset:
    """ImageNet-1K or a subset, given by the registry entry's ``classes_file``.

    Parameters
    ----------
    entry : dict
        Registry entry with ``classes_file`` (``[{"wnid", "name"}, ...]``) and ``splits``.
    root : path-like
        The ImageNet folder (holding ``train``/``val``) or the split folder.
    split : str
        ``"train"`` or ``"val"``.
    require_all : bool, optional
        Fail when a class folder is missing (default: for the subsets; ImageNet-1K only
        warns, so that a partial copy can be used).
    """
    root = Path(root).expanduser()
    folder = _split_folder(root, entry["splits"][split]["folder"])
    classes = class_list(entry["classes_file"])["classes"]
    if require_all is None:
        require_all = entry["loader"] == "imagenet_subset"
    missing = [c["wnid"] for c in classes if not (folder / c["wnid"]).is_dir()]
    if missing and (require_all or len(missing) == len(classes)):
        raise DatasetError(
            f"{entry['title']}: {len(missing)} of {len(classes)} class folders missing in "
            f"{folder} (first: {', '.join(missing[:5])}). Needs: {entry['needs']}"
        )
    if missing:
        logger.warning("%s: %d of %d class folders missing in %s; using the others",
                       entry["title"], len(missing), len(classes), folder)
    paths: list[Path] = []
    targets: list[int] = []
    for index, c in enumerate(classes):
        d = folder / c["wnid"]
        if not d.is_dir():
            continue
        files = _images_in(d)
        if not files:
            logger.warning("%s: class folder %s holds no image", entry["title"], d)
        paths.extend(files)
        targets.extend([index] * len(files))
    if not paths:
        raise DatasetError(f"{entry['title']}: no images in {folder}")
    logger.info("%s/%s: %d images in %d classes from %s", entry["name"], split, len(paths),
                len(classes) - len(missing), folder)
    return ImageDataset(
        name=entry["name"], split=split, class_names=[c["name"] for c in classes],
        targets=targets, ids=relative_ids(paths, root), paths=paths, root=str(root),
        info={"source": f"{folder} ({entry['classes_file']})",
              "wnids": [c["wnid"] for c in classes]},
    )
