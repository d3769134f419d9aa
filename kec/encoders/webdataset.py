"""WebDataset tar shards as an image source: samples grouped by key, read with ``tarfile``.

A WebDataset shard is a plain (uncompressed) tar file whose members are grouped into
samples by *key*: the member's path up to the first dot of its file name
(``0001/abc.jpg`` and ``0001/abc.cls`` are the sample ``0001/abc``; the *extension* is the
rest, ``jpg`` and ``cls``). A sample's image is its first member with a ``jpg``, ``jpeg``,
``png`` or ``webp`` extension (in that order of preference); its label is the text of its
``cls`` member, else of its ``txt`` member. The id of a sample is ``SHARD/KEY``, with
``SHARD`` the tar's path relative to the folder it was found in (its file name for a
single tar).

Two readers share :func:`tar_samples`, which walks a tar's headers once:

- :func:`images_from_tars` lists every sample as a :class:`TarMember` (tar path, byte
  offset, size), so ``kec embed images`` reads images by offset in its DataLoader
  workers like files, with the same checkpoint and the same skipped-file report;
- :func:`read_tar_samples` reads one shard start to end and yields the image bytes: the
  streaming read a Ray Data worker does, one shard per task.

Labels are kept only when every sample has one. A sample without an image is reported
as unreadable, never fatal.
"""

from __future__ import annotations

import logging
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kec.encoders.images import MAX_IMAGE_BYTES, ImageSource, ImageSourceError

logger = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
LABEL_EXTS = ("cls", "txt")
TAR_SUFFIX = ".tar"
MAX_LABEL_BYTES = 1 << 16
_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


@dataclass(frozen=True)
class TarMember:
    """One member of a tar file, read by offset (no tar parsing at read time).

    ``size < 0`` marks a sample without an image: reading it raises the ``missing``
    message, so the sample is reported as unreadable like a broken file.
    """

    tar: str
    name: str
    offset: int
    size: int
    missing: str = ""

    def __str__(self) -> str:
        return f"{self.tar}#{self.name}"

    def read(self, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
        """The member's bytes.

        Raises
        ------
        OSError
            The sample has no image, the member is too large, or the tar is shorter
            than its header said.
        """
        if self.size < 0:
            raise OSError(self.missing or "sample has no image")
        if self.size > max_bytes:
            raise OSError(f"member too large for an image ({self.size} bytes > {max_bytes})")
        with open(self.tar, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(self.size)
        if len(data) != self.size:
            raise OSError(f"{self.tar} is truncated: {self.name} needs {self.size} bytes, "
                          f"got {len(data)}")
        return data


@dataclass
class TarSample:
    """A sample of a shard: its key, image member (or the reason it has none), label."""

    key: str
    image: TarMember
    label: str | None


def split_key(name: str) -> tuple[str, str]:
    """``(key, extension)`` of a member name, by the WebDataset rule.

    >>> split_key("0001/abc.seg.png")
    ('0001/abc', 'seg.png')
    """
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def _label_text(tf: tarfile.TarFile, member: tarfile.TarInfo) -> str | None:
    if member.size > MAX_LABEL_BYTES:
        logger.warning("ignoring label member %s: %d bytes", member.name, member.size)
        return None
    fh = tf.extractfile(member)
    if fh is None:  # pragma: no cover - regular members always have a file object
        return None
    text = " ".join(fh.read().decode("utf-8", errors="replace").split())
    return text or None


def _open_tar(path: str | os.PathLike[str]) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:")  # uncompressed only: images are read by offset
    except tarfile.ReadError as exc:
        raise ImageSourceError(f"{path} is not an uncompressed tar file ({exc}); WebDataset "
                               "shards are read by offset, so unpack .tar.gz first") from None
    except OSError as exc:
        raise ImageSourceError(f"cannot read {path}: {exc.strerror or exc}") from None


def tar_samples(path: str | os.PathLike[str]) -> list[TarSample]:
    """The samples of one shard, in the order their keys first appear.

    Only member headers (and the small label members) are read.

    Raises
    ------
    ImageSourceError
        The file is not an uncompressed tar, or cannot be read.
    """
    images: dict[str, tuple[int, tarfile.TarInfo]] = {}
    labels: dict[str, dict[str, str | None]] = {}
    order: dict[str, None] = {}
    with _open_tar(path) as tf:
        try:
            for member in tf:
                if not member.isfile() or member.name.rpartition("/")[2].startswith("."):
                    continue
                key, ext = split_key(member.name)
                order.setdefault(key, None)
                if ext in IMAGE_EXTS:
                    rank = IMAGE_EXTS.index(ext)
                    if key not in images or rank < images[key][0]:
                        images[key] = (rank, member)
                elif ext in LABEL_EXTS:
                    labels.setdefault(key, {})[ext] = _label_text(tf, member)
        except (tarfile.TarError, OSError) as exc:
            raise ImageSourceError(f"cannot read {path}: {exc}") from None
    out = []
    for key in order:
        if key in images:
            m = images[key][1]
            image = TarMember(str(path), m.name, m.offset_data, m.size)
        else:
            image = TarMember(str(path), key, 0, -1,
                              missing=f"sample has no {'/'.join(IMAGE_EXTS)} member")
        found = labels.get(key, {})
        label = next((found[e] for e in LABEL_EXTS if found.get(e)), None)
        out.append(TarSample(key, image, label))
    return out


def read_tar_samples(path: str | os.PathLike[str],
                     sample_id: str) -> Iterator[tuple[str, str | None, bytes, str]]:
    """Read a shard start to end: ``(id, label, image bytes, error)`` per sample.

    ``sample_id`` is the shard's id prefix (see :func:`shard_ids`). A sample whose image
    cannot be read gives empty bytes and the error message.
    """
    for sample in tar_samples(path):
        try:
            data, error = sample.image.read(), ""
        except OSError as exc:  # worded as kec embed's DataLoader path words it
            data, error = b"", f"{type(exc).__name__}: {exc}"
        yield f"{sample_id}/{sample.key}", sample.label, data, error


def expand_braces(pattern: str) -> list[str]:
    """Expand WebDataset's numeric ranges: ``"s-{000..002}.tar"`` -> s-000, s-001, s-002.

    Each ``{A..B}`` keeps the zero padding of ``A``; several ranges multiply.
    """
    m = _BRACES.search(pattern)
    if m is None:
        return [pattern]
    lo, hi = int(m.group(1)), int(m.group(2))
    if hi < lo:
        raise ImageSourceError(f"empty range {m.group(0)} in {pattern!r}")
    width = len(m.group(1))
    out = []
    for k in range(lo, hi + 1):
        out.extend(expand_braces(pattern[:m.start()] + f"{k:0{width}d}" + pattern[m.end():]))
    return out


def find_tars(folder: str | os.PathLike[str]) -> list[Path]:
    """The ``.tar`` files under ``folder`` (recursive, sorted, hidden entries skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in filenames
                     if f.endswith(TAR_SUFFIX) and not f.startswith("."))
    return sorted(found)


def shard_ids(tars: list[Path], base: Path | None) -> list[str]:
    """Each shard's id prefix: its path relative to ``base`` (its file name without one)."""
    if base is None:
        names = [t.name for t in tars]
        if len(set(names)) == len(names):
            return names
        return [t.as_posix() for t in tars]
    return [t.relative_to(base).as_posix() for t in tars]


def images_from_tars(tars: list[Path], *, location: str,
                     base: Path | None = None) -> ImageSource:
    """Every sample of ``tars`` as an :class:`~kec.encoders.images.ImageSource` whose
    ``paths`` are :class:`TarMember` references.

    Raises
    ------
    ImageSourceError
        A tar is missing, compressed or unreadable, or the shards hold no sample.
    """
    ids: list[str] = []
    refs: list[TarMember] = []
    labels: list[str | None] = []
    breaks: list[int] = []
    for tar, prefix in zip(tars, shard_ids(tars, base), strict=True):
        if not tar.is_file():
            raise ImageSourceError(f"{tar}: no such tar shard")
        breaks.append(len(ids))
        for sample in tar_samples(tar):
            ids.append(f"{prefix}/{sample.key}")
            refs.append(sample.image)
            labels.append(sample.label)
    if not ids:
        raise ImageSourceError(f"no WebDataset samples in {location}")
    final = labels if all(lb is not None for lb in labels) else None
    if final is None and any(lb is not None for lb in labels):
        logger.warning("%s: only some samples have a cls/txt label; ignoring labels", location)
    logger.info("%d samples in %d WebDataset shard(s) at %s", len(ids), len(tars), location)
    return ImageSource(paths=refs, ids=ids, labels=final,  # type: ignore[arg-type]
                       origin="webdataset", location=location, breaks=breaks)


def tar_source(source: str | os.PathLike[str]) -> tuple[list[Path], Path | None] | None:
    """The tar shards that ``source`` names, with the folder ids are relative to, or
    ``None`` when ``source`` names no tar: a ``.tar`` file, a brace pattern
    (``shards/s-{000..099}.tar``), or a folder holding ``.tar`` files and no image.

    Raises
    ------
    ImageSourceError
        A pattern names a missing file, or a folder holds both images and tar files.
    """
    text = os.fspath(source)
    if _BRACES.search(text) and text.endswith(TAR_SUFFIX):
        tars = [Path(t) for t in expand_braces(text)]
        missing = [str(t) for t in tars if not t.is_file()]
        if missing:
            raise ImageSourceError(f"{len(missing)} shard(s) of {text} do not exist "
                                   f"(first: {missing[0]})")
        return tars, None
    path = Path(text)
    if path.is_file() and path.name.endswith(TAR_SUFFIX):
        return [path], None
    if path.is_dir():
        tars = find_tars(path)
        if tars:
            return tars, path
    return None
