"""The Makefile's main job installs what it needs and shows that it is working (issue 17:
`make knowledge` warned "WordNet unavailable" and ran pip quietly for 18 minutes)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _dry_run(target: str, tmp_path: Path) -> list[str]:
    """The commands `make TARGET` would run for a fresh venv (nothing is run)."""
    out = subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return out.splitlines()


def test_make_knowledge_installs_wordnet_before_building(tmp_path):
    lines = _dry_run("knowledge", tmp_path)
    build = next(i for i, ln in enumerate(lines) if "kec knowledge build" in ln)
    wordnet = next(i for i, ln in enumerate(lines) if "wordnet-base" in ln)
    assert wordnet < build
    assert not any("chromium" in ln for ln in lines)  # only what the main job needs


def test_pip_shows_its_progress(tmp_path):
    pips = [ln for ln in _dry_run("knowledge", tmp_path) if "pip install" in ln]
    assert len(pips) == 3 and not any(" -q" in ln for ln in pips)


def test_make_test_still_installs_every_system_dependency(tmp_path):
    text = "\n".join(_dry_run("test", tmp_path))
    assert "wordnet-base" in text and "chromium" in text and "pytest" in text
