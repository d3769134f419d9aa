from __future__ import annotations

import json

import pytest

from kec.encoders.templates import (
    TemplateError,
    TemplateSet,
    list_template_sets,
    resolve_templates,
)

TAC = [
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
]


def test_tac_is_the_default_registry_set_with_the_papers_seven_templates():
    assert "tac" in list_template_sets()
    tset = resolve_templates("tac")
    assert list(tset.templates) == TAC
    assert tset.fill("dog")[4] == "a dog in a video game."


@pytest.mark.parametrize("spec", [None, "none", ["{}"]])
def test_no_templates_means_raw_text(spec):
    assert resolve_templates(spec) is None


def test_fill_does_not_interpret_braces_in_the_text():
    tset = resolve_templates(["a photo of {}."])
    assert tset.fill("{0} {name}") == ["a photo of {0} {name}."]


def test_template_files_json_and_text(tmp_path):
    j = tmp_path / "t.json"
    j.write_text(json.dumps({"templates": ["a {}.", "the {}!"]}))
    t = tmp_path / "t.txt"
    t.write_text("a {}.\n\n  the {}!  \n")
    for path in (j, t):
        tset = resolve_templates(str(path))
        assert isinstance(tset, TemplateSet)
        assert tset.templates == ("a {}.", "the {}!")
        assert tset.name == str(path)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("no-such-set", "unknown template set"),
        (["a photo."], "exactly once"),
        (["{} and {}"], "exactly once"),
        ([], "non-empty"),
    ],
)
def test_bad_templates_are_clear_errors(spec, match):
    with pytest.raises(TemplateError, match=match):
        resolve_templates(spec)


def test_bad_json_template_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TemplateError, match="not valid JSON"):
        resolve_templates(str(bad))
