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


TINY_CLIP = "kec-test-tiny"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2,
                 "layers": 2},
}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    """Name of a 2-layer open_clip ViT registered for the tests (random weights, 64 px).

    It goes through open_clip's own model factory and precision casts, like ViT-B-32,
    at a fraction of the cost.
    """
    import json

    import open_clip

    folder = tmp_path_factory.mktemp("open_clip_configs")
    (folder / f"{TINY_CLIP}.json").write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(folder)
    assert TINY_CLIP in open_clip.list_models()
    return TINY_CLIP


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for the session: 2 CPUs, no dashboard (skips without ray).

    A session another test module already started is reused and left running.
    """
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()
