from kec.knowledge.labels import clean_label, unique_labels
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
