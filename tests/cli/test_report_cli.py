"""``kec report`` through the real argument parser (command registered on a fresh parser)."""

from __future__ import annotations

import argparse

import pytest

from kec.cli import report as report_cli
from kec.errors import KecError
from kec.report import find_chromium
from tests.report.results import make_result_dir


@pytest.fixture()
def result_dir(tmp_path):
    return make_result_dir(tmp_path)


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kec")
    report_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_report_cli_writes_a_page(result_dir, tmp_path, capsys):
    out = tmp_path / "out" / "report.html"
    assert _run(["report", str(result_dir), "--out", str(out), "--max-clusters", "2",
                 "--images-per-cluster", "3", "--title", "Shapes"]) == 0
    page = out.read_text("utf-8")
    assert "<title>Shapes</title>" in page and "2 smaller clusters not shown" in page
    assert page.count("data:image/jpeg;base64,") == 6
    assert f"wrote {out}" in capsys.readouterr().out


def test_report_cli_overrides_and_errors(result_dir, tmp_path):
    from kec.report.result import ResultError

    out = tmp_path / "r.html"
    with pytest.raises(ResultError, match=r"--knowledge .*missing\.json: no such file"):
        _run(["report", str(result_dir), "--out", str(out), "--knowledge",
              str(tmp_path / "missing.json")])  # a missing input fails loudly (issue 9)
    with pytest.raises(FileNotFoundError):  # ... and is a FileNotFoundError for the API
        _run(["report", str(result_dir), "--out", str(out), "--features",
              str(tmp_path / "missing.safetensors")])
    assert not out.exists()
    with pytest.raises(ResultError):
        _run(["report", str(tmp_path), "--out", str(out)])
    with pytest.raises(KecError, match="--thumb-size"):
        _run(["report", str(result_dir), "--out", str(out), "--thumb-size", "4"])


@pytest.mark.skipif(find_chromium() is None, reason="needs a headless Chromium")
def test_report_cli_screenshot(result_dir, tmp_path):
    shot = tmp_path / "shot.png"
    assert _run(["report", str(result_dir), "--out", str(tmp_path / "r.html"),
                 "--screenshot", str(shot)]) == 0
    assert shot.stat().st_size > 10_000


def test_report_reads_kec_cluster_output(result_dir, tmp_path):
    """The result folder of `kec cluster` (the real command) renders, thumbnails found
    through the dataset reference of the feature file."""
    from kec.cli import cluster as cluster_cli

    features = result_dir.parent / "images.features.safetensors"
    parser = argparse.ArgumentParser(prog="kec")
    sub = parser.add_subparsers(dest="command", required=True)
    cluster_cli.register(sub)
    report_cli.register(sub)
    out = tmp_path / "clustered"
    args = parser.parse_args(["cluster", str(features), "--k", "4", "--out", str(out)])
    assert args.func(args) == 0
    page = tmp_path / "r.html"
    args = parser.parse_args(["report", str(out), "--out", str(page)])
    assert args.func(args) == 0
    html = page.read_text()
    assert "method kmeans" in html and html.count('<div class="card"') == 4
    assert html.count("data:image/jpeg;base64,") == 24 and "Metrics" in html


def test_math_text_in_labels_and_names_is_printed_not_parsed(result_dir, tmp_path):
    """'$\\foo$ cats' as a label and a cluster name crashed confusion_png (mathtext)."""
    import csv
    import json

    path = result_dir / "assignments.csv"
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    for row in rows[1:]:
        row[2] = "$\\foo$ cats" if row[2] == "red circle" else row[2]
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    summary = json.loads((result_dir / "summary.json").read_text())
    summary["clusters"][1]["name"] = "$x^2$ and $\\frac{1}{$"
    (result_dir / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "r.html"
    assert _run(["report", str(result_dir), "--out", str(out)]) == 0
    assert "$\\foo$ cats" in out.read_text()
