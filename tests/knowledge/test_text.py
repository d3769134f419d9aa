import pytest

from kec.knowledge.labels import (
    MAX_LABEL_CHARS,
    LabelError,
    clean_label,
    read_labels,
    unique_labels,
)
from kec.knowledge.text import dedup_attributes, normalize_attribute


def test_normalize_attribute():
    assert normalize_attribute("  - Pointed   ears. ") == "Pointed ears"
    assert normalize_attribute('"striped fur";') == "striped fur"
    assert normalize_attribute("2) long tail") == "long tail"


def test_dedup_is_case_and_punctuation_insensitive_and_limited():
    items = ["Long tail.", "long tail", "LONG TAIL!", "", "  ", "short legs", "wings"]
    assert dedup_attributes(items) == ["Long tail", "short legs", "wings"]
    assert dedup_attributes(items, limit=2) == ["Long tail", "short legs"]


def test_labels_are_cleaned_and_deduplicated():
    assert clean_label("golden_retriever ") == "golden retriever"
    assert unique_labels(["Cat", "cat", " dog", "", "dog"]) == ["Cat", "dog"]


# -- issue 9 items 13 and 14: Unicode and length ----------------------------------------


def test_format_characters_are_stripped_so_variants_merge():
    assert clean_label("cat\u200b") == "cat"
    assert clean_label("\u200fdog\u200e") == "dog"
    assert clean_label("\ufeffhorse") == "horse"
    assert clean_label("ﬁsh") == "fish"  # NFKC: the ligature
    assert unique_labels(["cat", "cat\u200b", "c\u200dat"]) == ["cat"]
    assert clean_label("sea\x00lion") == "sea lion"


@pytest.mark.parametrize("raw", ["\x00", "\u200b", "\u200f\u200e", "\x00\u200b\ufeff"])
def test_labels_empty_after_cleaning_are_rejected(raw):
    with pytest.raises(LabelError, match="empty once control and format"):
        unique_labels(["cat", raw])


def test_overlong_and_non_string_labels_are_rejected():
    with pytest.raises(LabelError, match=f"longer than {MAX_LABEL_CHARS}"):
        unique_labels(["x" * (MAX_LABEL_CHARS + 1)])
    assert unique_labels(["x" * MAX_LABEL_CHARS]) == ["x" * MAX_LABEL_CHARS]
    with pytest.raises(LabelError, match="must be a string"):
        unique_labels(["cat", None])


def test_label_file_errors_name_the_line(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text("cat\n# comment\n\u200b\u200b\n", encoding="utf-8")
    with pytest.raises(LabelError, match=r"l.txt: line 3: .*empty"):
        read_labels(p)
    p.write_text("cat\n" + "y" * 1_000_000 + "\n", encoding="utf-8")
    with pytest.raises(LabelError, match=r"line 2: label of 1000000 characters"):
        read_labels(p)
