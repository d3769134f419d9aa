"""The dataset object every loader returns: images (files or in memory), labels, class names."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kec.errors import KecError


class DatasetError(KecError):
    """A dataset is unknown, missing on disk, or malformed."""


ImageLoader = Callable[[int], Any]


@dataclass
class ImageDataset:
    """Images with integer targets and class names.

    An image is either a file (``paths[i]``) or produced by ``loader(i)`` (datasets that
    torchvision keeps in memory, such as CIFAR); :meth:`load_image` hides the difference.

    Attributes
    ----------
    name : str
        Registry name (``"cifar10"``, ``"synthetic"``, ...).
    split : str
        The split, e.g. ``"test"``, or ``"train+test"`` for a concatenation.
    class_names : list of str
        Human-readable class names; ``class_names[targets[i]]`` is image ``i``'s label.
    targets : numpy.ndarray
        ``(n,)`` int64 class indices.
    ids : list of str
        Stable identifiers, one per image: the path relative to ``root`` for files,
        ``"<name>/<split>/<index>"`` for in-memory images.
    paths : list of pathlib.Path or None
        Image files, when the images are files.
    loader : callable or None
        ``loader(i) -> PIL.Image`` for in-memory images.
    root : str
        Where the data lives.
    info : dict
        Extra provenance (registry entry, source files, ...).
    """

    name: str
    split: str
    class_names: list[str]
    targets: np.ndarray
    ids: list[str]
    paths: list[Path] | None = None
    loader: ImageLoader | None = None
    root: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.targets = np.asarray(self.targets, dtype=np.int64).reshape(-1)
        n = len(self.targets)
        if len(self.ids) != n:
            raise DatasetError(f"{self.name}: {len(self.ids)} ids for {n} targets")
        if self.paths is None and self.loader is None:
            raise DatasetError(f"{self.name}: give image paths or an image loader")
        if self.paths is not None and len(self.paths) != n:
            raise DatasetError(f"{self.name}: {len(self.paths)} paths for {n} targets")
        if n and (self.targets.min() < 0 or self.targets.max() >= len(self.class_names)):
            raise DatasetError(f"{self.name}: targets outside 0..{len(self.class_names) - 1}")

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def labels(self) -> list[str]:
        """The class name of every image."""
        return [self.class_names[t] for t in self.targets]

    @property
    def has_files(self) -> bool:
        return self.paths is not None

    def load_image(self, i: int) -> Any:
        """Image ``i`` as an RGB ``PIL.Image``."""
        from PIL import Image

        if self.paths is not None:
            with Image.open(self.paths[i]) as im:
                im.load()
                return im.convert("RGB")
        assert self.loader is not None
        return self.loader(i).convert("RGB")

    def iter_images(self, batch_size: int = 64) -> Iterator[tuple[list[int], list[Any]]]:
        """Yield ``(indices, images)`` batches of PIL images in order."""
        for start in range(0, len(self), batch_size):
            idx = list(range(start, min(start + batch_size, len(self))))
            yield idx, [self.load_image(i) for i in idx]

    def index_of(self, image_id: str) -> int:
        """Position of an id (raises :class:`KeyError` when absent)."""
        lookup = self.__dict__.get("_id_index")
        if lookup is None:
            lookup = {v: i for i, v in enumerate(self.ids)}
            self.__dict__["_id_index"] = lookup
        return lookup[image_id]

    def subset(self, indices: Sequence[int]) -> ImageDataset:
        """A dataset of the given rows (same classes, ids kept)."""
        idx = [int(i) for i in indices]
        base_loader = self.loader
        loader = None if base_loader is None else (lambda j: base_loader(idx[j]))
        return ImageDataset(
            name=self.name, split=self.split, class_names=list(self.class_names),
            targets=self.targets[idx], ids=[self.ids[i] for i in idx],
            paths=None if self.paths is None else [self.paths[i] for i in idx],
            loader=loader, root=self.root, info=dict(self.info, subset=len(idx)),
        )

    def limit_per_class(self, n: int, seed: int = 0) -> ImageDataset:
        """At most ``n`` images per class, drawn with a fixed seed, original order kept."""
        if n <= 0:
            raise DatasetError("the per-class limit must be positive")
        rng = np.random.default_rng(seed)
        keep: list[int] = []
        for c in range(self.num_classes):
            rows = np.flatnonzero(self.targets == c)
            if len(rows) > n:
                rows = np.sort(rng.choice(rows, size=n, replace=False))
            keep.extend(rows.tolist())
        out = self.subset(sorted(keep))
        out.info["limit_per_class"] = {"n": n, "seed": seed}
        return out

    def describe(self) -> dict[str, Any]:
        """JSON-able provenance: what to pass to :func:`kec.datasets.load_dataset` again."""
        desc: dict[str, Any] = {
            "name": self.name,
            "split": self.split,
            "root": self.root,
            "count": len(self),
            "num_classes": self.num_classes,
            "files": self.has_files,
        }
        for key in ("limit_per_class", "subset", "source", "options"):
            if key in self.info:
                desc[key] = self.info[key]
        return desc


def concat_datasets(parts: Sequence[ImageDataset], split: str) -> ImageDataset:
    """Concatenate splits of one dataset (same class list)."""
    if not parts:
        raise DatasetError("nothing to concatenate")
    first = parts[0]
    for p in parts[1:]:
        if p.class_names != first.class_names:
            raise DatasetError(f"{first.name}: splits have different classes")
    files = all(p.paths is not None for p in parts)
    offsets = np.cumsum([0] + [len(p) for p in parts])

    def loader(i: int) -> Any:
        k = int(np.searchsorted(offsets, i, side="right") - 1)
        return parts[k].load_image(i - int(offsets[k]))

    return ImageDataset(
        name=first.name, split=split, class_names=list(first.class_names),
        targets=np.concatenate([p.targets for p in parts]),
        ids=[i for p in parts for i in p.ids],
        paths=[q for p in parts for q in (p.paths or [])] if files else None,
        loader=None if files else loader, root=first.root,
        info=dict(first.info, parts=[p.split for p in parts]),
    )


def relative_ids(paths: Sequence[Path], root: str | os.PathLike[str]) -> list[str]:
    """Paths relative to ``root`` with POSIX separators (absolute when outside ``root``)."""
    root = Path(root)
    out = []
    for p in paths:
        try:
            out.append(Path(p).relative_to(root).as_posix())
        except ValueError:
            out.append(Path(p).as_posix())
    return out
