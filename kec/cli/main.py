"""Entry point of the ``kec`` command.

Each command group lives in its own module exposing ``register(subparsers)``; a
handler takes the parsed ``argparse.Namespace`` and returns an exit code. Registering
imports nothing heavy (numpy, scikit-learn, torch, :mod:`kec.backends`): every parser is
built for ``kec --help``, so each handler imports what it runs (see
:mod:`kec.cli._common`).

Errors the user can fix are :class:`kec.errors.KecError`: they print one line (no
traceback) and exit non-zero. So do operating-system errors (a full disk, a permission denied) and a
closed or broken stdout (``kec knowledge show K.json | head``): no command ends in a
traceback.

Exit codes: 0 success; 1 a check failed (``validate``, ``diff``, ``lint``) or an OS
error; 2 a usage or input error (:class:`~kec.errors.KecError`); 3 ``knowledge build``
finished but some LLM calls failed (:class:`~kec.errors.BuildFailuresError`, unless
``--allow-failures``); 4 the LLM endpoint is down and the circuit breaker stopped the
run (:class:`~kec.errors.EndpointDownError`; answers received are cached); 5
``kec bench wordnet-glosses`` ran but a target was not met
(:data:`kec.cli.bench.EXIT_TARGET_MISSED`, unless ``--no-check-targets``); 130
interrupted (Ctrl-C); 141 stdout was closed before the output was written. Error lines
are cut to about 1,000 characters (:func:`kec.errors.clip_lines`), whatever they quote.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from kec._version import __version__
from kec.cli._common import quiet_third_party, use_formatter
from kec.errors import KecError, clip_lines

COMMAND_MODULES = (
    "kec.cli.knowledge",
    "kec.cli.embed",
    "kec.cli.vocab",
    "kec.cli.scaffold",
    "kec.cli.cluster",
    "kec.cli.bench",
    "kec.cli.report",
)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose usage errors quote no value whole: an option given a
    100 KB value is echoed cut (:func:`kec.errors.clip_lines`). Sub-command parsers are
    made of the same class, so this holds for every command."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {clip_lines(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
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
    use_formatter(parser)
    return parser


EXIT_OS_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command killed by it

_RESUMABLE = {("knowledge", "build"): "answers received so far are cached; run the same "
                                      "command to resume"}


def _say(message: str) -> None:
    """One line on stderr, whatever state stderr is in, and never a huge one: the values
    a message quotes are cut (:func:`kec.errors.clip_lines`)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        print(clip_lines(message), file=sys.stderr)


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so that the interpreter's final flush of a broken or closed
    stdout cannot print ``Exception ignored ... BrokenPipeError`` at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def _flush_stdout() -> None:
    if sys.stdout is not None:
        sys.stdout.flush()


def _os_error_text(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    name = exc.filename
    if name is not None:
        text = f"{name}: {text}"
    if exc.filename2 is not None:
        text += f" (-> {exc.filename2})"
    return text


def _resume_hint(args: argparse.Namespace) -> str | None:
    key = (getattr(args, "command", None), getattr(args, "knowledge_command", None))
    return _RESUMABLE.get(key)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "quiet", False):
        quiet_third_party()
    try:
        code = int(args.func(args) or 0)
        _flush_stdout()
        return code
    except KecError as exc:
        _say(f"kec: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        hint = _resume_hint(args)
        _say("kec: interrupted" + (f"; {hint}" if hint else ""))
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if exc.errno in (errno.EPIPE, errno.EBADF) and _stdout_broken():
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        _say(f"kec: error: {_os_error_text(exc)}")
        return EXIT_OS_ERROR
    except MemoryError:
        _say("kec: error: out of memory (try a smaller batch, fewer images, or a machine "
             "with more memory)")
        return EXIT_OS_ERROR


def _stdout_broken() -> bool:
    """Whether writing to stdout fails (closed or a pipe nobody reads)."""
    if sys.stdout is None:
        return True
    try:
        sys.stdout.flush()
        os.fstat(sys.stdout.fileno())
    except (OSError, ValueError):
        return True
    return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
