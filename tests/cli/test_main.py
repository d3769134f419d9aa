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
