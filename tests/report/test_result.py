"""Reading result folders leniently: several summary layouts, clear errors."""

from __future__ import annotations

import json

import pytest

from kec.report import ResultError, load_result


def _write(folder, rows, summary=None, header="id,cluster,label"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "assignments.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_full_result(result_dir):
    res = load_result(result_dir)
    assert len(res) == 24 and res.method == "kec+cae"
    assert res.metrics["acc"] == pytest.approx(23 / 24)
    assert res.cluster_ids()[0] == 1  # the largest cluster (7 images) first
    info = res.info[0]
    assert (info.size, info.name, info.majority_label) == (5, "crimson disc", "red circle")
    assert info.concepts[0] == ("crimson disc", 0.8)
    assert info.attributes == [("round red shape", 0.5)]
    assert res.info[1].majority_share == pytest.approx(6 / 7)
    assert res.reference("features").endswith("images.features.safetensors")
    assert res.reference("knowledge").endswith("knowledge.json")
    assert res.reference("captions") is None


def test_mapping_layout_and_names_from_concepts(tmp_path):
    summary = {"parameters": {"method": "kec"},
               "clusters": {"0": {"concepts": [["tabby cat", 0.7]], "attributes": ["stripes"]},
                            "1": "dogs", "x": "ignored"}}
    res = load_result(_write(tmp_path / "r", ["a.png,0,", "b.png,1,", "c.png,1,"], summary))
    assert res.method == "kec" and res.labels is None
    assert res.info[0].name == "tabby cat" and res.info[0].attributes == [("stripes", None)]
    assert res.info[1].title == "dogs" and res.info[1].majority_label is None


def test_relative_reference_resolves_against_the_folder(tmp_path):
    folder = _write(tmp_path / "r", ["a,0,x"], {"inputs": {"features": "f.safetensors"}})
    (folder / "f.safetensors").write_bytes(b"")
    assert load_result(folder).reference("features") == str(folder / "f.safetensors")


def test_no_summary_still_loads(tmp_path):
    res = load_result(_write(tmp_path / "r", ["a,3,x", "b,3,y"], header="id,cluster,label"))
    assert res.method == "unknown" and res.info[3].title == "cluster 3"


@pytest.mark.parametrize("header,rows,match", [
    ("path,group", ["a,1"], "needs a header with 'id' and 'cluster'"),
    ("id,cluster", ["a,b"], "not integer"),
])
def test_malformed(tmp_path, header, rows, match):
    with pytest.raises(ResultError, match=match):
        load_result(_write(tmp_path / "r", rows, header=header))


def test_not_a_result_folder(tmp_path):
    with pytest.raises(ResultError, match=r"no assignments\.csv"):
        load_result(tmp_path)


def test_kec_summaries_are_validated_on_read(tmp_path):
    from kec.report.result import write_result

    folder = tmp_path / "r"
    write_result(folder, ids=["a", "b"], clusters=[0, 1], labels=None,
                 summary={"method": "kmeans", "parameters": {"method": "kmeans", "k": 2},
                          "timings": {"total": 0.1}, "metrics": None,
                          "clusters": [{"cluster": 0, "size": 1}, {"cluster": 1, "size": 1}]})
    assert load_result(folder).method == "kmeans"
    summary = json.loads((folder / "summary.json").read_text())
    summary["clusters"][0]["size"] = -1  # a kec summary that breaks its schema
    (folder / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(ResultError, match="not a kec result summary"):
        load_result(folder)
    with pytest.raises(ResultError, match="does not match"):
        write_result(folder, ids=["a"], clusters=[0], labels=None,
                     summary={"method": "kmeans", "parameters": {}, "timings": {},
                              "clusters": []})
