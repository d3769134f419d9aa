"""``kec.encoders`` exports: every name resolves, and importing is cheap."""

from __future__ import annotations

import subprocess
import sys

import kec.encoders


def test_every_exported_name_resolves_to_its_definition():
    assert sorted(kec.encoders.__all__) == sorted(kec.encoders._WHERE)
    for name in kec.encoders.__all__:
        value = getattr(kec.encoders, name)
        module = getattr(value, "__module__", None)
        if module is not None and module.startswith("kec.encoders."):
            assert module == f"kec.encoders.{kec.encoders._WHERE[name]}", name
    assert "create_text_encoder" in dir(kec.encoders)


def test_importing_the_package_and_the_embed_cli_loads_no_numpy_or_torch():
    code = ("import sys, kec.encoders, kec.cli.embed; "
            "print(sorted(m for m in ('numpy', 'torch', 'open_clip') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
