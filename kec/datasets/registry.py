"""The dataset registry (``registry.json``) and the class-list data files it points to."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from kec.datasets.base import DatasetError


@cache
def available_datasets() -> dict[str, dict[str, Any]]:
    """The registry: name -> entry (title, loader, splits, default split, needs, ...)."""
    text = files("kec.datasets").joinpath("registry.json").read_text("utf-8")
    return json.loads(text)


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(available_datasets())


def resolve_name(name: str) -> str:
    """The registry name for ``name`` or one of its aliases (case-insensitive)."""
    key = name.strip().lower().replace(" ", "-")
    registry = available_datasets()
    if key in registry:
        return key
    for canonical, entry in registry.items():
        if key in (a.lower() for a in entry.get("aliases", [])):
            return canonical
    raise DatasetError(f"unknown dataset {name!r}; choose one of: {', '.join(list_datasets())}")


def dataset_info(name: str) -> dict[str, Any]:
    """A copy of the registry entry of ``name`` (aliases accepted), with its ``name``."""
    canonical = resolve_name(name)
    return dict(available_datasets()[canonical], name=canonical)


@cache
def class_list(filename: str) -> dict[str, Any]:
    """A class-list data file shipped in ``kec/datasets/data`` (parsed JSON)."""
    path = files("kec.datasets").joinpath("data", filename)
    if not path.is_file():
        raise DatasetError(f"kec ships no class list {filename!r}")
    return json.loads(path.read_text("utf-8"))


def cifar100_fine_to_coarse() -> tuple[list[str], list[str], list[int]]:
    """CIFAR-100 fine class names, the 20 superclass names, and fine index -> superclass.

    Fine names are CIFAR-100's (``"aquarium_fish"``), in its label order; superclass
    names are readable (``"aquatic mammals"``), in the order of CIFAR-100's
    ``coarse_labels``.
    """
    data = class_list("cifar100_coarse.json")
    return (list(data["fine_classes"]), [s["name"] for s in data["superclasses"]],
            [int(c) for c in data["fine_to_coarse"]])
