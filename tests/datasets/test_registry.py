"""The dataset registry, the shipped class lists and the published numbers are consistent."""

from __future__ import annotations

import pytest

from kec.datasets import (
    DatasetError,
    available_datasets,
    cifar100_fine_to_coarse,
    class_list,
    dataset_info,
    list_datasets,
    published_results,
    published_sources,
    resolve_name,
)

PAPER_DATASETS = {"cifar10", "cifar20", "cifar100", "stl10", "imagenet10", "imagenet-dogs",
                  "imagenet", "dtd", "pets", "flowers102", "ucf101", "mnist"}


def test_every_paper_dataset_is_registered_with_what_it_needs():
    names = set(list_datasets())
    assert PAPER_DATASETS | {"synthetic"} == names
    for name, entry in available_datasets().items():
        assert entry["default_split"] in entry["splits"], name
        assert entry["num_classes"] > 0 and entry["over_clusters"] > 0, name
        assert entry["needs"] and entry["title"] and entry["over_clusters_source"], name
        assert entry["loader"] in {"torchvision", "imagenet", "imagenet_subset", "ucf101",
                                   "synthetic"}, name
        assert set(entry["images"]) <= set(entry["splits"]), name
        if entry["loader"] == "torchvision":
            assert entry["torchvision"] and entry["downloadable"], name
        else:
            assert not entry["downloadable"], name


def test_sizes_match_methods_section_5():
    sizes = {"stl10": 8000, "cifar10": 10000, "cifar20": 10000, "imagenet10": 13000,
             "imagenet-dogs": 19500, "dtd": 5640, "ucf101": 13320, "imagenet": 50000}
    overs = {"stl10": 17, "cifar10": 167, "cifar20": 167, "imagenet10": 43,
             "imagenet-dogs": 65, "dtd": 141, "ucf101": 303, "imagenet": 4271}
    for name, n in sizes.items():
        entry = dataset_info(name)
        assert entry["images"][entry["default_split"]] == n, name
        assert entry["over_clusters"] == overs[name], name


def test_aliases_and_unknown_names():
    assert resolve_name("ImageNet-1K") == "imagenet"
    assert resolve_name("imagenet_dogs") == "imagenet-dogs"
    assert resolve_name("CIFAR-20") == "cifar20"
    assert dataset_info("oxford-pets")["name"] == "pets"
    with pytest.raises(DatasetError, match="choose one of: cifar10"):
        resolve_name("cifar-11")


def test_imagenet_subsets_are_imagenet_classes():
    in1k = class_list("imagenet1k.json")["classes"]
    wnids = [c["wnid"] for c in in1k]
    assert len(wnids) == 1000 == len(set(wnids)) and wnids == sorted(wnids)
    assert in1k[0] == {"wnid": "n01440764", "name": "tench"}
    for filename, n in (("imagenet10.json", 10), ("imagenet_dogs.json", 15)):
        data = class_list(filename)
        sub = data["classes"]
        assert len(sub) == n and data["source"]
        assert all(c["wnid"] in set(wnids) for c in sub)
    ten = {c["wnid"]: c["name"] for c in class_list("imagenet10.json")["classes"]}
    assert ten["n02056570"] == "king penguin" and ten["n07747607"] == "orange"
    dogs = {c["wnid"]: c["name"] for c in class_list("imagenet_dogs.json")["classes"]}
    assert dogs["n02110958"] == "pug" and dogs["n02107142"] == "Doberman"


def test_cifar100_superclasses():
    fine, coarse, f2c = cifar100_fine_to_coarse()
    assert len(fine) == 100 and fine == sorted(fine) and len(coarse) == 20
    assert sorted(set(f2c)) == list(range(20))
    assert all(f2c.count(c) == 5 for c in range(20))
    data = class_list("cifar100_coarse.json")
    for c, sup in enumerate(data["superclasses"]):
        assert all(f2c[fine.index(f)] == c for f in sup["fine"]), sup["name"]
    # spot checks against CIFAR-100's own coarse_labels
    assert coarse[f2c[fine.index("apple")]] == "fruit and vegetables"
    assert f2c[:10] == [4, 1, 14, 8, 0, 6, 7, 7, 18, 3]
    assert coarse[f2c[fine.index("whale")]] == "aquatic mammals"


def test_published_numbers_have_sources():
    sources = published_sources()
    entries = published_results()
    assert entries
    for e in entries:
        assert e["source"] in sources
        assert e["dataset"] in PAPER_DATASETS or e.get("note")
        for metric, value in e["metrics"].items():
            assert metric in {"acc", "nmi", "ari"} and 0 <= value <= 100
    km = published_results("cifar10", "kmeans")
    assert km[0]["metrics"] == {"nmi": 70.3, "acc": 74.2, "ari": 61.6}
    tac = {e.get("variant"): e["metrics"] for e in published_results("cifar10", "tac")}
    assert tac["training-free"]["acc"] == 90.5 and tac["trained head"]["acc"] == 91.9
    assert published_results("imagenet", "kec")[0]["metrics"] == {"acc": 55.3}
    # a returned entry is a copy
    km[0]["metrics"]["acc"] = 0
    assert published_results("cifar10", "kmeans")[0]["metrics"]["acc"] == 74.2
