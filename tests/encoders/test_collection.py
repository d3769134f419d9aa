"""Text collections: one line is one item, whatever Unicode calls a line break; resumable
encoding gives the rows of an uninterrupted run."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kec.encoders.checkpoint import EmbeddingCheckpoint
from kec.encoders.collection import (
    CollectionError,
    encode_collection,
    parse_collection,
    read_collection,
    text_sha256,
)

#: what str.splitlines() splits on besides \n and \r (issue 17 item 3)
OTHER_BREAKS = ["\f", "\v", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("sep", OTHER_BREAKS, ids=repr)
def test_a_line_holding_another_unicode_break_is_one_item(sep):
    col = parse_collection(f"first\nlogin{sep}fails\tSW\nthird\tHW\n".replace("first", "a\tHW"))
    assert col.texts == ["a", "login fails", "third"]
    assert col.ids == ["1:a", "2:login fails", "3:third"]  # ids keep their line numbers
    assert col.labels == ["HW", "SW", "HW"]


def test_crlf_and_lf_files_read_the_same():
    lf = parse_collection("printer jams\tHW\n\nreset password\tSW\n")
    crlf = parse_collection("printer jams\tHW\r\n\r\nreset password\tSW\r\n")
    assert (crlf.ids, crlf.texts, crlf.labels) == (lf.ids, lf.texts, lf.labels)
    assert crlf.labels == ["HW", "SW"]  # no "\r" left on the last field


line = st.text(alphabet=st.characters(blacklist_characters="\n\t\r",
                                      blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(line, min_size=1, max_size=20), st.booleans())
def test_items_are_the_newline_separated_lines(lines, crlf):
    """The law: item k comes from line k of the file (``\\n``-numbered), for any text."""
    text = "".join(x + ("\r\n" if crlf else "\n") for x in lines)
    kept = [(n, " ".join(x.split())) for n, x in enumerate(lines, start=1) if x.split()]
    if not kept:
        with pytest.raises(CollectionError, match="holds no items"):
            parse_collection(text)
        return
    col = parse_collection(text)
    assert col.texts == [t for _, t in kept]
    assert [i.split(":", 1)[0] for i in col.ids] == [str(n) for n, _ in kept]


def test_a_second_tab_is_refused_naming_the_line():
    with pytest.raises(CollectionError, match=r"c\.txt:2: 3 TAB-separated fields"):
        parse_collection("ok\tA\nprinter\tjams\tHW\nfine\tB\n", "c.txt")


def test_every_line_with_extra_tabs_is_counted():
    text = "".join(f"t{i}\ta\tb\n" for i in range(7))
    with pytest.raises(CollectionError, match=r":1: .*7 such lines: 1, 2, 3, 4, 5, \.\.\."):
        parse_collection(text, "c.txt")


@pytest.mark.parametrize("text, message", [
    ("a\t\n", "empty label after the TAB"),
    ("a\tx\nb\n", "1 items have a label and 1 do not"),
    ("\n  \n", "holds no items"),
])
def test_bad_collections(text, message):
    with pytest.raises(CollectionError, match=message):
        parse_collection(text)


def test_read_collection_decodes_utf8_with_a_bom_and_refuses_other_bytes(tmp_path):
    good = tmp_path / "c.txt"
    good.write_bytes("\ufeffcafé\n".encode())
    assert read_collection(good).texts == ["café"]
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(CollectionError, match="not UTF-8"):
        read_collection(bad)
    with pytest.raises(CollectionError, match="cannot read"):
        read_collection(tmp_path / "missing.txt")


class Recording:
    """A real encoder wrapped to count the texts it encodes (and to be interrupted:
    Ctrl-C on call number ``stop_at``)."""

    def __init__(self, encoder, batch_size, stop_at=None):
        self.inner, self.batch_size, self.dim = encoder, batch_size, encoder.dim
        self.stop_at = stop_at
        self.calls: list[int] = []

    def encode(self, texts):
        if self.stop_at is not None and len(self.calls) + 1 == self.stop_at:
            raise KeyboardInterrupt
        self.calls.append(len(texts))
        return self.inner.encode(texts)


TEXTS = [f"ticket {i}: {'printer jams' if i % 3 else 'login fails after update'} "
         f"{'again ' * (i % 5)}" for i in range(23)]
IDS = [f"{i + 1}:{t}" for i, t in enumerate(TEXTS)]


def test_a_resumed_encode_equals_an_uninterrupted_one(tmp_path, minilm):
    whole = encode_collection(Recording(minilm, 5), IDS, TEXTS)

    enc = Recording(minilm, 5, stop_at=3)
    ckpt = EmbeddingCheckpoint(tmp_path / "c.partial", minilm.describe(), flush_every=5)
    with pytest.raises(KeyboardInterrupt):
        encode_collection(enc, IDS, TEXTS, checkpoint=ckpt)
    assert len(ckpt) == 10

    enc = Recording(minilm, 5)
    ckpt = EmbeddingCheckpoint(tmp_path / "c.partial", minilm.describe(), flush_every=5)
    assert ckpt.resumed == 10
    resumed = encode_collection(enc, IDS, TEXTS, checkpoint=ckpt)
    assert enc.calls == [5, 5, 3]  # blocks 3-5 only, with the uninterrupted boundaries
    np.testing.assert_array_equal(resumed, whole)


def test_a_changed_line_is_encoded_again(tmp_path, minilm):
    ckpt = EmbeddingCheckpoint(tmp_path / "c.partial", minilm.describe())
    encode_collection(Recording(minilm, 8), IDS, TEXTS, checkpoint=ckpt)
    texts = list(TEXTS)
    texts[4] = "a different text on line 5"
    enc = Recording(minilm, 8)
    out = encode_collection(enc, IDS, texts, checkpoint=ckpt)
    assert enc.calls == [1]
    assert ckpt.get(IDS[4], text_sha256(texts[4])) is not None
    np.testing.assert_array_equal(out[4], minilm.encode([texts[4]])[0])
