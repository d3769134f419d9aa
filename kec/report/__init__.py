"""Reports: a self-contained HTML page per clustering result, and benchmark tables.

>>> write_report("result/", "report.html")                          # doctest: +SKIP
>>> write_report("result/", "r.html", knowledge="k.json", images_root="photos/")  # doctest: +SKIP
"""

from kec.report.html import ReportOptions, build_report, write_report
from kec.report.images import ImageResolver, representatives, thumbnail_data_uri
from kec.report.result import ClusterInfo, ClusterResult, ResultError, load_result
from kec.report.screenshot import find_chromium, screenshot

__all__ = [
    "ClusterInfo",
    "ClusterResult",
    "ImageResolver",
    "ReportOptions",
    "ResultError",
    "build_report",
    "find_chromium",
    "load_result",
    "representatives",
    "screenshot",
    "thumbnail_data_uri",
    "write_report",
]
