"""What the command parsers share, importable without any heavy layer.

``kec --help`` builds every parser, so nothing here (or in a command module's top level)
may import numpy, scikit-learn, torch or :mod:`kec.backends`: choices and defaults come
from plain data (the backend registry file, :mod:`kec.cluster.registry`,
:mod:`kec.encoders.defaults`), and each command imports what it runs inside its function.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from functools import cache
from importlib.resources import files
from typing import Any

#: ``--cache-dir`` help of the LLM answer cache (:func:`kec.backends.cache.default_cache_dir`,
#: stated here so that the parser need not import :mod:`kec.backends`).
LLM_CACHE_HELP = ("LLM answer cache (default: $KEC_CACHE_DIR/llm, else "
                  "$XDG_CACHE_HOME/kec/llm, else ~/.cache/kec/llm)")


def seed_arg(text: str) -> int:
    """``--seed``: an integer in ``[0, 2**32 - 1]`` (:data:`kec.cluster._checks.MAX_SEED`),
    refused at parse time otherwise, before any work."""
    from kec.cluster._checks import MAX_SEED  # numpy: only once a seed is parsed

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed must be in [0, {MAX_SEED}], got {value}")
    return value


def seeds_arg(text: str) -> tuple[int, ...]:
    """``--seeds``: comma-separated seeds, each as :func:`seed_arg` takes it."""
    return tuple(seed_arg(x.strip()) for x in text.split(",") if x.strip())


def positive_int(text: str) -> int:
    """An integer >= 1 (counts and sizes: ``--batch-size``, ``--per-class``...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def quiet_third_party() -> None:
    """Silence the progress bars other libraries draw (``--quiet``): transformers'
    "Loading weights" bar and huggingface_hub's, whether or not they are imported yet.

    Sets ``HF_HUB_DISABLE_PROGRESS_BARS=1`` for this process (read when transformers is
    imported) and switches the bars off in the modules already loaded.
    """
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


@cache
def backend_names() -> list[str]:
    """Names of the LLM backends, sorted, read from ``kec/backends/registry.json``.

    The same file :func:`kec.backends.available_backends` reads, opened as a resource of
    the ``kec`` package so that :mod:`kec.backends` is not imported.
    """
    text = files("kec").joinpath("backends", "registry.json").read_text("utf-8")
    return sorted(json.loads(text))


class HelpFormatter(argparse.HelpFormatter):
    """Help that states each option's default once, and only when there is one.

    ``(default: X)`` is appended to an option's help unless the help already speaks of a
    default, the option is required, a flag (``store_true``, ``count``...), a positional
    argument, or its default is ``None``. Tuple and list defaults print as ``a,b,c`` (the
    form the option takes), never as a Python tuple.
    """

    _NO_DEFAULT = (argparse._StoreTrueAction, argparse._StoreFalseAction,
                   argparse._CountAction, argparse._StoreConstAction, argparse._HelpAction,
                   argparse._VersionAction, argparse._SubParsersAction)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default: Any = action.default
        if ("default" in text.lower() or action.required or not action.option_strings
                or isinstance(action, self._NO_DEFAULT)
                or default is None or default is argparse.SUPPRESS):
            return text
        if isinstance(default, (tuple, list)):
            shown = ",".join(str(x) for x in default).replace("%", "%%")
        else:
            shown = "%(default)s"
        return f"{text} (default: {shown})" if text else f"default: {shown}"


def use_formatter(parser: argparse.ArgumentParser,
                  formatter: type[argparse.HelpFormatter] = HelpFormatter) -> None:
    """Give ``parser`` and every sub-command parser below it ``formatter``."""
    parser.formatter_class = formatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                use_formatter(sub, formatter)
