"""``python -m kec``: the ``kec`` command (for environments without the console script)."""

from kec.cli.main import main

raise SystemExit(main())
