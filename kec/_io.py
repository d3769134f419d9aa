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
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{path} is a directory; give a file name to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
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
        return p
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
    return p
