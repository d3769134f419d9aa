"""A generated dataset of tiny coloured shapes in class folders (deterministic, offline).

``ROOT/synthetic/<colour>_<shape>/<index>.png``: each class is one colour and one shape
(``red circle``, ``green square``, ...), drawn at a jittered position and size on a
noisy light background. The same parameters give byte-identical files on every run, so
tests and CI can cluster real image files without downloading anything.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from kec._io import canonical_json, sha256_text
from kec.datasets.base import DatasetError

logger = logging.getLogger(__name__)

#: (colour name, RGB, shape) of every class the generator knows, in order.
CLASSES: tuple[tuple[str, tuple[int, int, int], str], ...] = (
    ("red", (220, 30, 30), "circle"),
    ("green", (30, 170, 60), "square"),
    ("blue", (40, 70, 220), "triangle"),
    ("yellow", (235, 200, 20), "diamond"),
    ("purple", (140, 50, 180), "cross"),
    ("orange", (245, 130, 20), "ring"),
    ("cyan", (20, 190, 200), "circle"),
    ("black", (25, 25, 25), "square"),
)
MARKER = ".kec-synthetic.json"


def synthetic_class_names(num_classes: int) -> list[str]:
    """``"red circle"``, ``"green square"``, ... for the first ``num_classes`` classes."""
    if not 1 <= num_classes <= len(CLASSES):
        raise DatasetError(f"the synthetic dataset has 1 to {len(CLASSES)} classes")
    return [f"{colour} {shape}" for colour, _, shape in CLASSES[:num_classes]]


def _draw(shape: str, colour: tuple[int, int, int], size: int, rng: np.random.Generator
          ) -> Any:
    from PIL import Image, ImageDraw

    noise = rng.integers(215, 256, size=(size, size, 3), dtype=np.uint8)
    im = Image.fromarray(noise, "RGB")
    draw = ImageDraw.Draw(im)
    r = size * float(rng.uniform(0.25, 0.38))
    cx = size / 2 + float(rng.uniform(-0.12, 0.12)) * size
    cy = size / 2 + float(rng.uniform(-0.12, 0.12)) * size
    box = (cx - r, cy - r, cx + r, cy + r)
    jitter = rng.integers(-20, 21, size=3)
    fill = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(colour, jitter))
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    elif shape == "cross":
        w = r / 3
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=max(2, int(r / 3)))
    else:  # pragma: no cover - CLASSES only lists the shapes above
        raise DatasetError(f"unknown shape {shape!r}")
    return im


def generate_synthetic(
    root: str | os.PathLike[str],
    *,
    num_classes: int = 4,
    per_class: int = 6,
    size: int = 32,
    seed: int = 0,
) -> Path:
    """Write the synthetic dataset under ``root/synthetic`` (once) and return that folder.

    An existing folder made with the same parameters is reused; one made with other
    parameters is replaced. Files are written to a temporary folder that is renamed
    into place, so an interrupted run leaves no half dataset.

    Parameters
    ----------
    root : path-like
        Parent folder.
    num_classes : int
        1 to ``len(CLASSES)`` classes.
    per_class : int
        Images per class.
    size : int
        Side of the square images in pixels.
    seed : int
        Seed of the jitter (position, size, colour, background noise).
    """
    if per_class < 1 or size < 8:
        raise DatasetError("the synthetic dataset needs per_class >= 1 and size >= 8")
    names = synthetic_class_names(num_classes)
    params = {"num_classes": num_classes, "per_class": per_class, "size": size,
              "seed": seed, "version": 1}
    target = Path(root) / "synthetic"
    marker = target / MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text("utf-8")) == params:
                return target
        except ValueError:
            pass
        logger.info("regenerating %s (other parameters)", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".synthetic.", dir=target.parent))
    try:
        rng = np.random.default_rng(seed)
        for (_colour, rgb, shape), name in zip(CLASSES, names):
            folder = tmp / name.replace(" ", "_")
            folder.mkdir()
            for i in range(per_class):
                _draw(shape, rgb, size, rng).save(folder / f"{i:03d}.png", optimize=False)
        (tmp / MARKER).write_text(canonical_json(params) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("generated %d synthetic images (%d classes, id %s) in %s",
                num_classes * per_class, num_classes, sha256_text(canonical_json(params))[:8],
                target)
    return target
