"""The HTML report: self-contained, every section present, names and images in place."""

from __future__ import annotations

import re

import numpy as np

from kec.report import ReportOptions, build_report, load_result, write_report


def test_report_has_every_section(result_dir, tmp_path):
    out = write_report(result_dir, tmp_path / "report.html")
    page = out.read_text("utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for text in ("Metrics", "95.8", "Overview", "confusion matrix", "feature scatter",
                 "Knowledge", "knowledge graph", "a disc has no corners", "Clusters",
                 "#1 · green block", "majority label <b>green square</b> (86%)",
                 "round red shape", "kec+cae"):
        assert text in page, text
    # four cluster cards, largest first, each with its 5-7 thumbnails
    cards = re.findall(r'<div class="card".*?</div></div>', page)
    assert len(cards) == 4 and "#1 ·" in cards[0]
    assert [c.count("data:image/jpeg;base64,") for c in cards] == [7, 6, 6, 5]
    # escaped text, nothing fetched from outside the file
    assert "a &lt;rhombus&gt; on its tip &amp; corner" in page and "<rhombus>" not in page
    assert not re.search(r"""(src|href)=["']?(https?:|file:|//)""", page)
    assert page.count("data:image/png;base64,") == 3


def test_representative_images_come_first(result_dir):
    """Cluster 1 holds six green squares and one red circle: the red one is the farthest
    from the centre, so it is the last thumbnail."""
    import base64
    import io

    from PIL import Image

    page = build_report(result_dir)
    card = re.search(r'#1 · green block.*?</div></div>', page).group(0)
    thumbs = re.findall(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", card)
    def redness(b64):
        im = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"), int)
        return (im[..., 0] - im[..., 1]).max()
    scores = [redness(t) for t in thumbs]
    assert scores.index(max(scores)) == len(scores) - 1


def test_report_without_features_knowledge_or_labels(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "assignments.csv").write_text("id,cluster\na.png,0\nb.png,1\nc.png,1\n")
    page = build_report(folder, options=ReportOptions(max_clusters=1, title="Tiny"))
    assert "<title>Tiny</title>" in page and "images not available" in page
    assert "Metrics" not in page and "Knowledge" not in page
    assert "1 smaller clusters not shown" in page


def test_images_root_and_explicit_paths(result_dir, tmp_path):
    """Without the feature file, thumbnails are found under --images."""
    res = load_result(result_dir)
    res.summary["parameters"].pop("features")
    data = tmp_path / "data" / "synthetic"
    page = build_report(res, images_root=data, knowledge=None)
    assert page.count("data:image/jpeg;base64,") == 24
    assert "first members" in page


def test_metrics_computed_from_labels_when_the_summary_has_none(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "assignments.csv").write_text(
        "id,cluster,label\na,0,cat\nb,0,cat\nc,1,dog\nd,0,dog\n")
    page = build_report(folder)
    assert "<b>75.0</b><span>ACC %</span>" in page


def test_a_text_collection_shows_member_texts_and_warns_of_no_image(tmp_path, caplog):
    """Items of `kec embed collection` have no images: each card lists its representative
    texts (ids are '<line>:<text>'), and nothing warns of missing images."""
    from kec.cli.main import main
    from kec.features import save_features

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 8))
    x = np.repeat(centres, 5, axis=0) + 0.01 * rng.normal(size=(10, 8))
    texts = [f"printer jam {i}" for i in range(5)] + [f"password reset {i}" for i in range(5)]
    features = tmp_path / "tickets.features.safetensors"
    save_features(features, x.astype(np.float32),
                  ids=[f"{n + 1}:{t}" for n, t in enumerate(texts)], kind="items",
                  encoder={"kind": "test", "model": "m", "pretrained": None, "dim": 8})
    assert main(["cluster", str(features), "--k", "2", "--out", str(tmp_path / "r")]) == 0
    caplog.clear()
    page = build_report(tmp_path / "r")
    assert "10 items in 2 clusters" in page and "5 items (50.0%)" in page
    assert "<li>printer jam 0</li>" in page and "<li>password reset 4</li>" in page
    assert "images not available" not in page and "data:image/jpeg" not in page
    assert "image" not in caplog.text


def test_text_collection_cards_show_a_few_escaped_member_texts(tmp_path, caplog):
    """A card of a text collection lists its most central member texts (HTML-escaped, cut
    to one line), never "images not available"; the page counts items, not images, also
    when the feature file is gone (the summary records the kind)."""
    from kec.cli.main import main
    from kec.encoders.collection import ID_TEXT_CHARS
    from kec.features import save_features

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(2, 8))
    x = np.repeat(centres, 6, axis=0) + 0.01 * rng.normal(size=(12, 8))
    long = "the <b>invoice</b> & receipt " * 10
    texts = [f"{long}{i}"[:ID_TEXT_CHARS] for i in range(6)] + [
        f"reset my password {i}" for i in range(6)]
    features = tmp_path / "tickets.features.safetensors"
    save_features(features, x.astype(np.float32),
                  ids=[f"{n + 1}:{t}" for n, t in enumerate(texts)], kind="items",
                  encoder={"kind": "test", "model": "m", "pretrained": None, "dim": 8})
    assert main(["cluster", str(features), "--k", "2", "--out", str(tmp_path / "r")]) == 0
    caplog.clear()
    page = build_report(tmp_path / "r", options=ReportOptions(texts_per_cluster=2))
    cards = re.findall(r'<div class="card".*?</ol></div>', page)
    assert len(cards) == 2 and all(c.count("<li>") == 2 for c in cards)
    assert "<b>invoice</b>" not in page and "the &lt;b&gt;invoice&lt;/b&gt; &amp; receipt" in page
    assert re.search(r"<li>the &lt;b&gt;invoice[^<]*…</li>", page)  # a cut text says so
    assert "<li>reset my password" in page
    assert "<tr><th>items</th><td>12</td></tr>" in page and "<th>images</th>" not in page
    assert "images not available" not in page and "image" not in caplog.text
    features.unlink()  # an old or moved feature file: the summary still says items
    res = load_result(tmp_path / "r")
    res.summary["inputs"]["features"] = {"kind": "items"}  # no file to open
    page = build_report(res, options=ReportOptions(texts_per_cluster=0))
    assert "images not available" not in page and "no member texts shown" in page
    assert "12 items in 2 clusters" in page
