"""Fixtures for the encoder tests: tiny generated images; nothing is ever downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def make_png(path: Path, color: tuple[int, int, int], size: int = 32) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path)
    return path


@pytest.fixture()
def png():
    """``png(path, color)`` writes a 32x32 PNG."""
    return make_png


@pytest.fixture()
def class_folder(tmp_path: Path) -> Path:
    """``photos/{cat,dog}/{0,1,2}.png`` plus a corrupt ``dog/broken.png`` and clutter."""
    root = tmp_path / "photos"
    for cls, base in (("cat", (200, 20, 20)), ("dog", (20, 20, 200))):
        for i in range(3):
            make_png(root / cls / f"{i}.png", tuple(min(255, c + 15 * i) for c in base))
    (root / "dog" / "broken.png").write_bytes(b"this is not a png")
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".hidden.png").write_bytes(b"ignored")
    return root
