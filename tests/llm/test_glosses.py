"""WordNet glosses as the honest fallback text of a concept."""

from __future__ import annotations

from pathlib import Path

import pytest

from kec.llm.glosses import gloss_attributes, gloss_description

pytestmark = pytest.mark.skipif(
    not Path("/usr/share/wordnet/data.noun").is_file(),
    reason="needs Debian's WordNet 3.0 (apt-get install wordnet-base wordnet-sense-index)")


@pytest.fixture(scope="module")
def wordnet():
    from kec.vocab import load_wordnet

    return load_wordnet()


def test_one_label_is_described_by_its_gloss(wordnet):
    assert gloss_description(["sports car"], wordnet) == (
        "a small low car with a high-powered engine; usually seats two persons",
        ["sports_car.n.01"])
    assert gloss_attributes(["sports car"], wordnet, 2) == (
        ["a small low car with a high-powered engine", "usually seats two persons"],
        ["sports_car.n.01"])


def test_a_group_reads_the_sense_of_its_kind(wordnet):
    text, synsets = gloss_description(["pickup truck", "lorry"], wordnet)
    assert synsets == ["pickup.n.01", "lorry.n.02"]  # the truck, not the horse-drawn wagon
    assert text.startswith("pickup truck: a light truck") and "lorry: a large truck" in text


def test_unknown_labels_give_nothing(wordnet):
    assert gloss_description(["the best {label}"], wordnet) == ("", [])
    assert gloss_attributes(["the best {label}"], wordnet, 2) == ([], [])
    assert gloss_attributes(["sports car"], wordnet, 0) == ([], [])
