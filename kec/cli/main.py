"""Entry point of the ``kec`` command.

Each command group lives in its own module exposing ``register(subparsers)``; a
handler takes the parsed ``argparse.Namespace`` and returns an exit code. Errors the
user can fix are :class:`kec.errors.KecError`: they print one line (no traceback) and
exit non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from kec import __version__
from kec.errors import KecError

COMMAND_MODULES = (
    "kec.cli.knowledge",
    "kec.cli.embed",
    "kec.cli.vocab",
    "kec.cli.scaffold",
    "kec.cli.cluster",
    "kec.cli.bench",
    "kec.cli.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kec",
        description="Knowledge-enhanced image clustering: build LLM knowledge, cluster images.",
    )
    parser.add_argument("--version", action="version", version=f"kec {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log decisions (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KecError as exc:
        print(f"kec: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kec: interrupted; completed work is cached, run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
