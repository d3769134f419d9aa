"""``kec.build_knowledge``: the one way to build, with the command line's default cache."""

import json

import pytest

import kec
from kec.cli.main import main
from kec.errors import KecError
from kec.knowledge import load_knowledge
from tests.servers import FaultServer

GROUPS = [["cat", "kitten"], ["dog", "puppy"], ["ship", "boat"]]


def _build(base_url, **kwargs):
    return kec.build_knowledge(
        groups=GROUPS, backend="openai",
        backend_options={"model": "fault-model", "base_url": base_url, "timeout": 5,
                         "max_retries": 1},
        params={"max_pairs_per_concept": 0}, **kwargs)


def test_build_knowledge_shares_the_command_lines_default_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KEC_CACHE_DIR", str(tmp_path / "cache"))
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"groups": [{"labels": g} for g in GROUPS]}))
    with FaultServer() as fs:
        doc = _build(fs.base_url)
        full = fs.count
        assert full == 3 * len(GROUPS)  # condense + attributes + captions per concept
        assert doc["provenance"]["usage"]["calls"] == full
        assert list((tmp_path / "cache" / "llm").rglob("*.json")), "the default cache"
        # the command line, with no --cache-dir, reads what the API wrote: no request
        out = tmp_path / "k.json"
        assert main(["knowledge", "build", "--groups", str(groups), "--out", str(out),
                     "--backend", "openai", "--model", "fault-model", "--base-url",
                     fs.base_url, "--max-pairs", "0", "--quiet"]) == 0
        assert fs.count == full
        assert load_knowledge(out)["concepts"] == doc["concepts"]
        # and the API reads it again; cache=False asks the server again
        assert _build(fs.base_url)["provenance"]["usage"]["calls"] == 0
        assert fs.count == full
        _build(fs.base_url, cache=False)
        assert fs.count == 2 * full


def test_build_knowledge_takes_labels_or_groups(tmp_path):
    with pytest.raises(KecError, match=r"give labels=\.\.\. or groups=\.\.\."):
        kec.build_knowledge()
    with pytest.raises(KecError, match="one of them"):
        kec.build_knowledge(["cat"], groups=[["dog"]])
    with pytest.raises(KecError, match="max_tokens must be >= 1"):
        kec.build_knowledge(["cat"], max_tokens=0)


def test_labels_from_a_text_collection_are_its_distinct_labels(tmp_path, monkeypatch):
    from kec.llm import build

    coll = tmp_path / "tickets.txt"
    coll.write_text("printer jams\thardware\nreset my password\taccounts\n"
                    "screen flickers\thardware\n")
    plain = tmp_path / "labels.txt"
    plain.write_text("# two labels\nhardware\naccounts\n")
    assert build.read_label_file(coll) == ["hardware", "accounts"]
    assert build.read_label_file(plain) == ["hardware", "accounts"]
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("printer jams\thardware\nno label here\n")
    with pytest.raises(KecError, match=r"label every line \('text<TAB>label'\) or none"):
        build.read_label_file(mixed)
    # kec knowledge build --labels COLLECTION builds from those labels
    seen = {}

    def fake_build(labels, **kwargs):
        seen["labels"] = labels
        return kec.make_knowledge({x: [f"{x} thing"] for x in labels})

    monkeypatch.setattr(build, "build_knowledge", fake_build)
    out = tmp_path / "k.json"
    assert main(["knowledge", "build", "--labels", str(coll), "--out", str(out),
                 "--quiet"]) == 0
    assert seen["labels"] == ["hardware", "accounts"]
    assert [c["name"] for c in load_knowledge(out)["concepts"]] == ["accounts", "hardware"]


def test_the_knowledge_kind_follows_the_labels_file_unless_given(tmp_path, monkeypatch):
    """`--labels COLLECTION` builds knowledge for text items (prompts about what texts say),
    a plain label list for images; `--kind` decides when given."""
    from kec.llm import build

    coll = tmp_path / "tickets.txt"
    coll.write_text("printer jams\thardware\nreset my password\taccounts\n")
    plain = tmp_path / "labels.txt"
    plain.write_text("hardware\naccounts\n")
    assert build.is_collection_file(coll) and not build.is_collection_file(plain)
    assert not build.is_collection_file(tmp_path / "missing.txt")
    with pytest.raises(KecError, match="knowledge kind must be one of images, items"):
        kec.build_knowledge(["cat"], kind="image")  # refused before any model loads
    kinds = []

    def fake_build(labels, **kwargs):
        kinds.append(kwargs["kind"])
        return kec.make_knowledge({x: [f"{x} thing"] for x in labels})

    monkeypatch.setattr(build, "build_knowledge", fake_build)
    for i, (labels, flags) in enumerate([(coll, []), (plain, []), (coll, ["--kind", "images"]),
                                         (plain, ["--kind", "items"])]):
        out = tmp_path / f"k{i}.json"
        assert main(["knowledge", "build", "--labels", str(labels), "--out", str(out),
                     "--quiet", *flags]) == 0
    assert kinds == ["items", "images", "images", "items"]
