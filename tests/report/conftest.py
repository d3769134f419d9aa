"""The ``result_dir`` fixture: see :mod:`tests.report.results`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.report.results import make_result_dir


@pytest.fixture()
def result_dir(tmp_path) -> Path:
    return make_result_dir(tmp_path)
