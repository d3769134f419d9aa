"""``--help`` of every command: each option explained, each default stated once and truly."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kec.cli._common import HelpFormatter, backend_names, use_formatter
from kec.cli.main import build_parser

#: Arguments of argparse's own that carry no help of ours.
_OWN = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)


def _parsers(parser: argparse.ArgumentParser, path: str = "kec"
             ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``("kec knowledge build", parser)`` for the main parser and every sub-command."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


PARSERS = dict(_parsers(build_parser()))


def _help_of(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help line of ``action`` as ``--help`` prints it (defaults expanded)."""
    formatter = parser._get_formatter()
    return formatter._expand_help(action) if action.help else ""


def test_the_walk_reaches_every_command():
    assert {"kec", "kec cluster", "kec scaffold", "kec knowledge build",
            "kec knowledge validate", "kec knowledge show", "kec embed images",
            "kec embed texts", "kec vocab wordnet", "kec bench", "kec report"} <= set(PARSERS)


@pytest.mark.parametrize("path", sorted(PARSERS))
def test_every_option_and_sub_command_has_help(path):
    parser = PARSERS[path]
    missing = [a.dest for a in parser._actions
               if not isinstance(a, _OWN) and not (a.help or "").strip()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            missing += [c.dest for c in action._choices_actions if not (c.help or "").strip()]
    assert not missing, f"{path}: no help for {missing}"


@pytest.mark.parametrize("path", sorted(PARSERS))
def test_help_shows_no_none_default_no_python_tuple_and_each_default_once(path):
    parser = PARSERS[path]
    text = parser.format_help()
    for bad in ("(default: None)", "(default: False)", "(default: True)", "('", "['"):
        assert bad not in text, f"{path}: {bad!r} in --help"
    for action in parser._actions:
        line = _help_of(parser, action)
        assert line.count("(default:") <= 1, f"{path} {action.dest}: {line!r}"
        if action.required:
            assert "(default:" not in line, f"{path} {action.dest}: {line!r}"


def test_required_options_and_flags_state_no_default():
    line = _help_of(PARSERS["kec cluster"], _action(PARSERS["kec cluster"], "--out"))
    assert line == "result folder to write"
    report = PARSERS["kec report"]
    assert _help_of(report, _action(report, "--out")) == "HTML file to write"
    assert _help_of(report, _action(report, "--features")).count("default") == 1
    build = PARSERS["kec knowledge build"]
    assert _help_of(build, _action(build, "--temperature")).endswith("(default: 0.0)")
    assert "(default:" not in _help_of(build, _action(build, "--no-cache"))


def test_methods_default_is_comma_separated_as_typed():
    bench = PARSERS["kec bench"]
    line = _help_of(bench, _action(bench, "--methods"))
    assert line.endswith("(default: kmeans,tac,kec,cae,kec+cae)")


def _action(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


def _formatted(**kwargs) -> str:
    """The help of one option ``--x`` made with ``kwargs``, under :class:`HelpFormatter`."""
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--x", **kwargs)
    use_formatter(parser)
    return _help_of(parser, _action(parser, "--x"))


@given(st.lists(st.integers(-5, 5) | st.text("ab,", min_size=1), min_size=1, max_size=4),
       st.sampled_from([tuple, list]))
def test_sequence_defaults_print_as_the_comma_list_they_are_typed_as(items, kind):
    line = _formatted(default=kind(items), help="values")
    assert line == f"values (default: {','.join(map(str, items))})"


@given(st.one_of(st.integers(), st.floats(allow_nan=False), st.text("abc%/ ", min_size=1)))
def test_a_scalar_default_is_printed_once_as_is(value):
    assert _formatted(default=value, help="h") == f"h (default: {value})"
    assert _formatted(default=value, help="h, by default v") == "h, by default v"
    assert _formatted(default=value, help="h", required=True) == "h"


def test_none_and_flag_defaults_are_not_printed():
    assert _formatted(default=None, help="h") == "h"
    assert _formatted(action="store_true", help="h") == "h"
    assert _formatted(action="count", default=0, help="h") == "h"


def test_sub_command_parsers_get_the_formatter():
    parser = build_parser()
    assert all(p.formatter_class is HelpFormatter for _, p in _parsers(parser))


def test_backend_choices_are_the_backend_registry():
    from kec.backends import available_backends

    assert backend_names() == sorted(available_backends())
    assert _action(PARSERS["kec knowledge build"], "--backend").choices == backend_names()
    assert _action(PARSERS["kec bench"], "--backend").choices == backend_names()


def test_parser_defaults_are_the_library_defaults():
    """The parsers read defaults from the numpy-free registry; they must equal the
    constants the clustering math uses."""
    from kec.cluster.clusterers import CLUSTERERS
    from kec.cluster.grounding import DEFAULT_TEMPERATURE
    from kec.cluster.methods import METHOD_NAMES
    from kec.cluster.ot import DEFAULT_REG
    from kec.cluster.scaffold import SELECTION_TEMPERATURE

    cluster = PARSERS["kec cluster"]
    assert tuple(_action(cluster, "--method").choices) == METHOD_NAMES
    assert tuple(_action(cluster, "--clusterer").choices) == CLUSTERERS
    # method flags are derived from the registry: unset (None) unless given, the declared
    # default stated in the help
    assert _action(cluster, "--temperature").default is None
    assert f"(default: {DEFAULT_TEMPERATURE})" in _action(cluster, "--temperature").help
    assert f"(default: {DEFAULT_REG})" in _action(cluster, "--reg").help
    scaffold = PARSERS["kec scaffold"]
    assert _action(scaffold, "--temperature").default == SELECTION_TEMPERATURE


def test_llm_cache_help_names_the_real_default(monkeypatch, tmp_path):
    from kec.backends.cache import default_cache_dir
    from kec.cli._common import LLM_CACHE_HELP

    monkeypatch.delenv("KEC_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    shown = re.search(r"else (~/\S+)\)$", LLM_CACHE_HELP).group(1)
    assert default_cache_dir() == tmp_path / shown.removeprefix("~/")
    monkeypatch.setenv("KEC_CACHE_DIR", str(tmp_path / "k"))
    assert "$KEC_CACHE_DIR/llm" in LLM_CACHE_HELP
    assert default_cache_dir() == tmp_path / "k" / "llm"
