"""Where images come from: a folder (class sub-folders give labels) or a list file.

A folder whose images all lie in sub-folders is labelled: an image's label is the name
of the first-level sub-folder holding it (``root/dog/a.jpg`` -> ``dog``). A flat folder
(or a mix) has no labels. A list file holds one image path per line, optionally followed
by a tab and a label; relative paths are relative to the list file's folder; blank lines
and lines starting with ``#`` are ignored.

Files are decoded lazily, when encoded; a file that cannot be decoded is skipped and
reported, never fatal.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kec.errors import KecError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm",
     ".pbm", ".jfif"}
)


class ImageSourceError(KecError):
    """An image folder or list file is missing, empty or malformed."""


@dataclass
class ImageSource:
    """An ordered list of image files with ids and optional labels.

    Attributes
    ----------
    paths : list of pathlib.Path
        Files to read.
    ids : list of str
        Stable identifiers: the path relative to the folder (POSIX separators), or the
        path as written in the list file.
    labels : list of str or None
        Ground-truth labels, when known.
    origin : str
        ``"folder"`` or ``"file-list"``.
    location : str
        The folder or list file.
    """

    paths: list[Path]
    ids: list[str]
    labels: list[str] | None
    origin: str
    location: str

    def __len__(self) -> int:
        return len(self.paths)

    def describe(self) -> dict[str, Any]:
        return {"origin": self.origin, "location": self.location, "count": len(self.paths),
                "labelled": self.labels is not None}


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath) / name)
    return found


def images_from_folder(root: str | os.PathLike[str]) -> ImageSource:
    """List the image files under ``root`` (recursively, sorted, hidden entries skipped).

    Raises
    ------
    ImageSourceError
        ``root`` is not a folder, or holds no file with an image extension.
    """
    root = Path(root)
    if not root.is_dir():
        raise ImageSourceError(f"{root} is not a folder")
    rel = sorted((p.relative_to(root).as_posix(), p) for p in _walk(root))
    if not rel:
        raise ImageSourceError(
            f"no images found in {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    ids = [r for r, _ in rel]
    paths = [p for _, p in rel]
    labels: list[str] | None = None
    if all("/" in i for i in ids):
        labels = [i.split("/", 1)[0] for i in ids]
        logger.info("%d images in %d class folders under %s", len(ids), len(set(labels)), root)
    else:
        if any("/" in i for i in ids):
            logger.warning("%s mixes images at the top level and in sub-folders: no labels",
                           root)
        logger.info("%d images under %s (no labels)", len(ids), root)
    return ImageSource(paths=paths, ids=ids, labels=labels, origin="folder",
                       location=str(root))


def images_from_file_list(list_file: str | os.PathLike[str]) -> ImageSource:
    """Read a list file: ``PATH`` or ``PATH<TAB>LABEL`` per line.

    Labels are kept only when every line has one. Files are not checked here; missing
    ones are reported as unreadable when encoded.

    Raises
    ------
    ImageSourceError
        The list file is missing, unreadable, or lists no path.
    """
    list_file = Path(list_file)
    try:
        text = list_file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageSourceError(f"cannot read image list {list_file}: {exc}") from exc
    base = list_file.parent
    ids: list[str] = []
    paths: list[Path] = []
    labels: list[str | None] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, label = line.partition("\t")
        name = name.strip()
        ids.append(name)
        p = Path(name).expanduser()
        paths.append(p if p.is_absolute() else base / p)
        labels.append(label.strip() or None)
    if not ids:
        raise ImageSourceError(f"image list {list_file} lists no image")
    final_labels = labels if all(lb is not None for lb in labels) else None
    if final_labels is None and any(lb is not None for lb in labels):
        logger.warning("%s: only some lines have a label; ignoring labels", list_file)
    logger.info("%d images listed in %s", len(ids), list_file)
    return ImageSource(paths=paths, ids=ids, labels=final_labels,  # type: ignore[arg-type]
                       origin="file-list", location=str(list_file))


def find_images(
    source: str | os.PathLike[str] | None = None, *, file_list: str | os.PathLike[str] | None = None
) -> ImageSource:
    """A folder (``source``) or a list file (``file_list``, or ``source`` when it is a file)."""
    if (source is None) == (file_list is None):
        raise ImageSourceError("give either an image folder or a list file, not both/neither")
    if file_list is not None:
        return images_from_file_list(file_list)
    assert source is not None
    if Path(source).is_file():
        return images_from_file_list(source)
    if not Path(source).exists():
        raise ImageSourceError(f"{source} does not exist")
    return images_from_folder(source)


class _ImageFiles:
    """A map-style dataset: ``i -> (i, tensor, None)`` or ``(i, None, error)``."""

    def __init__(self, paths: Sequence[str | Path], transform: Callable[[Any], Any]):
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, Any, str | None]:
        from PIL import Image

        try:
            with Image.open(self.paths[i]) as im:
                im.load()
                rgb = im.convert("RGB")
            return i, self.transform(rgb), None
        except Exception as exc:  # any decoder failure: skip the file, report it
            return i, None, f"{type(exc).__name__}: {exc}"


def _collate(items: list[tuple[int, Any, str | None]]) -> tuple[list[int], Any, list]:
    import torch

    ok = [(i, t) for i, t, err in items if err is None]
    errors = [(i, err) for i, _, err in items if err is not None]
    batch = torch.stack([t for _, t in ok]) if ok else None
    return [i for i, _ in ok], batch, errors


def iterate_image_batches(
    paths: Sequence[str | Path],
    transform: Callable[[Any], Any],
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = False,
    pin_memory: bool = False,
) -> Iterator[tuple[list[int], Any, list[tuple[int, str]]]]:
    """Decode and transform image files in batches, in order.

    Yields
    ------
    indices : list of int
        Positions in ``paths`` of the rows of ``batch``.
    batch : torch.Tensor or None
        Stacked transformed images (``None`` when every file of the batch failed).
    errors : list of (int, str)
        Position and message of each file that could not be decoded.
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    loader = DataLoader(
        _ImageFiles(paths, transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=pin_memory,
    )
    with tqdm(total=len(paths), desc="encoding images", unit="img", disable=not progress,
              leave=False) as bar:
        for indices, batch, errors in loader:
            yield indices, batch, errors
            bar.update(len(indices) + len(errors))


@dataclass
class ImageEmbeddings:
    """Features of the readable images of an :class:`ImageSource`.

    Attributes
    ----------
    features : numpy.ndarray
        ``(n, d)`` float32, unit-norm rows.
    ids, paths : list of str
        Of the encoded images, row by row.
    labels : list of str or None
        Of the encoded images, when the source has labels.
    skipped : list of dict
        ``{"id", "path", "error"}`` for each file that could not be read.
    """

    features: Any
    ids: list[str]
    paths: list[str]
    labels: list[str] | None
    skipped: list[dict[str, str]]


def embed_images(source: ImageSource, encoder: Any, *, progress: bool = False) -> ImageEmbeddings:
    """Encode every readable image of ``source`` with ``encoder`` (a ``ClipImageEncoder``).

    Raises
    ------
    ImageSourceError
        When no image at all could be read.
    """
    feats, kept, failed = encoder.encode_files(source.paths, progress=progress)
    skipped = [
        {"id": source.ids[i], "path": str(source.paths[i]), "error": msg} for i, msg in failed
    ]
    if skipped:
        logger.warning("skipped %d of %d images that could not be read", len(skipped),
                       len(source))
    if not kept:
        first = f"; first error: {skipped[0]['path']}: {skipped[0]['error']}" if skipped else ""
        raise ImageSourceError(f"none of the {len(source)} images in {source.location} "
                               f"could be read{first}")
    return ImageEmbeddings(
        features=feats,
        ids=[source.ids[i] for i in kept],
        paths=[str(source.paths[i]) for i in kept],
        labels=[source.labels[i] for i in kept] if source.labels is not None else None,
        skipped=skipped,
    )
