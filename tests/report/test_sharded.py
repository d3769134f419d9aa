"""``kec report`` on a sharded feature set (a folder with ``index.json``) as --features."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kec.feature_shards import save_feature_shards
from kec.features import load_features
from kec.report import build_report, load_result, write_report
from kec.report.result import MissingInputError


def _shard(result_dir: Path, rows: int = 7) -> Path:
    """The result's feature file written again as a sharded set of ``rows``-row shards."""
    summary = json.loads((result_dir / "summary.json").read_text())
    fs = load_features(summary["parameters"]["features"])
    folder = result_dir.parent / "images.shards"
    save_feature_shards(folder, fs.features, ids=fs.ids, kind=fs.kind, encoder=fs.encoder,
                        labels=fs.labels, extra=fs.metadata.get("extra"), shard_rows=rows)
    return folder


def _sections(page: str) -> tuple[int, int, bool]:
    return (page.count("data:image/jpeg;base64,"), page.count("data:image/png;base64,"),
            "feature scatter" in page)


def test_a_sharded_set_given_as_features_makes_the_same_page(result_dir, tmp_path):
    folder = _shard(result_dir)
    assert len(list(folder.glob("shard-*.safetensors"))) == 4  # 24 rows in shards of 7
    summary = json.loads((result_dir / "summary.json").read_text())
    one = build_report(result_dir, features=summary["parameters"]["features"])
    page = write_report(result_dir, tmp_path / "r.html", features=folder).read_text("utf-8")
    assert _sections(page) == _sections(one)
    assert _sections(page)[0] == 24 and _sections(page)[2]
    # the same representative images, in the same order
    pick = re.compile(r"data:image/jpeg;base64,[A-Za-z0-9+/=]+")
    assert pick.findall(page) == pick.findall(one)


def test_a_summary_that_records_a_sharded_set_finds_it(result_dir):
    folder = _shard(result_dir)
    path = result_dir / "summary.json"
    summary = json.loads(path.read_text())
    summary["parameters"]["features"] = str(folder)
    path.write_text(json.dumps(summary))
    res = load_result(result_dir)
    ref = res.resolve_input("features")
    assert ref is not None and ref.path == folder
    assert _sections(build_report(result_dir))[2]


def test_a_folder_that_is_not_a_feature_set_is_refused(result_dir, tmp_path):
    empty = tmp_path / "not-a-set"
    empty.mkdir()
    with pytest.raises(MissingInputError, match="no such file or sharded feature set"):
        build_report(result_dir, features=empty)
    with pytest.raises(MissingInputError, match=r"--knowledge .*: no such file$"):
        build_report(result_dir, knowledge=empty)  # knowledge is a file, never a folder
