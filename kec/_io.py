"""Small I/O helpers shared by every module that writes files: atomic, deterministic."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Literal

from kec.errors import KecError, OutputPathError


def canonical_json(obj: Any) -> str:
    """Compact JSON with sorted keys: the input of every content hash in kec."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def split_lines(text: str) -> list[str]:
    """``text`` cut into lines at ``\n`` only, the ``\r`` of a ``\r\n`` ending dropped.

    Unlike :meth:`str.splitlines`, form feeds, vertical tabs, ``\x1c``-``\x1e``, U+0085,
    U+2028 and U+2029 stay inside their line, so line numbers match ``wc -l`` and editors.
    A final newline does not start an empty last line.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_text_file(path: str | os.PathLike[str], what: str,
                   error: type[KecError] = KecError) -> str:
    """The UTF-8 text of ``path``; a missing or unreadable file is ``error`` with one line
    naming ``what`` it is (``"labels file"``, ``"URL file"``)."""
    try:
        return Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what} {path}: {exc}") from None


def current_umask() -> int:
    """The process umask (read without changing it where ``/proc`` tells it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: the classic read-by-setting (not thread-safe)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The bytes go to a temporary file in the same directory, are flushed and fsynced,
    then ``os.replace`` swaps it in (atomic on POSIX and Windows). The file gets the mode
    a plain ``open(path, "w")`` would give, ``0o666 & ~umask`` (``mkstemp`` alone would
    leave it ``0o600`` whatever the umask).
    """
    atomic_write_files(Path(path).parent, {Path(path).name: data})


def _staged(path: Path, data: bytes) -> str:
    """``data`` in a fsynced temporary file beside ``path`` (mode ``0o666 & ~umask``)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write_files(folder: str | os.PathLike[str], files: dict[str, bytes]) -> None:
    """Write several files of ``folder`` together: all new, or (on any error) all old.

    Every file is first written in full to a temporary file beside it and fsynced; only
    when all of them are written are they renamed into place, one ``os.replace`` each.
    A write error (a full disk, a file-size limit) therefore changes nothing: the
    temporary files are removed and the files keep their old content. What remains is the
    instant between the renames, which readers that need both files detect by a content
    hash (see :func:`kec.report.result.write_result`).
    """
    folder = Path(folder)
    paths = {name: folder / name for name in files}
    for path in paths.values():
        if path.is_dir():
            raise OutputPathError(f"{path} is a directory; give a file name to write")
    folder.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for name, path in paths.items():
            staged.append((_staged(path, files[name]), path))
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dump_json(obj: Any) -> str:
    """Deterministic, human-readable JSON (sorted keys, 2-space indent, trailing newline)."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=2) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, dump_json(obj))


def probe_writable(path: str | os.PathLike[str]) -> None:
    """Create and delete a file in the folder that will hold ``path`` (its nearest existing
    ancestor when missing): the one test of writability that also holds for root, on
    read-only mounts and on pseudo file systems such as ``/proc``.

    Raises
    ------
    OutputPathError
        The file cannot be created.
    """
    folder = Path(path).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(prefix=".kec-write-test.", dir=folder):
            pass
    except OSError as exc:
        raise OutputPathError(f"cannot write {path}: {folder}: "
                              f"{exc.strerror or exc}") from None


def check_output_path(path: str | os.PathLike[str],
                      kind: Literal["file", "dir"] = "file") -> Path:
    """Check, before any expensive work, that ``path`` can be written as a ``kind``.

    ``kind="file"``: ``path`` may exist as a regular file (it is replaced) but not as a
    directory or anything else. ``kind="dir"``: ``path`` may exist as a directory (files
    in it are replaced) but not as a file. Missing parents are fine (they are created
    on write) as long as none of them is a file and the nearest existing one is a
    writable directory.

    Returns
    -------
    pathlib.Path
        ``path`` as given.

    Raises
    ------
    OutputPathError
        With a message that says what is wrong with the path.
    """
    p = Path(path)
    what = "output file" if kind == "file" else "output folder"
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', not {kind!r}")
    try:
        st = p.stat()
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        st = None  # a parent is a file: reported below
    except OSError as exc:
        raise OutputPathError(f"{what} {p}: {exc.strerror or exc}") from None
    if st is not None:
        _check_existing_output(p, st, kind, what)
        return p
    _check_missing_output(p, what)
    return p


def _check_existing_output(p: Path, st: os.stat_result, kind: str, what: str) -> None:
    """Raise :class:`OutputPathError` if the existing ``p`` cannot be written as a ``kind``."""
    if kind == "file" and stat.S_ISDIR(st.st_mode):
        raise OutputPathError(f"{what} {p} is an existing directory; give a file name "
                              f"(e.g. {p / 'out.json'})")
    if kind == "file" and not stat.S_ISREG(st.st_mode):
        raise OutputPathError(f"{what} {p} exists and is not a regular file")
    if kind == "dir" and not stat.S_ISDIR(st.st_mode):
        raise OutputPathError(f"{what} {p} is an existing file, not a folder; give a "
                              "folder name (it is created)")
    target = p if kind == "dir" else p.parent
    if not os.access(target, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {p}: no permission to write in {target}")


def _check_missing_output(p: Path, what: str) -> None:
    """Raise :class:`OutputPathError` unless the nearest existing ancestor of the missing
    ``p`` is a writable directory."""
    # walk up to the nearest existing ancestor; it must be a writable directory
    parent = p.absolute().parent
    while True:
        try:
            pst = parent.stat()
        except FileNotFoundError:
            if parent == parent.parent:
                raise OutputPathError(f"{what} {p}: no existing folder above it") from None
            parent = parent.parent
            continue
        except NotADirectoryError:
            parent = parent.parent
            continue
        except OSError as exc:
            raise OutputPathError(f"{what} {p}: {parent}: {exc.strerror or exc}") from None
        break
    if not stat.S_ISDIR(pst.st_mode):
        raise OutputPathError(f"{what} {p}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {p}: no permission to write in {parent}")
