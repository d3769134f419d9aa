"""The report renders in a real browser: headless Chromium screenshot, checked as pixels.

Set ``KEC_UPDATE_SCREENSHOT=1`` to also save the screenshot as
``docs/report-screenshot.png`` (the README's picture).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from kec.report import find_chromium, screenshot, write_report

DOCS_PNG = Path(__file__).resolve().parents[2] / "docs" / "report-screenshot.png"

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="needs a headless Chromium (Debian: apt-get install chromium)",
)


def test_report_renders_in_chromium(result_dir, tmp_path):
    from PIL import Image

    page = write_report(result_dir, tmp_path / "report.html")
    png = screenshot(page, tmp_path / "shot.png", width=1200, height=2000)
    im = Image.open(png).convert("RGB")
    assert im.size == (1200, 2000)
    px = np.asarray(im)
    colours = np.unique(px.reshape(-1, 3) // 8, axis=0)
    assert len(colours) > 200, "a rendered page with figures has many colours"
    non_white = (px.min(axis=2) < 235).mean()
    assert non_white > 0.05, f"only {non_white:.1%} of the page is not white"
    header = px[:40, :600].reshape(-1, 3).mean(axis=0)  # the dark blue header bar
    assert header[2] > header[0] + 20 and header.sum() < 350
    # the thumbnails of the shapes (pure reds, greens, blues) made it onto the page
    strong = lambda c: ((px[..., c] > 150) & (np.delete(px, c, axis=2).max(axis=2) < 90))  # noqa: E731
    assert strong(0).sum() > 100 and strong(2).sum() > 100
    if os.environ.get("KEC_UPDATE_SCREENSHOT"):
        DOCS_PNG.parent.mkdir(exist_ok=True)
        small = im.crop((0, 0, 1200, 1800)).resize((900, 1350), Image.LANCZOS)
        small.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(
            tmp_path / "docs.png", optimize=True)
        shutil.copyfile(tmp_path / "docs.png", DOCS_PNG)
        assert DOCS_PNG.stat().st_size < 300_000
