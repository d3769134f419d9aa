"""`kec report` finds the inputs a result names from any folder, and fails loudly when it
cannot (issue 9 item 18)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kec.cli.main import main
from kec.features import load_features, save_features
from kec.report import ResultError, build_report, load_result
from tests.report.results import make_result_dir


def _relative_summary(result: Path, **paths: str) -> None:
    """Rewrite the summary's input paths as a user would have typed them."""
    summary = json.loads((result / "summary.json").read_text())
    summary["parameters"].update(paths)
    (result / "summary.json").write_text(json.dumps(summary))


def _relocate_dataset(features: Path, root: str) -> None:
    """Store the dataset root in the feature file as a relative path."""
    fs = load_features(features)
    extra = dict(fs.metadata["extra"])
    extra["dataset"] = {**extra["dataset"], "root": root}
    extra["source"] = {**extra["source"], "location": root}
    save_features(features, fs.features, ids=fs.ids, kind="image", encoder=fs.encoder,
                  labels=fs.labels, extra=extra)


def test_relative_inputs_are_found_from_another_folder(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`kec cluster` ran in tmp_path with relative paths; the report runs elsewhere."""
    result = make_result_dir(tmp_path)
    _relocate_dataset(tmp_path / "images.features.safetensors", "data")
    _relative_summary(result, features="images.features.safetensors",
                      knowledge="knowledge.json")
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    page = build_report(result)
    assert "feature scatter" in page and "knowledge graph" in page
    assert page.count("data:image/jpeg;base64,") == 24
    res = load_result(result)
    assert res.reference("features") == str(tmp_path / "images.features.safetensors")


def test_the_real_commands_from_two_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    make_result_dir(tmp_path)
    _relocate_dataset(tmp_path / "images.features.safetensors", "data")
    monkeypatch.chdir(tmp_path)
    assert main(["cluster", "images.features.safetensors", "--k", "4", "--out",
                 "runs/r1"]) == 0
    away = tmp_path / "away"
    away.mkdir()
    monkeypatch.chdir(away)
    assert main(["report", str(tmp_path / "runs" / "r1"), "--out", "r.html"]) == 0
    page = (away / "r.html").read_text()
    assert "feature scatter" in page and page.count("data:image/jpeg;base64,") == 24
    capsys.readouterr()


def test_a_missing_input_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    result = make_result_dir(tmp_path)
    (tmp_path / "knowledge.json").unlink()
    with pytest.raises(ResultError, match=r"names the knowledge file .*--knowledge PATH"):
        build_report(result)
    code = main(["report", str(result), "--out", str(tmp_path / "r.html")])
    err = capsys.readouterr().err
    assert code == 2 and "knowledge" in err and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()
    # giving the input (or another one) explicitly is the way out
    shutil.copy(tmp_path / "images.features.safetensors", tmp_path / "copy.safetensors")
    (tmp_path / "images.features.safetensors").unlink()
    with pytest.raises(ResultError, match="features file"):
        build_report(result, knowledge=None)


def test_images_that_cannot_be_found_fail_loudly(tmp_path: Path) -> None:
    from kec.report import ReportOptions

    result = make_result_dir(tmp_path)
    features = tmp_path / "images.features.safetensors"
    fs = load_features(features)
    extra = {k: v for k, v in fs.metadata["extra"].items() if k != "dataset"}
    extra["source"] = {"origin": "folder", "location": str(tmp_path / "moved-away")}
    save_features(features, fs.features, ids=fs.ids, kind="image", encoder=fs.encoder,
                  labels=fs.labels, extra=extra)
    with pytest.raises(ResultError, match=r"none of the images could be found.*--images DIR"):
        build_report(result)
    page = build_report(result, options=ReportOptions(images_per_cluster=0))
    assert "feature scatter" in page


def test_several_candidates_pick_the_one_with_the_recorded_hash(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    from kec._io import sha256_file

    result = make_result_dir(tmp_path)
    real = tmp_path / "images.features.safetensors"
    decoy = result / "images.features.safetensors"
    decoy.write_bytes(b"not the features")
    summary = json.loads((result / "summary.json").read_text())
    summary["inputs"] = {"features": {"path": "images.features.safetensors",
                                      "sha256": sha256_file(real)}}
    summary["parameters"].pop("features")
    (result / "summary.json").write_text(json.dumps(summary))
    monkeypatch.chdir(result)
    assert load_result(result).reference("features") == str(real)


def test_the_page_names_no_local_folder(tmp_path: Path) -> None:
    """Input files are shown by name; absolute paths in the summary's tables lose their
    folders (a shared report must not tell where the files lay)."""
    result = make_result_dir(tmp_path)
    summary = json.loads((result / "summary.json").read_text())
    summary["info"] = {"kec": {"source": str(tmp_path / "knowledge.json"), "note": "n/300"}}
    (result / "summary.json").write_text(json.dumps(summary))
    page = build_report(result)
    assert str(tmp_path) not in page and "/tmp" not in page
    assert "<td>images.features.safetensors</td>" in page
    assert "<td>knowledge.json</td>" in page and "n/300" in page


def _foreign_ids(result: Path, ids: list[str]) -> None:
    """assignments.csv as a result folder from someone else could name its ids."""
    rows = "".join(f"{i},{n % 2},x\n" for n, i in enumerate(ids))
    (result / "assignments.csv").write_text("id,cluster,label\n" + rows)


def test_ids_outside_the_image_folders_are_never_opened(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    """A received result folder whose ids are absolute paths (or climb out with ..) to
    local images must not get those images embedded in the page; --images DIR opens them
    only when the user names their folder."""
    from PIL import Image

    result = make_result_dir(tmp_path)
    private = tmp_path / "private"
    private.mkdir()
    secrets = []
    for n in range(4):
        Image.new("RGB", (32, 32), (255, 0, 255)).save(private / f"s{n}.png")
        secrets.append(str(private / f"s{n}.png"))
    _foreign_ids(result, [*secrets[:2], "../../private/s2.png", "../private/s3.png"])
    page = build_report(result)
    assert page.count("data:image/jpeg") == 0 and "images not available" in page
    assert "4 image ids lie outside the image folder" in caplog.text
    allowed = build_report(result, images_root=private.parent)  # the user names it
    assert allowed.count("data:image/jpeg") == 2  # the absolute ids under tmp_path
    # under private/: the absolute ids and ../private/s3.png, which normalises back into it
    assert build_report(result, images_root=private).count("data:image/jpeg") == 3
