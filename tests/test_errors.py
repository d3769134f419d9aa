"""The error types and the one place that keeps quoted values short."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kec.errors import (
    MAX_QUOTED_CHARS,
    InputNotFoundError,
    KecError,
    clip_lines,
    quoted,
    shorten,
)


@given(st.text(max_size=600), st.integers(1, 300))
def test_shorten_keeps_short_text_and_cuts_long_text_with_its_length(text, limit):
    out = shorten(text, limit)
    if len(text) <= limit:
        assert out == text
    else:
        assert out.startswith(text[:limit]) and out.endswith(f"({len(text):,} characters)")
        assert len(out) <= limit + len(f"… ({len(text):,} characters)")


@given(st.text(max_size=600))
def test_quoted_is_a_repr_of_at_most_the_limit(text):
    out = quoted(text)
    if len(text) <= MAX_QUOTED_CHARS:
        assert out == repr(text)
    else:
        assert out.startswith(repr(text[:MAX_QUOTED_CHARS])) and "characters)" in out


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\n"), max_size=3000),
                min_size=1, max_size=4))
def test_clip_lines_bounds_every_line_and_keeps_both_ends(lines):
    out = clip_lines("\n".join(lines), limit=200).split("\n")
    assert len(out) == len(lines)
    for before, after in zip(lines, out):
        assert len(after) <= 240
        if len(before) > 200:
            assert after.startswith(before[:80]) and after.endswith(before[-80:])
        else:
            assert after == before


def test_input_not_found_is_caught_by_both_excepts():
    with pytest.raises(FileNotFoundError):
        raise InputNotFoundError("k.json: no such file")
    with pytest.raises(KecError):
        raise InputNotFoundError("k.json: no such file")
    assert InputNotFoundError.exit_code == 2
