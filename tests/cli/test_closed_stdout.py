"""No `kec` command ends in a traceback when its stdout is closed or is a pipe nobody reads
(``kec knowledge show K.json | head``, ``kec ... >&-``): issue 9 item 16.

Every command runs for real, on small real inputs, in a child process whose stdout is
(a) closed from the start, or (b) a pipe whose reading end is already closed. To keep the
cost at two interpreter start-ups, the child (this module run as a script) runs every
command in-process through ``kec.cli.main.main`` and re-breaks its stdout before each
one. Two more children run one command each through the real interpreter exit, where a
broken stdout used to print ``Exception ignored ... BrokenPipeError``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BROKEN = 141


def _inputs(tmp: Path) -> dict[str, str]:
    """Small real inputs for every command (no model needed to make them)."""
    from PIL import Image

    from kec.features import save_features
    from kec.knowledge import save_knowledge
    from tests.knowledge.docs import make_doc

    enc = {"kind": "open_clip", "model": "ViT-B-32", "pretrained": None, "dim": 8}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 8))
    save_features(tmp / "img.st", x, ids=[f"im{i}.png" for i in range(12)], kind="image",
                  encoder=enc, labels=["a"] * 6 + ["b"] * 6)
    save_features(tmp / "nouns.st", rng.normal(size=(5, 8)),
                  ids=["cat", "dog", "car", "tree", "boat"], kind="text", encoder=enc)
    k1 = make_doc({"red disc": (["red circle"], ["round red shape"]),
                   "green block": (["green square"], ["square corners"])},
                  [("red disc", "green block", ["a disc has no corners"])])
    k2 = make_doc({"red disc": (["red circle"], ["round red shape"])}, [])
    save_knowledge(k1, tmp / "k1.json")
    save_knowledge(k2, tmp / "k2.json")
    (tmp / "groups.json").write_text(json.dumps([["gnu", "wildebeest"], ["yak"]]))
    (tmp / "captions.txt").write_text("a photo of a cat\n\na photo of a cat\na dog\n")
    (tmp / "texts.txt").write_text("cat\ndog\n")
    imgs = tmp / "imgs" / "red"
    imgs.mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (32, 32), (200, 10 * i, 10)).save(imgs / f"{i}.png")
    return {k: str(tmp / k) for k in ("img.st", "nouns.st", "k1.json", "k2.json",
                                      "groups.json", "captions.txt", "texts.txt", "imgs")}


def _commands(f: dict[str, str], out: Path, base_url: str) -> list[tuple[str, list[str],
                                                                         tuple[int, ...]]]:
    """(name, argv, exit codes the command may give with a working stdout)."""
    o = str(out)
    return [
        ("version", ["--version"], (0,)),
        ("help", ["--help"], (0,)),
        ("knowledge validate", ["knowledge", "validate", f["k1.json"]], (0,)),
        ("knowledge show", ["knowledge", "show", f["k1.json"]], (0,)),
        ("knowledge show --json", ["knowledge", "show", "--json", f["k1.json"]], (0,)),
        ("knowledge diff", ["knowledge", "diff", f["k1.json"], f["k2.json"]], (1,)),
        ("knowledge merge", ["knowledge", "merge", f["k1.json"], f["k2.json"], "--out",
                             f"{o}/merged.json"], (0,)),
        ("knowledge lint", ["knowledge", "lint", f["k1.json"], "--encoder", "none"], (0, 1)),
        ("knowledge build", ["knowledge", "build", "--groups", f["groups.json"], "--out",
                             f"{o}/built.json", "--backend", "openai", "--model", "m",
                             "--base-url", base_url, "--max-pairs", "0", "--n-captions", "0",
                             "--no-cache", "--quiet"], (0,)),
        ("vocab captions", ["vocab", "captions", f["captions.txt"], "--out",
                            f"{o}/caps.txt"], (0,)),
        ("vocab wordnet", ["vocab", "wordnet", "--out", f"{o}/wn.txt"], (0, 2)),
        ("embed texts", ["embed", "texts", f["texts.txt"], "--encoder", "minilm", "--out",
                         f"{o}/texts.st", "--device", "cpu"], (0, 2)),
        ("embed images", ["embed", "images", f["imgs"], "--model", "ViT-B-32",
                          "--pretrained", "none", "--workers", "0", "--out",
                          f"{o}/imgs.st", "--device", "cpu"], (0,)),
        ("scaffold", ["scaffold", f["img.st"], f["nouns.st"], "--out", f"{o}/g.json",
                      "--overclusters", "3", "--top-k", "2"], (0,)),
        ("cluster", ["cluster", f["img.st"], "--k", "2", "--out", f"{o}/result"], (0,)),
        ("report", ["report", f"{o}/result", "--out", f"{o}/report.html"], (0,)),
        ("bench --list", ["bench", "--list"], (0,)),
    ]


# -- the child -------------------------------------------------------------------------------
def _break_stdout(mode: str) -> None:
    if mode == "closed":
        sys.stdout = None  # what Python sets when fd 1 is closed at start-up
        return
    r, w = os.pipe()
    os.close(r)  # nobody will ever read: the first write that reaches the pipe fails
    os.dup2(w, 1)
    os.close(w)
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
                                  encoding="utf-8")


def _child(mode: str, inputs: str, out: str, report: str) -> None:
    from kec.cli.main import main
    from tests.servers import FaultServer

    files = json.loads(inputs)
    results: dict[str, Any] = {}
    with FaultServer() as fs:
        for name, argv, _ in _commands(files, Path(out), fs.base_url):
            _break_stdout(mode)
            err = io.StringIO()
            sys.stderr = err
            logging.root.handlers.clear()  # main's basicConfig logs to this stderr
            try:
                code: Any = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
            except BaseException:
                code = "traceback"
                err.write(traceback.format_exc())
            results[name] = {"code": code, "stderr": err.getvalue()[-3000:]}
    sys.stdout = io.StringIO()  # the child's own exit must not trip on the last pipe
    sys.stderr = sys.__stderr__
    Path(report).write_text(json.dumps(results))


# -- the tests -------------------------------------------------------------------------------
def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT),
            "KEC_CACHE_DIR": os.environ.get("KEC_CACHE_DIR", "")}


def _close_fd1() -> None:
    os.close(1)


@pytest.mark.slow  # two interpreters that load MiniLM and a random-weight CLIP
@pytest.mark.parametrize("mode", ["closed", "pipe"])
def test_every_command_survives_a_closed_or_broken_stdout(mode: str, tmp_path: Path) -> None:
    files = _inputs(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.cli.test_closed_stdout", mode, json.dumps(files),
         str(out), str(report)],
        cwd=ROOT, env=_env(), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        timeout=600, preexec_fn=_close_fd1 if mode == "closed" else None)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(report.read_text())
    expected = {name: codes for name, _, codes in _commands(files, out, "http://x/v1")}
    assert set(results) == set(expected)
    for name, r in results.items():
        assert "Traceback" not in r["stderr"], f"{name}:\n{r['stderr']}"
        allowed = expected[name] if mode == "closed" else (*expected[name], BROKEN)
        assert r["code"] in allowed, f"{name} exited {r['code']}:\n{r['stderr']}"
    # the commands that write files did their work whatever happened to stdout
    for made in ("merged.json", "built.json", "caps.txt", "imgs.st", "g.json",
                 "result/summary.json", "report.html"):
        assert (out / made).is_file(), made


@pytest.mark.parametrize("mode", ["closed", "pipe"])
def test_interpreter_exit_is_quiet_with_a_broken_stdout(mode: str, tmp_path: Path) -> None:
    """Through the real exit path: no 'Exception ignored ... BrokenPipeError' either."""
    from kec.knowledge import save_knowledge
    from tests.knowledge.docs import make_doc

    k = tmp_path / "k.json"
    save_knowledge(make_doc({f"concept {i}": ([f"label {i}"], [f"attribute {i}"])
                             for i in range(300)}, []), k)
    cmd = [sys.executable, "-m", "kec.cli.main", "knowledge", "show", str(k)]
    if mode == "closed":
        proc = subprocess.run(cmd, env=_env(), stderr=subprocess.PIPE, text=True,
                              timeout=120, preexec_fn=_close_fd1)
    else:
        r, w = os.pipe()
        os.close(r)
        try:
            proc = subprocess.run(cmd, env=_env(), stdout=w, stderr=subprocess.PIPE,
                                  text=True, timeout=120)
        finally:
            os.close(w)
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, \
        proc.stderr
    assert proc.returncode == (0 if mode == "closed" else BROKEN)


if __name__ == "__main__":  # the child of test_every_command_survives_...
    _child(*sys.argv[1:5])
