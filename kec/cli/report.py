"""``kec report RESULT --out report.html``: one self-contained HTML page per result."""

from __future__ import annotations

import argparse
from pathlib import Path

from kec._io import check_output_path
from kec.errors import KecError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="render a clustering result as one self-contained HTML page",
        description="Per cluster: name, top concepts and attributes, size and its most "
                    "representative images (for a text collection: its most central "
                    "member texts); metrics and a confusion matrix when labels "
                    "exist; a PCA scatter of the features; the knowledge graph. The feature "
                    "and knowledge files the result names are found from any folder "
                    "(relative to the result folder or a folder above it); one that cannot "
                    "be found is an error: give it with --features / --knowledge. The page "
                    "names input files without their folders. A result folder whose "
                    "assignments.csv is not the one its summary.json describes is refused.")
    p.add_argument("result", type=Path, help="a `kec cluster --out` (or bench run) folder")
    p.add_argument("--out", type=Path, required=True, help="HTML file to write")
    p.add_argument("--features", type=Path, default=None,
                   help="image or text-collection feature file, or a sharded feature set "
                        "(a folder with index.json) (default: the one the result's summary names)")
    p.add_argument("--knowledge", type=Path, default=None,
                   help="knowledge file for the graph (default: the one the summary names)")
    p.add_argument("--images", type=Path, default=None,
                   help="folder the image ids are relative to, if the feature file does "
                        "not say where the images are; images are opened only inside "
                        "this folder or the one the feature file records, never from an "
                        "absolute or '..' id outside them")
    p.add_argument("--max-clusters", type=int, default=100,
                   help="cluster cards shown, largest first")
    p.add_argument("--images-per-cluster", type=int, default=12,
                   help="most representative images shown per cluster card")
    p.add_argument("--texts-per-cluster", type=int, default=5,
                   help="text collections: most central member texts shown per card")
    p.add_argument("--thumb-size", type=int, default=96, help="thumbnail side in pixels")
    p.add_argument("--title", default=None, help="page title")
    p.add_argument("--screenshot", type=Path, default=None,
                   help="also save a PNG screenshot (needs a headless Chromium)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from kec.report import ReportOptions, screenshot, write_report

    if (args.max_clusters < 1 or args.images_per_cluster < 0 or args.texts_per_cluster < 0
            or args.thumb_size < 16):
        raise KecError("--max-clusters >= 1, --images-per-cluster >= 0, "
                       "--texts-per-cluster >= 0, --thumb-size >= 16")
    check_output_path(args.out, "file")
    if args.screenshot is not None:
        check_output_path(args.screenshot, "file")
    options = ReportOptions(max_clusters=args.max_clusters,
                            images_per_cluster=args.images_per_cluster,
                            texts_per_cluster=args.texts_per_cluster,
                            thumb_size=args.thumb_size, title=args.title)
    out = write_report(args.result, args.out, features=args.features,
                       knowledge=args.knowledge, images_root=args.images, options=options)
    size = out.stat().st_size
    print(f"wrote {out} ({size / 1024:.0f} KB)")
    if args.screenshot is not None:
        screenshot(out, args.screenshot)
        print(f"wrote {args.screenshot}")
    return 0
