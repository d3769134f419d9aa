"""FOLDOC reader: the dictd format, subject tags, cleaning and sampling."""

from __future__ import annotations

import gzip

import pytest

from kec.datasets.base import DatasetError
from kec.datasets.foldoc import (
    _B64,
    clean_definition,
    foldoc_available,
    load_foldoc,
    read_entries,
)


def _b64(n: int) -> str:
    out = ""
    while True:
        out = _B64[n % 64] + out
        n //= 64
        if n == 0:
            return out


def write_dictd(folder, entries):
    """A real dictd pair (``foldoc.dict.dz`` gzip + ``foldoc.index``) from (head, body)."""
    data, index = b"", []
    for head, body in entries:
        text = f"{head}\n\n   {body}\n\n   (2001-01-01)\n\n".encode()
        index.append(f"{head}\t{_b64(len(data))}\t{_b64(len(text))}")
        data += text
    with gzip.open(folder / "foldoc.dict.dz", "wb") as fh:
        fh.write(data)
    (folder / "foldoc.index").write_text("\n".join(index) + "\n")
    return folder


def test_entries_keep_the_subject_and_the_first_paragraph(tmp_path):
    write_dictd(tmp_path, [
        ("TCP", "<networking, protocol> {Transmission Control Protocol (http://x.org)}. "
                "A reliable {stream} protocol."),
        ("grep", "<tool> Searches files for lines matching a {regular expression}."),
        ("nothing", "No subject here at all, so this entry is skipped."),
    ])
    entries = {e.headword: e for e in read_entries(tmp_path)}
    assert set(entries) == {"TCP", "grep"}
    assert entries["TCP"].subjects == ("networking", "protocol")
    assert entries["TCP"].text == "Transmission Control Protocol. A reliable stream protocol."
    assert entries["grep"].text == "Searches files for lines matching a regular expression."


def test_sampling_uses_single_subject_entries_and_is_seeded(tmp_path):
    rows = [(f"net{i}", f"<networking> Network thing number {i} with packets.")
            for i in range(8)]
    rows += [(f"db{i}", f"<database> Database thing number {i} with tables.")
             for i in range(8)]
    rows += [("both", "<networking, database> Belongs to two subjects, so never used.")]
    write_dictd(tmp_path, rows)
    a = load_foldoc(per_class=5, subjects=("networking", "database"), directory=tmp_path)
    b = load_foldoc(per_class=5, subjects=("networking", "database"), directory=tmp_path)
    assert a.texts == b.texts and len(a) == 10 and "both" not in a.ids
    assert a.labels == ["networking"] * 5 + ["database"] * 5
    assert all(h.startswith("net") for h in a.ids[:5])
    with pytest.raises(DatasetError, match="fewer than per_class"):
        load_foldoc(per_class=9, subjects=("networking",), directory=tmp_path)


def test_missing_or_broken_dictionary_is_a_clear_error(tmp_path):
    assert not foldoc_available(tmp_path)
    with pytest.raises(DatasetError, match="dict-foldoc"):
        read_entries(tmp_path)
    (tmp_path / "foldoc.dict.dz").write_bytes(b"not gzip")
    (tmp_path / "foldoc.index").write_text("a\tB\tC\n")
    with pytest.raises(DatasetError, match="cannot read"):
        read_entries(tmp_path)


def test_long_definitions_are_cut_at_a_sentence_end():
    text = "First sentence is here. " * 30
    out = clean_definition(text, max_chars=100)
    assert len(out) <= 100 and out.endswith(".")


def test_the_installed_dictionary_gives_the_default_collection():
    if not foldoc_available():
        pytest.skip("Debian dict-foldoc is not installed")
    col = load_foldoc()
    assert len(col) == 14 * 50 and len(set(col.labels)) == 14
    assert all(20 <= len(t) <= 300 for t in col.texts)
    assert col.info["edition"] != "unknown"
