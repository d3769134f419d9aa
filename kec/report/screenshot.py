"""Screenshot an HTML file with headless Chromium (used by the tests and the docs image)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from kec.errors import KecError

logger = logging.getLogger(__name__)

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Offline, quiet, sandbox-free flags (containers run as root without a sandbox).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable (``$KEC_CHROMIUM`` first), or ``None``."""
    env = os.environ.get("KEC_CHROMIUM")
    if env:
        return env if shutil.which(env) or Path(env).is_file() else None
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html_file: str | os.PathLike[str], png_file: str | os.PathLike[str], *,
               width: int = 1200, height: int = 2000, timeout: float = 60.0) -> Path:
    """Render ``html_file`` in headless Chromium and save a ``width`` x ``height`` PNG.

    Raises
    ------
    KecError
        No Chromium found, or it failed or produced no file.
    """
    browser = find_chromium()
    if browser is None:
        raise KecError("no Chromium found (install Debian's 'chromium' or set KEC_CHROMIUM)")
    html_file = Path(html_file).resolve()
    png_file = Path(png_file).resolve()
    png_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kec-chromium-") as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png_file}",
               f"--window-size={width},{height}", html_file.as_uri()]
        logger.info("running %s", " ".join(cmd))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KecError(f"Chromium failed: {exc}") from exc
    if proc.returncode != 0 or not png_file.is_file():
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
        raise KecError(f"Chromium exited with {proc.returncode} and no screenshot: "
                       + " | ".join(tail))
    return png_file
