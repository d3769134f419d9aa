"""Prompt sets by knowledge kind (issue 16.7): images ask how things look in photos, a text
collection's items what texts are about; each template has its own id (the cache key)."""

from __future__ import annotations

import re

import pytest

from kec.prompts import (
    BUILTIN_PROMPTS,
    KNOWLEDGE_KINDS,
    PROMPT_ROLES,
    PROMPT_SETS,
    PromptError,
    load_prompt,
    prompt_ids,
    prompt_role,
)

_VISUAL = re.compile(r"\b(photo|photos|visible|visual|look|looks|seen|image|images|viewpoint)\b",
                     re.IGNORECASE)


def test_the_registry_maps_each_kind_and_role_to_its_own_template():
    assert KNOWLEDGE_KINDS == ("images", "items")
    for kind in KNOWLEDGE_KINDS:
        assert tuple(prompt_ids(kind)) == PROMPT_ROLES
    images, items = prompt_ids("images"), prompt_ids("items")
    assert dict(images) == {r: r for r in PROMPT_ROLES}  # the ids cached answers carry
    assert not set(images.values()) & set(items.values())  # items: ids of their own
    assert set(BUILTIN_PROMPTS) == set(images.values()) | set(items.values())
    for role in PROMPT_ROLES:
        assert prompt_role(items[role]) == role and prompt_role(role) == role
    with pytest.raises(PromptError, match="knowledge kind must be one of images, items"):
        prompt_ids("videos")
    with pytest.raises(TypeError):
        PROMPT_SETS["items"]["condense"] = "x"  # a read-only table


@pytest.mark.parametrize("role", PROMPT_ROLES)
def test_item_prompts_ask_about_content_not_photos(role):
    item = load_prompt(prompt_ids("items")[role])
    image = load_prompt(prompt_ids("images")[role])
    text = " ".join(m["content"] for m in item.messages)
    assert not _VISUAL.search(text), _VISUAL.search(text)
    assert re.search(r"\btexts?\b", text)
    assert _VISUAL.search(" ".join(m["content"] for m in image.messages))
    # same variables and answer keys: the builder asks both the same way
    assert item.variables == image.variables
    assert set(item.response_schema["required"]) == set(image.response_schema["required"])
    assert item.sha256 != image.sha256 and item.id != image.id


def test_a_user_template_overrides_an_item_prompt_by_its_id(tmp_path):
    data = load_prompt("condense_items").to_dict()
    data["messages"][1]["content"] = "Name the tickets {{labels}}. Answer as JSON."
    (tmp_path / "condense_items.json").write_text(__import__("json").dumps(data))
    assert load_prompt("condense_items", tmp_path).messages[1]["content"].startswith("Name")
    assert load_prompt("condense", tmp_path).source == "builtin"
