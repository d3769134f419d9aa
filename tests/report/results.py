"""A small, complete result folder for report tests: generated images, colour features,
assignments with one mistake, a summary with names and attributes, a knowledge file.

Shared by the report and CLI tests (their ``result_dir`` fixtures call it)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from kec.datasets import load_dataset, save_dataset_features
from kec.knowledge import save_knowledge
from tests.knowledge.docs import make_doc


class ColourEncoder:
    """Mean RGB of the image plus a little fixed noise: meaningful, instant features."""

    dim = 8
    batch_size = 16

    def _row(self, im, i):
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32).reshape(-1, 3)
        # the darkest quarter of pixels is the shape, the rest is light background
        shape = rgb[np.argsort(rgb.sum(axis=1))[: len(rgb) // 4]].mean(axis=0) / 255
        noise = np.random.default_rng(i).normal(0, 0.02, self.dim - 3)
        return np.concatenate([shape, noise])

    def encode_files(self, paths, progress=False):
        from PIL import Image

        rows = [self._row(Image.open(p), i) for i, p in enumerate(paths)]
        x = np.asarray(rows, np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True), list(range(len(paths))), []

    def describe(self):
        return {"kind": "test-colour", "model": "mean-rgb", "pretrained": None, "dim": 8}


NAMES = {0: "crimson disc", 1: "green block", 2: "blue wedge", 3: "golden rhombus"}


def make_result_dir(tmp_path: Path) -> Path:
    ds = load_dataset("synthetic", tmp_path / "data")
    feats = save_dataset_features(tmp_path / "images.features.safetensors", ds, ColourEncoder())
    clusters = ds.targets.copy()
    clusters[5] = 1  # one red circle lands in the green cluster
    doc = make_doc(
        {"crimson disc": (["red circle"], ["round red shape"]),
         "green block": (["green square"], ["square corners"]),
         "blue wedge": (["blue triangle"], ["three sides", "pointed top"]),
         "golden rhombus": (["yellow diamond"], ["a tilted yellow square"])},
        [("crimson disc", "golden rhombus", ["a disc has no corners"]),
         ("green block", "golden rhombus",
          ["a block sits flat, a <rhombus> on its tip & corner"])],
    )
    save_knowledge(doc, tmp_path / "knowledge.json")
    out = tmp_path / "result"
    out.mkdir()
    with open(out / "assignments.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "cluster", "label"])
        for i, c, lab in zip(ds.ids, clusters.tolist(), ds.labels):
            w.writerow([i, c, lab])
    summary = {
        "method": "kec+cae",
        "parameters": {"k": 4, "seed": 0, "features": str(feats),
                       "knowledge": str(tmp_path / "knowledge.json")},
        "timings": {"total_s": 0.5},
        "metrics": {"acc": 23 / 24, "nmi": 0.93, "ari": 0.91},
        "clusters": [
            {"cluster": c, "name": NAMES[c],
             "top_concepts": [{"name": NAMES[c], "weight": 0.8}, {"name": "shape", "weight": 0.1}],
             "top_attributes": [{"text": a, "weight": 0.5} for a in
                                doc["concepts"][c]["attributes"]]}
            for c in range(4)
        ],
    }
    (out / "summary.json").write_text(json.dumps(summary))
    return out
