"""``build_report``: one self-contained HTML page for a clustering result.

Everything is inline (CSS, PNG figures and JPEG thumbnails as base64 ``data:`` URIs), so
the file can be mailed, archived or opened offline. Sections: run summary and metrics;
confusion-matrix heat map (when labels exist); PCA scatter of the features coloured by
cluster; the knowledge graph; one card per cluster with its name, top concepts and
attributes, size, majority label, and its most representative images (closest to the
cluster centre).
"""

from __future__ import annotations

import html
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kec._io import atomic_write_text
from kec._version import __version__
from kec.report import plots
from kec.report.images import ImageResolver, png_data_uri, representatives, thumbnail_data_uri
from kec.report.result import (
    ClusterResult,
    MissingInputError,
    ResultError,
    is_input,
    load_result,
)

logger = logging.getLogger(__name__)

#: characters of a member text shown on a card (a collection id keeps the first 120)
TEXT_CHARS = 120


@dataclass
class ReportOptions:
    """What and how much to show.

    Attributes
    ----------
    max_clusters : int
        Cluster cards shown (largest clusters first); the rest are listed in one line.
    images_per_cluster : int
        Thumbnails per cluster.
    texts_per_cluster : int
        Member texts per cluster card of a text collection (its most central items).
    thumb_size : int
        Thumbnail side in pixels.
    title : str or None
        Page title (default: method and result folder).
    """

    max_clusters: int = 100
    images_per_cluster: int = 12
    texts_per_cluster: int = 5
    thumb_size: int = 96
    title: str | None = None


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f5f7;
color:#1d2330}
header{background:#23395b;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:24px}
header p{margin:0;opacity:.85}
main{padding:18px 28px;max-width:1400px}
section{background:#fff;border-radius:8px;padding:14px 18px;margin:0 0 18px;
box-shadow:0 1px 3px rgba(0,0,0,.08)}
h2{font-size:18px;margin:0 0 10px;color:#23395b}
.metrics{display:flex;gap:14px;flex-wrap:wrap}
.metric{background:#eef3fb;border-radius:8px;padding:10px 18px;min-width:110px}
.metric b{display:block;font-size:26px;color:#2a6bd1}
.metric span{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:#555}
table{border-collapse:collapse;font-size:13px}
td,th{border-bottom:1px solid #e3e6eb;padding:3px 10px;text-align:left;vertical-align:top}
.figs{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.figs figure{margin:0;flex:1 1 420px;max-width:100%}
.figs img{max-width:100%;height:auto;border:1px solid #e3e6eb;border-radius:6px}
.clusters{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:14px}
.card{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 3px rgba(0,0,0,.1);
border-top:6px solid var(--c)}
.card h3{margin:0 0 4px;font-size:17px}
.card .meta{font-size:12px;color:#555;margin-bottom:6px}
.chip{display:inline-block;background:#eef0f4;border-radius:10px;padding:1px 8px;margin:2px;
font-size:12px}
.concepts{font-size:13px}
.card ul{margin:4px 0 8px 18px;padding:0;font-size:13px}
.grid{display:flex;flex-wrap:wrap;gap:4px}
.grid img{border-radius:4px;display:block}
.texts{margin:4px 0 0 18px;padding:0;font-size:13px}
.note{color:#777;font-size:13px}
details{margin-top:8px}summary{cursor:pointer;color:#23395b;font-weight:600}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _pct(value: float) -> str:
    """Scores are fractions in [0, 1], as kec writes them."""
    return f"{100 * value:.1f}"


def _metrics(result: ClusterResult) -> dict[str, float]:
    """ACC/NMI/ARI from the summary, else computed from the labels (if any)."""
    metrics = {k.lower(): v for k, v in result.metrics.items()
               if k.lower() in ("acc", "nmi", "ari")}
    if metrics or result.labels is None:
        return metrics
    from kec.cluster.metrics import evaluate

    scores = evaluate(result.labels, result.clusters)
    return {k: float(scores[k]) for k in ("acc", "nmi", "ari")}


def _aligned_features(result: ClusterResult, feature_set: Any) -> np.ndarray | None:
    if feature_set is None:
        return None
    index = {v: i for i, v in enumerate(feature_set.ids)}
    rows = [index.get(i) for i in result.ids]
    if any(r is None for r in rows):
        missing = sum(r is None for r in rows)
        logger.warning("%d result ids are not in the feature file; no scatter, and the "
                       "first members stand for each cluster", missing)
        return None
    return np.asarray(feature_set.features)[rows]


def _flat(prefix: str, obj: Any, out: list[tuple[str, str]], depth: int = 0) -> None:
    if isinstance(obj, dict) and depth < 2:
        for k in sorted(obj):
            _flat(f"{prefix}.{k}" if prefix else str(k), obj[k], out, depth + 1)
    elif isinstance(obj, (dict, list)):
        out.append((prefix, json.dumps(obj, sort_keys=True, ensure_ascii=False)[:300]))
    else:
        out.append((prefix, str(obj)))


def _table(rows: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>"
                               for k, v in rows) + "</table>"


def public(obj: Any) -> Any:
    """``obj`` with every absolute path (``/home/me/x.json``, ``~/x``, ``C:\\x``) replaced
    by its file name: a shared report names no local folder."""
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [public(v) for v in obj]
    if isinstance(obj, str) and (os.path.isabs(obj) or obj.startswith("~")
                                 or (len(obj) > 2 and obj[1:3] in (":\\", ":/"))):
        return Path(obj.replace("\\", "/")).name
    return obj


def _run_section(result: ClusterResult, features_path: str | None,
                 knowledge_path: str | None, what: str = "images") -> str:
    """Method, sizes and input files in view; parameters and timings folded."""
    rows: list[tuple[str, str]] = [
        ("method", result.method),
        (what, str(len(result))),
        ("clusters", str(len(result.info))),
    ]
    for name, path in (("features file", features_path), ("knowledge file", knowledge_path)):
        if path:
            rows.append((name, Path(path).name))
    parts = [f"<section><h2>Run</h2>{_table(rows)}"]
    s = result.summary
    for key in ("parameters", "timings", "info"):
        if isinstance(s.get(key), dict) and s[key]:
            flat: list[tuple[str, str]] = []
            _flat("", public(s[key]), flat)
            parts.append(f"<details><summary>{_e(key)}</summary>{_table(flat)}</details>")
    parts.append("</section>")
    return "".join(parts)


def _cluster_card(result: ClusterResult, c: int, colour: str, thumbs: list[str],
                  texts: list[str] | None = None, what: str = "images") -> str:
    ci = result.info[c]
    parts = [f'<div class="card" style="--c:{colour}">',
             f"<h3>#{c} · {_e(ci.title)}</h3>",
             f'<div class="meta">{ci.size} {what} ({100 * ci.size / len(result):.1f}%)']
    if ci.majority_label is not None:
        parts.append(f" · majority label <b>{_e(ci.majority_label)}</b> "
                     f"({100 * (ci.majority_share or 0):.0f}%)")
    parts.append("</div>")
    if ci.concepts:
        chips = "".join(
            f'<span class="chip">{_e(n)}{"" if w is None else f" {w:.2f}"}</span>'
            for n, w in ci.concepts[:6])
        parts.append(f"<div class='concepts'>concepts: {chips}</div>")
    if ci.attributes:
        items = "".join(f"<li>{_e(a)}{'' if w is None else f' <small>({w:.2f})</small>'}</li>"
                        for a, w in ci.attributes[:5])
        parts.append(f"<ul>{items}</ul>")
    if texts:
        parts.append("<ol class='texts'>" + "".join(f"<li>{_e(t)}</li>" for t in texts)
                     + "</ol>")
    elif texts is not None:
        parts.append('<p class="note">no member texts shown</p>')
    elif thumbs:
        imgs = "".join(f'<img src="{t}" alt="cluster {c} image">' for t in thumbs)
        parts.append(f'<div class="grid">{imgs}</div>')
    else:
        parts.append('<p class="note">images not available</p>')
    parts.append("</div>")
    return "".join(parts)


def _hex(rgba: Any) -> str:
    r, g, b = (round(255 * float(v)) for v in list(rgba)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def build_report(
    result: ClusterResult | str | os.PathLike[str],
    *,
    features: str | os.PathLike[str] | None = None,
    knowledge: str | os.PathLike[str] | None = None,
    images_root: str | os.PathLike[str] | None = None,
    options: ReportOptions | None = None,
) -> str:
    """Render a result folder as one self-contained HTML page.

    Parameters
    ----------
    result : ClusterResult or path-like
        A loaded result or a ``kec cluster --out`` folder.
    features : path-like, optional
        Image feature file (default: the one the summary references). Gives the PCA
        scatter and the representative images; its ``extra`` tells where images are.
    knowledge : path-like, optional
        Knowledge file (default: the one the summary references), for the graph.
    images_root : path-like, optional
        Folder the image ids are relative to, when the feature file does not say.
    options : ReportOptions, optional

    Returns
    -------
    str
        The HTML document.
    """
    from kec.features import load_features

    opts = options or ReportOptions()
    res = result if isinstance(result, ClusterResult) else load_result(result)
    features_path = _input_path(res, "features", features)
    knowledge_path = _input_path(res, "knowledge", knowledge)
    feature_set = load_features(features_path, kind="image") if features_path else None
    feats = _aligned_features(res, feature_set)
    doc = None
    if knowledge_path:
        from kec.knowledge import load_knowledge

        doc = load_knowledge(knowledge_path)
    extra = (feature_set.metadata.get("extra") if feature_set is not None else None) or {}
    extra = _anchor_extra(extra, features_path)
    resolver = ImageResolver(images_root, extra)
    items = _holds_items(res, feature_set)
    what = "items" if items else "images"

    names = {c: ci.name for c, ci in res.info.items() if ci.name}
    order = res.cluster_ids()
    colours = plots.cluster_colours(len(order))
    colour_of = {c: _hex(colours[i]) for i, c in enumerate(sorted(res.info))}
    title = opts.title or f"kec · {res.method} · {res.folder.name}"

    body: list[str] = [f"<header><h1>{_e(title)}</h1><p>{len(res)} {what} in "
                       f"{len(res.info)} clusters · method {_e(res.method)} · "
                       f"kec {_e(__version__)}</p></header><main>"]
    metrics = _metrics(res)
    if metrics:
        tiles = "".join(f'<div class="metric"><b>{_pct(metrics[k])}</b>'
                        f"<span>{_e(k.upper())} %</span></div>"
                        for k in ("acc", "nmi", "ari") if k in metrics)
        body.append(f"<section><h2>Metrics</h2><div class='metrics'>{tiles}</div></section>")
    body.append(_run_section(res, features_path, knowledge_path, what))

    figs: list[str] = []
    if res.labels is not None:
        png = plots.confusion_png(res.labels, res.clusters, names)
        figs.append(f'<figure><img src="{png_data_uri(png)}" alt="confusion matrix">'
                    "<figcaption class='note'>class × cluster, row-normalised</figcaption>"
                    "</figure>")
    if feats is not None:
        png = plots.scatter_png(feats, res.clusters, names)
        figs.append(f'<figure><img src="{png_data_uri(png)}" alt="feature scatter">'
                    "<figcaption class='note'>features projected on 2 principal components, "
                    "coloured by cluster</figcaption></figure>")
    if figs:
        body.append(f"<section><h2>Overview</h2><div class='figs'>{''.join(figs)}</div>"
                    "</section>")

    cards, n_thumbs = _cards(res, order[: opts.max_clusters], colour_of, feats, resolver,
                             opts, items)
    if not items and resolver.located and resolver.failures and n_thumbs == 0:
        where = (f"under {images_root}" if images_root else
                 f"under {resolver.source_root}" if resolver.source_root else
                 "in the dataset the feature file names")
        raise ResultError(f"none of the images could be found {where} ({resolver.failures} "
                          "tried); give --images DIR (the folder the image ids are relative "
                          "to), or --images-per-cluster 0 for a report without thumbnails")
    more = ""
    if len(order) > opts.max_clusters:
        more = (f"<p class='note'>{len(order) - opts.max_clusters} smaller clusters not "
                "shown (raise --max-clusters)</p>")
    rep = "closest to the cluster centre" if feats is not None else "first members"
    body.append(f"<section><h2>Clusters</h2><p class='note'>largest first; {what}: {rep}"
                f"</p><div class='clusters'>{''.join(cards)}</div>{more}</section>")
    if doc is not None:
        body.append(_knowledge_section(doc, names.values()))
    if resolver.refused and not items:
        logger.warning("%d image ids lie outside the image folder and were not opened (a "
                       "result folder from elsewhere?); give --images DIR to allow a folder",
                       resolver.refused)
    if resolver.failures and not items:
        logger.warning("%d images could not be found for thumbnails (try --images DIR)",
                       resolver.failures)
    body.append("</main>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(title)}</title><meta name='generator' content='kec {_e(__version__)}'>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")


def _holds_items(res: ClusterResult, feature_set: Any) -> bool:
    """Whether the clustered rows are text items (``kec embed collection``), not images."""
    if feature_set is not None:
        return bool(feature_set.kind == "items")
    recorded = res.summary.get("inputs", {})
    features = recorded.get("features") if isinstance(recorded, dict) else None
    return isinstance(features, dict) and features.get("kind") == "items"


def item_text(item_id: str, limit: int = TEXT_CHARS) -> str:
    """The text of a collection item id ``<line>:<text>`` (the first 120 characters of
    the line, :data:`kec.encoders.collection.ID_TEXT_CHARS`; ``…`` marks a text that may
    go on), cut at ``limit`` characters; any other id (an older or foreign feature file)
    as it is, cut the same way."""
    head, sep, text = item_id.partition(":")
    text = text if sep and head.isdigit() else item_id
    if len(text) > limit:
        return text[: limit - 1].rstrip() + "…"
    return text + "…" if sep and head.isdigit() and len(text) >= TEXT_CHARS else text


def _cards(res: ClusterResult, shown: list[int], colour_of: dict[int, str],
           feats: np.ndarray | None, resolver: ImageResolver, opts: ReportOptions,
           items: bool) -> tuple[list[str], int]:
    """One card per shown cluster, with its representative images (or, for text items,
    its representative texts); and how many thumbnails were embedded."""
    cards: list[str] = []
    n_thumbs = 0
    for c in shown:
        members = np.flatnonzero(res.clusters == c).tolist()
        if items:
            chosen = representatives(feats, members, opts.texts_per_cluster)
            texts = [item_text(res.ids[i]) for i in chosen]
            cards.append(_cluster_card(res, c, colour_of[c], [], texts, "items"))
            continue
        chosen = representatives(feats, members, opts.images_per_cluster)
        thumbs = []
        for i in chosen if resolver.located else ():
            im = resolver.open(res.ids[i])
            if im is not None:
                thumbs.append(thumbnail_data_uri(im, opts.thumb_size))
        n_thumbs += len(thumbs)
        cards.append(_cluster_card(res, c, colour_of[c], thumbs))
    return cards, n_thumbs


def _input_path(res: ClusterResult, key: str,
                given: str | os.PathLike[str] | None) -> str | None:
    """The ``key`` input file: the one given, else the one the summary names, resolved
    against the result folder (:meth:`ClusterResult.resolve_input`).

    Raises
    ------
    MissingInputError
        The given file does not exist (a ``ResultError`` and a ``FileNotFoundError``).
    ResultError
        The summary names a file that cannot be found.
    """
    if given:
        if not is_input(Path(given), key):
            what = "file or sharded feature set" if key == "features" else "file"
            raise MissingInputError(f"--{key} {given}: no such {what}")
        return str(given)
    ref = res.resolve_input(key)
    if ref is None:
        return None
    if ref.path is None:
        raise ResultError(ref.missing_message(res.folder))
    return str(ref.path)


def _anchor(value: Any, features_path: str | None) -> Any:
    """A relative folder recorded in a feature file, found from here: as is when it exists,
    else relative to the feature file's folder or a folder above it."""
    if not isinstance(value, str) or not value or features_path is None:
        return value
    p = Path(value).expanduser()
    if p.is_absolute() or p.exists():
        return value
    base = Path(features_path).absolute().parent
    for folder in (base, *base.parents):
        if (folder / p).exists():
            return str(folder / p)
    return value


def _anchor_extra(extra: dict[str, Any], features_path: str | None) -> dict[str, Any]:
    """``extra`` with its image source folder and dataset root found from here."""
    out = dict(extra)
    source = out.get("source")
    if isinstance(source, dict) and "location" in source:
        out["source"] = {**source, "location": _anchor(source["location"], features_path)}
    dataset = out.get("dataset")
    if isinstance(dataset, dict) and "root" in dataset:
        out["dataset"] = {**dataset, "root": _anchor(dataset["root"], features_path)}
    return out


def _knowledge_section(doc: dict[str, Any], highlight: Any) -> str:
    png = plots.knowledge_graph_png(doc, list(highlight))
    by_id = {c["id"]: c for c in doc.get("concepts", [])}
    rows = []
    for p in doc.get("pairs", [])[:200]:
        a = by_id.get(p.get("a"), {}).get("name", p.get("a"))
        b = by_id.get(p.get("b"), {}).get("name", p.get("b"))
        attrs = "; ".join(str(x) for x in p.get("attributes", []))
        rows.append(f"<tr><td>{_e(a)}</td><td>{_e(b)}</td><td>{_e(attrs)}</td></tr>")
    table = (f"<table><tr><th>concept</th><th>vs.</th><th>what tells them apart</th></tr>"
             f"{''.join(rows)}</table>") if rows else "<p class='note'>no pairs</p>"
    return (f"<section><h2>Knowledge</h2><div class='figs'><figure><img "
            f"src='{png_data_uri(png)}' alt='knowledge graph'><figcaption class='note'>"
            "concepts linked by the pairs whose attributes tell them apart; orange: a "
            f"cluster's name</figcaption></figure><div>{table}</div></div></section>")


def write_report(
    result: ClusterResult | str | os.PathLike[str],
    out: str | os.PathLike[str],
    **kwargs: Any,
) -> Path:
    """:func:`build_report` and write the page atomically to ``out``."""
    page = build_report(result, **kwargs)
    atomic_write_text(out, page)
    logger.info("wrote report %s (%d KB)", out, len(page) // 1024)
    return Path(out)
