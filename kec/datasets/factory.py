"""``load_dataset``: one factory for every registered dataset."""

from __future__ import annotations

import logging
import os
from typing import Any

from kec.datasets.base import DatasetError, ImageDataset, concat_datasets, relative_ids
from kec.datasets.registry import dataset_info

logger = logging.getLogger(__name__)


def _load_split(entry: dict[str, Any], root: str | os.PathLike[str], split: str,
                download: bool, options: dict[str, Any]) -> ImageDataset:
    loader = entry["loader"]
    if loader == "torchvision":
        from kec.datasets.torchvision_sets import load_torchvision

        return load_torchvision(entry, root, split, download=download)
    if download:
        raise DatasetError(f"{entry['title']} cannot be downloaded by kec. "
                           f"Needs: {entry['needs']}")
    if loader in ("imagenet", "imagenet_subset"):
        from kec.datasets.imagenet import load_imagenet_folder

        return load_imagenet_folder(entry, root, split, **options)
    if loader == "ucf101":
        from kec.datasets.ucf101 import load_ucf101

        return load_ucf101(entry, root, split, **options)
    if loader == "synthetic":
        from kec.datasets.synthetic import generate_synthetic, synthetic_class_names

        folder = generate_synthetic(root, **options)
        names = synthetic_class_names(options.get("num_classes", entry["num_classes"]))
        paths = []
        targets = []
        for index, name in enumerate(names):
            files = sorted((folder / name.replace(" ", "_")).glob("*.png"))
            paths.extend(files)
            targets.extend([index] * len(files))
        return ImageDataset(name=entry["name"], split=split, class_names=names,
                            targets=targets, ids=relative_ids(paths, folder), paths=paths,
                            root=str(root), info={"source": str(folder), "options": options})
    raise DatasetError(f"registry entry {entry['name']!r} has unknown loader {loader!r}")


def load_dataset(
    name: str,
    root: str | os.PathLike[str],
    split: str | None = None,
    *,
    download: bool = False,
    limit_per_class: int | None = None,
    seed: int = 0,
    **options: Any,
) -> ImageDataset:
    """Load a registered dataset (see :func:`kec.datasets.list_datasets`).

    Parameters
    ----------
    name : str
        Registry name or alias: ``cifar10``, ``cifar20``, ``cifar100``, ``stl10``,
        ``imagenet10``, ``imagenet-dogs``, ``imagenet``, ``dtd``, ``pets``,
        ``flowers102``, ``ucf101``, ``mnist``, ``synthetic``.
    root : path-like
        Where the data lives (torchvision's ``root``; the ImageNet or UCF101 folder; the
        parent of the generated ``synthetic`` folder).
    split : str, optional
        A split of the registry entry, or several joined with ``+``
        (``"train+test"``); default: the split the papers evaluate.
    download : bool
        Let torchvision download a missing dataset. Never done unless asked.
    limit_per_class : int, optional
        Keep at most this many images per class (drawn with ``seed``), for quick runs.
    seed : int
        Seed of the per-class draw.
    **options
        Loader options: ``frames_dir`` (UCF101); ``num_classes``, ``per_class``,
        ``size``, ``seed`` (synthetic); ``require_all`` (ImageNet).

    Returns
    -------
    ImageDataset

    Raises
    ------
    DatasetError
        Unknown dataset or split, data not found (the message says what is needed).

    Examples
    --------
    >>> ds = load_dataset("synthetic", "/tmp/data")        # doctest: +SKIP
    >>> ds.class_names[:2], len(ds)                         # doctest: +SKIP
    (['red circle', 'green square'], 24)
    """
    entry = dataset_info(name)
    split = split or entry["default_split"]
    parts = split.split("+")
    for part in parts:
        if part not in entry["splits"]:
            raise DatasetError(f"{entry['title']} has no split {part!r}; "
                               f"choose from {', '.join(entry['splits'])}")
    loaded = []
    for part in parts:
        spec = entry["splits"][part]
        if "concat" in spec:  # a named concatenation, e.g. DTD's "all"
            sub = [_load_split(entry, root, s, download, options) for s in spec["concat"]]
            loaded.append(concat_datasets(sub, part))
        else:
            loaded.append(_load_split(entry, root, part, download, options))
    ds = loaded[0] if len(loaded) == 1 else concat_datasets(loaded, split)
    ds.info.setdefault("registry", {k: entry[k] for k in ("title", "reference")})
    if limit_per_class is not None:
        ds = ds.limit_per_class(limit_per_class, seed)
    logger.info("dataset %s/%s: %d images, %d classes", ds.name, ds.split, len(ds),
                ds.num_classes)
    return ds
