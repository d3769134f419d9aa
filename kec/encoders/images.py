"""Where images come from: a folder (class sub-folders give labels), a list file, or
WebDataset tar shards (:mod:`kec.encoders.webdataset`).

A folder whose images all lie in sub-folders is labelled: an image's label is the name
of the first-level sub-folder holding it (``root/dog/a.jpg`` -> ``dog``). A flat folder
(or a mix) has no labels. A list file holds one image path per line, optionally followed
by a tab and a label; relative paths are relative to the list file's folder; blank lines
and lines starting with ``#`` are ignored.

Files are decoded lazily, when encoded, by DataLoader worker processes
(:func:`iterate_image_batches`); a file that cannot be decoded is skipped and reported,
never fatal. Anything that is not a regular file (a FIFO, socket, device, folder or
broken link named like an image) is skipped with a warning and never opened for reading,
so it cannot block the run.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kec._io import split_lines
from kec.errors import KecError

if TYPE_CHECKING:  # a type only: keeps this module light to import
    from kec.encoders.checkpoint import EmbeddingCheckpoint

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
    paths : list of pathlib.Path or TarMember
        Files to read, or members of WebDataset shards
        (:class:`kec.encoders.webdataset.TarMember`).
    ids : list of str
        Stable identifiers: the path relative to the folder (POSIX separators), the
        path as written in the list file, or ``SHARD/KEY`` for a WebDataset sample.
    labels : list of str or None
        Ground-truth labels, when known.
    origin : str
        ``"folder"``, ``"file-list"`` or ``"webdataset"``.
    breaks : list of int or None
        Item indices where a new batch must start (the first sample of each WebDataset
        shard), so that a shard read by one Ray task gives the same batches.
    location : str
        The folder or list file.
    """

    paths: list[Any]
    ids: list[str]
    labels: list[str] | None
    origin: str
    location: str
    breaks: list[int] | None = None

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
                path = Path(dirpath) / name
                kind = _file_kind(path)
                if kind == "regular file":
                    found.append(path)
                else:
                    logger.warning("skipping %s: not a regular file (%s)", path, kind)
    return found


def _file_kind(path: str | os.PathLike[str]) -> str:
    """``"regular file"``, or what ``path`` is instead (FIFO, socket, broken link, ...)."""
    try:
        mode = os.stat(path).st_mode  # follows symbolic links
    except OSError as exc:
        return f"cannot stat: {exc.strerror or exc}"
    return _mode_kind(mode)


def _mode_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "directory"),
                       (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return kind
    return "special file"  # pragma: no cover - doors, whiteouts


MAX_IMAGE_BYTES = 1 << 30  # a larger "image" is refused rather than read into memory


class NotARegularFileError(OSError):
    """An image path names a FIFO, socket, device or folder: never opened for reading."""


def read_regular_file(path: str | os.PathLike[str], max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of ``path``, refusing anything that is not a regular file without blocking.

    The file is opened non-blocking (opening a FIFO for reading would otherwise wait for a
    writer forever), then checked with ``fstat`` on the open descriptor, so a file swapped
    for a FIFO between listing and reading is refused too.

    Parameters
    ----------
    path : path-like
        The file.
    max_bytes : int
        Larger files are refused (an image is never that big; nothing is read).

    Raises
    ------
    NotARegularFileError
        ``path`` is a FIFO, socket, device or folder.
    OSError
        ``path`` cannot be opened or read, or is larger than ``max_bytes``.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotARegularFileError(f"not a regular file ({_mode_kind(st.st_mode)})")
        if st.st_size > max_bytes:
            raise OSError(f"file too large for an image ({st.st_size} bytes > {max_bytes})")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            return fh.read(max_bytes + 1)
    finally:
        if fd >= 0:
            os.close(fd)


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
    for line in split_lines(text):
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
    """A folder (``source``), a list file (``file_list``, or ``source`` when it is a file),
    or WebDataset tar shards: a ``.tar`` file, a brace pattern (``s-{000..099}.tar``) or
    a folder of ``.tar`` files (see :mod:`kec.encoders.webdataset`).

    Raises
    ------
    ImageSourceError
        Nothing there, no image, or a folder holding both images and tar shards.
    """
    from kec.encoders.webdataset import images_from_tars

    if (source is None) == (file_list is None):
        raise ImageSourceError("give either an image folder or a list file, not both/neither")
    if file_list is not None:
        return images_from_file_list(file_list)
    assert source is not None
    shards = find_tar_shards(source)
    if shards is not None:
        tars, base = shards
        return images_from_tars(tars, location=str(source), base=base)
    if Path(source).is_file():
        return images_from_file_list(source)
    if not Path(source).exists():
        raise ImageSourceError(f"{source} does not exist")
    return images_from_folder(source)


def find_tar_shards(source: str | os.PathLike[str]) -> tuple[list[Path], Path | None] | None:
    """The WebDataset shards ``source`` names, without reading them (see
    :func:`kec.encoders.webdataset.tar_source`), or ``None`` when it names none.

    Raises
    ------
    ImageSourceError
        A pattern names a missing shard, or a folder holds both images and tar shards.
    """
    from kec.encoders.webdataset import tar_source

    shards = tar_source(source)
    if shards is not None and shards[1] is not None and _walk(shards[1]):
        raise ImageSourceError(f"{source} holds both image files and .tar shards; give "
                               "a folder of images or a folder of WebDataset shards")
    return shards


def read_image_bytes(ref: Any) -> bytes:
    """The bytes of an image reference: a path (:func:`read_regular_file`) or anything with
    a ``read()`` method (a :class:`~kec.encoders.webdataset.TarMember`)."""
    if isinstance(ref, (str, os.PathLike)):
        return read_regular_file(ref)
    return ref.read()


def decode_image(data: bytes, transform: Callable[[Any], Any]) -> Any:
    """Decode image bytes (any format Pillow reads), convert to RGB, apply ``transform``."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        rgb = im.convert("RGB")
    return transform(rgb)


@dataclass
class _Item:
    """What a loader worker returns for one file."""

    index: int
    tensor: Any = None
    error: str | None = None
    sha256: str | None = None
    cached: bool = False


class _ImageFiles:
    """A map-style dataset over image files, decoded in DataLoader workers.

    Item ``i`` is the transformed image, or the error that stopped it. With ``hashes``
    each file's SHA-256 is computed; a file whose hash equals ``known[i]`` is not decoded
    (its feature row is already saved) and comes back as ``cached``.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        transform: Callable[[Any], Any],
        *,
        hashes: bool = False,
        known: Sequence[str | None] | None = None,
    ):
        self.paths = list(paths)
        self.transform = transform
        self.hashes = hashes or known is not None
        self.known = list(known) if known is not None else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> _Item:
        try:
            data = read_image_bytes(self.paths[i])
            digest = hashlib.sha256(data).hexdigest() if self.hashes else None
            if self.known is not None and digest is not None and self.known[i] == digest:
                return _Item(i, sha256=digest, cached=True)
            return _Item(i, tensor=decode_image(data, self.transform), sha256=digest)
        except Exception as exc:  # any read or decoder failure: skip the file, report it
            return _Item(i, error=f"{type(exc).__name__}: {exc}")


@dataclass
class ImageBatch:
    """One batch from :func:`iterate_image_batches`, in the order of the input paths.

    Attributes
    ----------
    indices : list of int
        Positions of the rows of ``batch``.
    batch : torch.Tensor or None
        Stacked transformed images (``None`` when no file of the batch needs encoding).
    errors : list of (int, str)
        Position and message of each file that could not be read or decoded.
    sha256 : list of str or None
        Content hash of each row of ``batch`` (``None`` entries without hashing).
    cached : list of (int, str)
        Position and content hash of each file whose saved row can be reused.
    """

    indices: list[int]
    batch: Any
    errors: list[tuple[int, str]]
    sha256: list[str | None]
    cached: list[tuple[int, str]]

    def __len__(self) -> int:
        return len(self.indices) + len(self.errors) + len(self.cached)

    def pin_memory(self) -> ImageBatch:
        """Called by the DataLoader's pinning thread when ``pin_memory=True``."""
        if self.batch is not None:
            self.batch = self.batch.pin_memory()
        return self


def _collate(items: list[_Item]) -> ImageBatch:
    import torch

    ok = [it for it in items if it.error is None and not it.cached]
    return ImageBatch(
        indices=[it.index for it in ok],
        batch=torch.stack([it.tensor for it in ok]) if ok else None,
        errors=[(it.index, it.error) for it in items if it.error is not None],
        sha256=[it.sha256 for it in ok],
        cached=[(it.index, it.sha256) for it in items if it.cached],  # type: ignore[misc]
    )


def batch_ranges(n: int, batch_size: int,
                 breaks: Sequence[int] | None = None) -> list[list[int]]:
    """The forward batches of ``n`` items: runs of at most ``batch_size`` consecutive
    indices, a new run starting at each index in ``breaks``.

    Every engine batches with it, so a batch holds the same images whether one process
    or a Ray actor encodes it (a matrix product's rounding depends on its row count).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    cuts = sorted({0, n, *(b for b in (breaks or ()) if 0 < b < n)})
    return [list(range(s, min(s + batch_size, stop)))
            for start, stop in itertools.pairwise(cuts)
            for s in range(start, stop, batch_size)]


def default_num_workers() -> int:
    """Decoding workers when none are asked for: one per spare core, at most 32.

    JPEG decoding and resizing cost about 8 ms per ImageNet-sized image and core, so the
    workers, not the model, bound the throughput on a GPU: on an H200 with 16 cores,
    ViT-B-32 at fp16 encodes 20k images/s while 15 workers feed it 1.9k images/s.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(32, cores - 1))


def iterate_image_batches(
    paths: Sequence[str | Path],
    transform: Callable[[Any], Any],
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = False,
    pin_memory: bool = False,
    hashes: bool = False,
    known: Sequence[str | None] | None = None,
    breaks: Sequence[int] | None = None,
) -> Iterator[ImageBatch]:
    """Read, decode and transform image files in batches, in order, off the main thread.

    Files are read and decoded by ``num_workers`` DataLoader worker processes (``0``:
    in this process); batches come back in the order of ``paths`` whatever the number of
    workers. Anything that is not a regular file is reported as an error, never opened
    for reading.

    Parameters
    ----------
    paths : sequence of path-like
        Image files.
    transform : callable
        PIL image -> tensor (the model's preprocessing).
    batch_size, num_workers : int
        Files per batch; decoding processes.
    progress : bool
        Show a tqdm progress bar (images/s).
    pin_memory : bool
        Put batches in page-locked memory (for asynchronous copies to a GPU).
    hashes : bool
        Compute each file's SHA-256 (needed to save resumable rows).
    known : sequence of (str or None), optional
        Per path, the content hash of an already saved row; matching files are not decoded.
    breaks : sequence of int, optional
        Indices where a new batch starts (see :func:`batch_ranges`).

    Yields
    ------
    ImageBatch
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    if num_workers < 0:
        raise ValueError(f"number of workers must be >= 0, got {num_workers}")
    loader = DataLoader(
        _ImageFiles(paths, transform, hashes=hashes, known=known),
        batch_sampler=batch_ranges(len(paths), batch_size, breaks),
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers > 0 else None,
    )
    n_cached = n_failed = 0
    with tqdm(total=len(paths), desc="encoding images", unit="img", disable=not progress,
              leave=False, smoothing=0.1) as bar:
        for item in loader:
            yield item
            n_cached += len(item.cached)
            n_failed += len(item.errors)
            if n_cached or n_failed:
                bar.set_postfix(reused=n_cached, unreadable=n_failed, refresh=False)
            bar.update(len(item))


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


def embed_images(
    source: ImageSource,
    encoder: Any,
    *,
    progress: bool = False,
    checkpoint: EmbeddingCheckpoint | None = None,
) -> ImageEmbeddings:
    """Encode every readable image of ``source`` with ``encoder`` (a ``ClipImageEncoder``).

    Parameters
    ----------
    source : ImageSource
        The images, with their ids.
    encoder : ClipImageEncoder
        The image encoder.
    progress : bool
        Show a progress bar.
    checkpoint : EmbeddingCheckpoint, optional
        Saves rows as batches complete and reuses rows saved by an interrupted run,
        keyed by image id and file content hash.

    Raises
    ------
    ImageSourceError
        When no image at all could be read.
    """
    feats, kept, failed = encoder.encode_files(source.paths, progress=progress, ids=source.ids,
                                               checkpoint=checkpoint, breaks=source.breaks)
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
