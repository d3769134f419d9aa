"""Benchmark tables: kec's ACC/NMI/ARI per method (mean ± std over seeds) beside the
published numbers, as Markdown and CSV. All values are percentages."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from kec.datasets.published import METRICS, published_results, published_sources

#: the published variant that matches what kec runs, when a paper reports several
PREFERRED_VARIANT = {"tac": "training-free"}


def aggregate(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method (in first-seen order): seeds, mean and std of each metric and of time.

    ``rows`` hold ``method``, ``seed``, ``status`` and, when ``status == "ok"``, the
    metrics in percent and ``seconds``.
    """
    methods: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        methods.setdefault(r["method"], []).append(r)
    out = []
    for method, rs in methods.items():
        ok = [r for r in rs if r.get("status") == "ok"]
        notes = [r["note"] for r in (ok or rs) if r.get("note")]
        agg: dict[str, Any] = {"method": method, "seeds": [r["seed"] for r in ok],
                               "status": "ok" if ok else rs[0].get("status", "failed"),
                               "note": notes[0] if notes else ""}
        for m in (*METRICS, "seconds"):
            vals = np.array([r[m] for r in ok if r.get(m) is not None], dtype=float)
            agg[m] = float(vals.mean()) if vals.size else None
            agg[f"{m}_std"] = float(vals.std()) if vals.size > 1 else 0.0 if vals.size else None
        out.append(agg)
    return out


def published_for(dataset: str, method: str) -> dict[str, Any] | None:
    """The published entry to print beside kec's ``method`` on ``dataset``, if any."""
    entries = [e for e in published_results(dataset, method) if e["metrics"]]
    if not entries:
        return None
    preferred = PREFERRED_VARIANT.get(method)
    for e in entries:
        if preferred and e.get("variant") == preferred:
            return e
    return entries[0]


def _fmt(mean: float | None, std: float | None = None) -> str:
    if mean is None:
        return "–"
    return f"{mean:.1f} ± {std:.1f}" if std else f"{mean:.1f}"


def _source(entry: dict[str, Any]) -> str:
    src = published_sources().get(entry["source"], {})
    variant = f" ({entry['variant']})" if entry.get("variant") else ""
    return f"{src.get('title', entry['source'])}{variant}"


def markdown_table(dataset: str, agg: Sequence[dict[str, Any]], *,
                   context: dict[str, Any] | None = None) -> str:
    """A Markdown report: kec's results with the matching published numbers, then every
    published result for the dataset with its source."""
    lines = [f"# kec bench: {dataset}", ""]
    for key, value in (context or {}).items():
        lines.append(f"- **{key}**: {value}")
    if context:
        lines.append("")
    lines += ["| method | ACC | NMI | ARI | seeds | time (s) | published ACC | NMI | ARI |",
              "|---|---|---|---|---|---|---|---|---|"]
    for a in agg:
        pub = published_for(dataset, a["method"])
        pm = pub["metrics"] if pub else {}
        if a["status"] != "ok":
            ours = [f"{a['status']}: {a['note']}".strip(": "), "", "", "", ""]
        else:
            ours = [_fmt(a[m], a[f"{m}_std"]) for m in METRICS]
            ours += [",".join(str(s) for s in a["seeds"]), _fmt(a["seconds"])]
        theirs = [_fmt(pm.get(m)) for m in METRICS]
        lines.append("| " + " | ".join([a["method"], *ours, *theirs]) + " |")
    notes = [f"- {a['method']}: {a['note']}" for a in agg if a["status"] == "ok" and a["note"]]
    if notes:
        lines += ["", "Notes:", "", *notes]
    published = published_results(dataset)
    lines += ["", "Published results on this dataset (percent):", ""]
    if published:
        lines += ["| method | ACC | NMI | ARI | source |", "|---|---|---|---|---|"]
        for e in published:
            m = e["metrics"]
            note = f" — {e['note']}" if e.get("note") else ""
            lines.append(f"| {e['method']} | {_fmt(m.get('acc'))} | {_fmt(m.get('nmi'))} | "
                         f"{_fmt(m.get('ari'))} | {_source(e)}{note} |")
    else:
        lines.append("none shipped with kec.")
    lines += ["", "Sources:", ""]
    for sid, s in published_sources().items():
        lines.append(f"- {sid}: {s['title']}, {s['venue']}, {s['url']} ({s['where']})")
    return "\n".join(lines) + "\n"


def csv_table(dataset: str, agg: Sequence[dict[str, Any]]) -> str:
    """One row per method: kec's mean/std per metric and the published values beside."""
    buf = io.StringIO()
    fields = ["dataset", "method", "status", "seeds"]
    fields += [f"{m}{s}" for m in METRICS for s in ("", "_std")]
    fields += ["seconds", *(f"published_{m}" for m in METRICS), "published_source", "note"]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for a in agg:
        pub = published_for(dataset, a["method"])
        row = {"dataset": dataset, "method": a["method"], "status": a["status"],
               "seeds": " ".join(str(s) for s in a["seeds"]), "note": a["note"],
               "seconds": _round(a["seconds"]),
               "published_source": _source(pub) if pub else ""}
        for m in METRICS:
            row[m] = _round(a[m])
            row[f"{m}_std"] = _round(a[f"{m}_std"])
            row[f"published_{m}"] = (pub or {}).get("metrics", {}).get(m, "")
        w.writerow(row)
    return buf.getvalue()


def _round(v: float | None) -> str | float:
    return "" if v is None else round(float(v), 3)
