"""kec._io: atomic writes respect the umask; output paths are checked before any work."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from kec._io import atomic_write_bytes, check_output_path, current_umask, write_json
from kec.errors import KecError, OutputPathError


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077, 0o027])
def test_atomic_write_respects_the_umask(mask: int, umask: None, tmp_path: Path) -> None:
    os.umask(mask)
    assert current_umask() == mask
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    write_json(tmp_path / "sub" / "b.json", {"a": 1})
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what open() gives: the reference
    assert _mode(tmp_path / "a.bin") == 0o666 & ~mask == _mode(plain)
    assert _mode(tmp_path / "sub" / "b.json") == 0o666 & ~mask


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_atomic_write_onto_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match="is a directory"):
        atomic_write_bytes(tmp_path, b"x")


# -- check_output_path -------------------------------------------------------------------
def test_file_paths_that_are_fine(tmp_path: Path) -> None:
    (tmp_path / "exists.json").write_text("{}")
    for p in (tmp_path / "new.json", tmp_path / "exists.json", tmp_path / "a" / "b" / "c.json"):
        assert check_output_path(p, "file") == p
    assert not (tmp_path / "a").exists()  # checking creates nothing


def test_dir_paths_that_are_fine(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for p in (tmp_path / "d", tmp_path / "new", tmp_path / "x" / "y"):
        assert check_output_path(p, "dir") == p


@pytest.mark.parametrize("kind, make, match", [
    ("file", lambda t: (t / "d").mkdir() or t / "d", "existing directory"),
    ("dir", lambda t: (t / "f").write_text("x") and t / "f", "existing file"),
    ("file", lambda t: (t / "f").write_text("x") and t / "f" / "out.json", "is a file"),
    ("dir", lambda t: (t / "f").write_text("x") and t / "f" / "a" / "b", "is a file"),
])
def test_bad_output_paths(kind: str, make, match: str, tmp_path: Path) -> None:
    path = make(tmp_path)
    with pytest.raises(OutputPathError, match=match) as info:
        check_output_path(path, kind)  # type: ignore[arg-type]
    assert isinstance(info.value, KecError)


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="root may write anywhere")
def test_unwritable_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputPathError, match="no permission"):
            check_output_path(locked / "out.json", "file")
        with pytest.raises(OutputPathError, match="no permission"):
            check_output_path(locked / "sub" / "out.json", "file")
    finally:
        locked.chmod(0o700)


def test_unwritable_folder_for_root_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    """The permission branch, independent of who runs the tests."""
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(OutputPathError, match="no permission"):
        check_output_path(tmp_path / "out.json", "file")
    with pytest.raises(OutputPathError, match="no permission"):
        check_output_path(tmp_path, "dir")


# -- the commands check --out before any work (issue 9 item 16) -----------------------------
def test_commands_refuse_a_bad_out_before_working(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import json

    import numpy as np

    from kec.cli.main import main
    from kec.features import save_features
    from tests.servers import FaultServer

    feats = tmp_path / "img.st"
    save_features(feats, np.eye(4), ids=list("abcd"), kind="image",
                  encoder={"kind": "x", "model": "y", "pretrained": None})
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps([["gnu"], ["yak"]]))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    a_dir = tmp_path / "a_dir"
    a_dir.mkdir()
    with FaultServer() as fs:
        runs = {
            "cluster onto a file": ["cluster", str(feats), "--k", "2", "--out", str(a_file)],
            "knowledge build onto a folder": [
                "knowledge", "build", "--groups", str(groups), "--out", str(a_dir),
                "--backend", "openai", "--model", "m", "--base-url", fs.base_url,
                "--max-pairs", "0", "--no-cache", "--quiet"],
            "knowledge build under a file": [
                "knowledge", "build", "--groups", str(groups), "--out", str(a_file / "k.json"),
                "--backend", "openai", "--model", "m", "--base-url", fs.base_url,
                "--max-pairs", "0", "--no-cache", "--quiet"],
            "report onto a folder": ["report", str(tmp_path), "--out", str(a_dir)],
        }
        for what, argv in runs.items():
            assert main(argv) == 2, what
            err = capsys.readouterr().err
            assert err.startswith("kec: error: output") and "Traceback" not in err, what
        assert fs.count == 0  # no LLM call was made for a build that could not be saved
    assert a_file.read_text() == "x" and not any(a_dir.iterdir())


def test_split_lines_cuts_at_newline_only():
    from kec._io import split_lines

    assert split_lines("a\fb\r\nc\u2028d\n\ne\x85") == ["a\fb", "c\u2028d", "", "e\x85"]
    assert split_lines("") == [] and split_lines("\n") == [""]


def test_probe_writable_creates_nothing_and_refuses_what_cannot_be_written(tmp_path):
    from kec._io import probe_writable
    from kec.errors import OutputPathError

    probe_writable(tmp_path / "new" / "deeper" / "out.safetensors")
    assert list(tmp_path.iterdir()) == []
    if Path("/proc/self").is_dir():
        with pytest.raises(OutputPathError, match="cannot write /proc/x"):
            probe_writable("/proc/x")
