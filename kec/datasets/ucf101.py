"""UCF101 as images: the middle frame of each clip (as TAC and KEC evaluate it).

``ROOT/<ClassName>/`` (or ``ROOT/UCF-101/<ClassName>/``) may hold, per clip:

- a video (``v_<Class>_g01_c01.avi``): its middle frame is decoded with PyAV
  (``pip install av``) once and cached as a JPEG under ``frames_dir``;
- an image (``v_<Class>_g01_c01.jpg``): used as the clip's frame;
- a folder of frames (``v_<Class>_g01_c01/00001.jpg ...``): its middle frame (sorted by
  name) is used.

Class names come from the folder names, CamelCase split into words
(``ApplyEyeMakeup`` -> ``apply eye makeup``).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from kec._io import sha256_text
from kec.datasets.base import DatasetError, ImageDataset
from kec.encoders.images import IMAGE_EXTENSIONS
from kec.errors import MissingDependencyError
from kec.vocab import cache_dir

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def class_name_from_folder(folder: str) -> str:
    """``"ApplyEyeMakeup"`` -> ``"apply eye makeup"``; ``"YoYo"`` -> ``"yo yo"``."""
    return " ".join(_CAMEL.sub(" ", folder.replace("_", " ")).lower().split())


def middle_frame(video: str | os.PathLike[str]) -> Any:
    """The middle frame of a video file as a PIL image (decoded with PyAV).

    Raises
    ------
    MissingDependencyError
        PyAV is not installed.
    DatasetError
        The file has no decodable video frame.
    """
    try:
        import av
    except ImportError as exc:
        raise MissingDependencyError("av", "video", "decoding UCF101 videos") from exc
    try:
        with av.open(str(video)) as container:
            n = int(container.streams.video[0].frames or 0)
        if n <= 0:  # the container does not store a frame count: count by decoding
            with av.open(str(video)) as container:
                n = sum(1 for _ in container.decode(video=0))
        if n <= 0:
            raise DatasetError(f"{video}: no video frames")
        last = None
        with av.open(str(video)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i == n // 2:
                    return frame.to_image()
                last = frame
        if last is None:
            raise DatasetError(f"{video}: no decodable video frame")
        return last.to_image()  # fewer frames than announced: the last one
    except (av.FFmpegError, IndexError, OSError) as exc:
        raise DatasetError(f"cannot decode {video}: {exc}") from exc


def _clip_frame(entry: Path, frames_dir: Path, cls: str) -> Path | None:
    suffix = entry.suffix.lower()
    if entry.is_dir():
        frames = sorted(p for p in entry.iterdir()
                        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        return frames[(len(frames) - 1) // 2] if frames else None
    if suffix in IMAGE_EXTENSIONS:
        return entry
    if suffix in VIDEO_EXTENSIONS:
        out = frames_dir / cls / f"{entry.stem}.jpg"
        if not out.is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".tmp.jpg")
            middle_frame(entry).convert("RGB").save(tmp, quality=95)
            os.replace(tmp, out)
        return out
    return None


def load_ucf101(
    entry: dict[str, Any], root: str | os.PathLike[str], split: str = "all", *,
    frames_dir: str | os.PathLike[str] | None = None, progress: bool = False,
) -> ImageDataset:
    """One image per UCF101 clip (see the module docstring for the accepted layouts).

    Parameters
    ----------
    entry : dict
        Registry entry.
    root : path-like
        The UCF101 folder.
    split : str
        Only ``"all"`` (13,320 clips).
    frames_dir : path-like, optional
        Where decoded middle frames are cached (default: under the kec cache,
        ``$KEC_CACHE_DIR/frames/ucf101-<hash of root>``).
    progress : bool
        Show a progress bar while decoding videos.
    """
    from tqdm.auto import tqdm

    root = Path(root).expanduser()
    base = root / "UCF-101" if (root / "UCF-101").is_dir() else root
    if not base.is_dir():
        raise DatasetError(f"UCF101 not found: {root} is not a folder. Needs: {entry['needs']}")
    class_dirs = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DatasetError(f"no class folders in {base}. Needs: {entry['needs']}")
    if frames_dir is None:
        frames_dir = cache_dir() / "frames" / f"ucf101-{sha256_text(str(base.resolve()))[:12]}"
    frames_dir = Path(frames_dir)
    clips = [(c, e) for c in class_dirs for e in sorted(c.iterdir()) if not e.name.startswith(".")]
    paths: list[Path] = []
    ids: list[str] = []
    targets: list[int] = []
    skipped: list[str] = []
    for cls_dir, clip in tqdm(clips, desc="UCF101 middle frames", disable=not progress,
                              leave=False):
        try:
            frame = _clip_frame(clip, frames_dir, cls_dir.name)
        except DatasetError as exc:
            logger.warning("skipping %s", exc)
            skipped.append(str(clip))
            continue
        if frame is None:
            continue
        paths.append(frame)
        ids.append(f"{cls_dir.name}/{clip.stem if clip.is_file() else clip.name}")
        targets.append(class_dirs.index(cls_dir))
    if not paths:
        raise DatasetError(f"no clips (videos, frames or frame folders) found under {base}")
    if len(class_dirs) != entry["num_classes"]:
        logger.warning("UCF101: %d class folders under %s (expected %d)", len(class_dirs),
                       base, entry["num_classes"])
    logger.info("ucf101: %d clips in %d classes (frames cached in %s)", len(paths),
                len(class_dirs), frames_dir)
    return ImageDataset(
        name=entry["name"], split=split,
        class_names=[class_name_from_folder(c.name) for c in class_dirs],
        targets=targets, ids=ids, paths=paths, root=str(root),
        info={"source": str(base), "frames_dir": str(frames_dir), "skipped": skipped},
    )
