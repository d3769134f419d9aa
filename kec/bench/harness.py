"""The reproduction harness behind ``kec bench``: dataset -> features -> nouns -> scaffold
-> knowledge -> every method x seed -> tables beside the published numbers.

Every expensive step is cached under the output folder and reused when its inputs are
unchanged: image features (keyed by dataset and encoder), noun features (vocabulary and
encoder), the knowledge file (the scaffold's label groups), and LLM answers (the
knowledge builder's own cache). A second run only re-clusters.

Layout of ``out/``::

    features/images.safetensors   image features (+ dataset reference for reports)
    features/nouns.txt            the vocabulary used
    features/nouns.safetensors    its text features (TAC's 7 templates)
    scaffold/groups.json          label groups of the over-clusters (TAC §1.3)
    knowledge.json                the LLM-built knowledge (unless skipped)
    runs/<method>/seed<k>/        assignments.csv + summary.json per run (kec report)
    results.csv                   one row per method and seed
    summary.csv, summary.md       per method mean ± std, beside the published numbers
    bench.json                    configuration, versions, timings, every result
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from kec._io import atomic_write_text, canonical_json, sha256_text, write_json
from kec._version import __version__
from kec.cluster.registry import method_names, methods_requiring
from kec.datasets import ImageDataset, dataset_info, load_dataset, save_dataset_features
from kec.errors import KecError
from kec.features import FeatureSet, load_features, save_features

logger = logging.getLogger(__name__)

ALL_METHODS = method_names()
KNOWLEDGE_METHODS = frozenset(methods_requiring("knowledge"))
NOUN_METHODS = frozenset(methods_requiring("nouns"))
VOCABS = ("auto", "wordnet", "classes")


@dataclass
class BenchConfig:
    """Parameters of one benchmark run (all recorded in ``bench.json``).

    Attributes
    ----------
    dataset, root, split
        What :func:`kec.datasets.load_dataset` loads (``split=None``: the papers' split).
    out : Path
        Output and cache folder.
    model, pretrained
        open_clip model and weights (``pretrained=None``: random weights, for tests).
    methods : tuple of str
        Any of ``kmeans``, ``tac``, ``kec``, ``cae``, ``kec+cae``.
    seeds : tuple of int
        One clustering run per method and seed.
    download : bool
        Let torchvision download a missing dataset.
    limit_per_class : int or None
        Cap on images per class (quick runs).
    vocab : str
        ``auto`` (WordNet when available and a GPU encodes it, else the class names),
        ``wordnet``,
        ``classes``, or a text file with one noun per line.
    knowledge : Path or None
        Use this knowledge file instead of building one.
    skip_knowledge : bool
        Build no knowledge; methods that need it are reported as skipped.
    backend, backend_options
        LLM backend for the knowledge build (``kec.backends.create_backend``).
    text_encoder : str
        Text encoder of the knowledge builder (it pairs similar concepts): ``"clip"``,
        the benchmarked CLIP model's own text tower (no second model to load), or any
        :func:`kec.encoders.create_text_encoder` spec such as ``"minilm"``.
    captions : Path or None
        Caption corpus (one per line) for ``cae``; default: the knowledge's concept
        descriptions and attributes when a knowledge file exists.
    over_clusters : int or None
        Scaffold over-clusters; default: the registry's value for full datasets, the
        scaffold's own rule for limited ones.
    device, batch_size, progress
        Runtime.
    """

    dataset: str
    root: Path
    split: str | None = None
    out: Path = Path("bench")
    model: str = "ViT-B-32-quickgelu"
    pretrained: str | None = "openai"
    methods: tuple[str, ...] = ALL_METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    download: bool = False
    limit_per_class: int | None = None
    vocab: str = "auto"
    knowledge: Path | None = None
    skip_knowledge: bool = False
    backend: str = "llamacpp"
    backend_options: dict[str, Any] = field(default_factory=dict)
    text_encoder: str = "clip"
    captions: Path | None = None
    over_clusters: int | None = None
    device: str | None = None
    batch_size: int = 64
    progress: bool = False

    def validate(self) -> None:
        bad = [m for m in self.methods if m not in ALL_METHODS]
        if bad or not self.methods:
            raise KecError(f"unknown method(s) {', '.join(bad) or '(none)'}; choose from "
                           f"{', '.join(ALL_METHODS)}")
        if not self.seeds:
            raise KecError("give at least one seed")
        if self.vocab not in VOCABS and not Path(self.vocab).is_file():
            raise KecError(f"--vocab must be {' | '.join(VOCABS)} or an existing file")
        if self.knowledge is not None and self.skip_knowledge:
            raise KecError("--knowledge and --skip-knowledge exclude each other")
        if self.knowledge is not None and not Path(self.knowledge).is_file():
            raise KecError(f"knowledge file {self.knowledge} not found")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
                for k, v in d.items()}


def environment() -> dict[str, Any]:
    """Versions that change results (docs/methods.md §1: feature extraction and k-means matter)."""
    versions = {}
    for pkg in ("torch", "torchvision", "open_clip_torch", "scikit-learn", "numpy", "pot",
                "faiss-cpu", "faiss-gpu", "pillow", "nltk", "llama_cpp_python"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return {"kec": __version__, "python": platform.python_version(),
            "platform": platform.platform(), "packages": versions}


class Bench:
    """Run a :class:`BenchConfig`; each step is a method so that it can be reused alone.

    Parameters
    ----------
    config : BenchConfig
    runner : callable, optional
        ``runner(method, inputs, seed) -> dict`` with ``clusters`` (and optionally
        ``summary``); default :func:`kec.bench.methods.run_one`.
    """

    def __init__(self, config: BenchConfig,
                 runner: Callable[[str, dict[str, Any], int], dict[str, Any]] | None = None):
        config.validate()
        self.cfg = config
        self.out = Path(config.out)
        self.timings: dict[str, float] = {}
        self._encoder: Any = None
        if runner is None:
            from kec.bench.methods import run_one

            runner = run_one
        self.runner = runner

    # -- helpers -----------------------------------------------------------------------
    def _timed(self, name: str, start: float) -> None:
        self.timings[name] = round(time.perf_counter() - start, 3)
        logger.info("bench step %s: %.2f s", name, self.timings[name])

    def image_encoder(self) -> Any:
        """The open_clip encoder, loaded once and only when a cache misses."""
        if self._encoder is None:
            from kec.encoders import create_image_encoder

            self._encoder = create_image_encoder(self.cfg.model, self.cfg.pretrained,
                                                 device=self.cfg.device,
                                                 batch_size=self.cfg.batch_size)
        return self._encoder

    def _wanted_encoder(self) -> dict[str, Any]:
        from kec.encoders.clip import normalize_pretrained

        return {"model": self.cfg.model, "pretrained": normalize_pretrained(self.cfg.pretrained)}

    def _cache_ok(self, path: Path, key: str) -> FeatureSet | None:
        if not path.is_file():
            return None
        try:
            fs = load_features(path)
        except KecError as exc:
            logger.warning("ignoring unreadable cache %s: %s", path, exc)
            return None
        if fs.metadata.get("extra", {}).get("bench_key") != key:
            logger.info("cache %s is stale (other inputs): recomputing", path)
            return None
        logger.info("reusing %s", path)
        return fs

    # -- steps -------------------------------------------------------------------------
    def load(self) -> ImageDataset:
        start = time.perf_counter()
        ds = load_dataset(self.cfg.dataset, self.cfg.root, self.cfg.split,
                          download=self.cfg.download, limit_per_class=self.cfg.limit_per_class)
        self._timed("load_dataset", start)
        return ds

    def image_features(self, ds: ImageDataset) -> tuple[Path, FeatureSet]:
        path = self.out / "features" / "images.safetensors"
        key = sha256_text(canonical_json({"dataset": ds.describe(), "ids": ds.ids,
                                          "encoder": self._wanted_encoder()}))
        fs = self._cache_ok(path, key)
        if fs is None:
            start = time.perf_counter()
            save_dataset_features(path, ds, self.image_encoder(), progress=self.cfg.progress,
                                  extra={"bench_key": key})
            fs = load_features(path, kind="image")
            self._timed("embed_images", start)
        return path, fs

    def _on_gpu(self) -> bool:
        if self.cfg.device is not None:
            return str(self.cfg.device).startswith("cuda")
        import torch

        return bool(torch.cuda.is_available())

    def vocabulary(self, ds: ImageDataset) -> tuple[list[str], str]:
        """The noun vocabulary and where it came from."""
        from kec.vocab import VocabularyError, read_lines, wordnet_nouns

        v = self.cfg.vocab
        if v not in VOCABS:
            return read_lines(v), f"file:{v}"
        if v == "auto" and not self._on_gpu():
            logger.warning("no GPU: encoding ~119k WordNet nouns x 7 templates on the CPU takes "
                           "hours; using the %d class names as the noun vocabulary "
                           "(--vocab wordnet to insist)", ds.num_classes)
            return list(ds.class_names), "classes"
        if v in ("auto", "wordnet"):
            try:
                return wordnet_nouns(), "wordnet"
            except VocabularyError as exc:
                if v == "wordnet":
                    raise
                logger.warning("WordNet unavailable (%s): using the %d class names as the "
                               "noun vocabulary", exc, ds.num_classes)
        return list(ds.class_names), "classes"

    def noun_features(self, ds: ImageDataset) -> tuple[Path, FeatureSet, str]:
        from kec.vocab import write_lines

        nouns, source = self.vocabulary(ds)
        path = self.out / "features" / "nouns.safetensors"
        key = sha256_text(canonical_json({"nouns": nouns, "templates": "tac",
                                          "encoder": self._wanted_encoder()}))
        fs = self._cache_ok(path, key)
        if fs is None:
            start = time.perf_counter()
            write_lines(self.out / "features" / "nouns.txt", nouns)
            enc = self.image_encoder().text_encoder(templates="tac")
            feats = enc.encode(nouns, progress=self.cfg.progress)
            save_features(path, feats, ids=nouns, kind="text", encoder=enc.describe(),
                          extra={"source": source, "bench_key": key})
            fs = load_features(path, kind="text")
            self._timed("embed_nouns", start)
        return path, fs, source

    def knowledge(self, groups: list[list[str]] | None) -> Path | None:
        """The knowledge file: given, cached (same groups), or built with the backend."""
        if self.cfg.knowledge is not None:
            return Path(self.cfg.knowledge)
        if self.cfg.skip_knowledge or groups is None:
            return None
        from kec.knowledge import load_knowledge
        from kec.knowledge.labels import labels_sha256

        path = self.out / "knowledge.json"
        want = labels_sha256([list(g) for g in groups])
        if path.is_file():
            try:
                doc = load_knowledge(path)
            except KecError as exc:
                logger.warning("rebuilding unreadable %s: %s", path, exc)
            else:
                backend = doc["provenance"].get("backend") or {}
                same = (doc["labels"]["sha256"] == want
                        and backend.get("backend") == self.cfg.backend
                        and self.cfg.backend_options.get("model") in (None, backend.get("model")))
                if same:
                    logger.info("reusing %s (same label groups and backend)", path)
                    return path
                logger.info("rebuilding %s (other label groups or backend)", path)
        start = time.perf_counter()
        from kec.backends import create_backend
        from kec.encoders import create_text_encoder
        from kec.knowledge import save_knowledge
        from kec.llm import KnowledgeBuilder

        if self.cfg.text_encoder == "clip":  # the loaded CLIP model's own text tower
            encoder = self.image_encoder().text_encoder(templates=None)
        else:
            encoder = create_text_encoder(self.cfg.text_encoder)
        with create_backend(self.cfg.backend, **self.cfg.backend_options) as backend:
            builder = KnowledgeBuilder(backend, encoder, cache_dir=self.out / "llm-cache",
                                       progress=self.cfg.progress)
            doc = builder.build(groups=groups, source=f"bench:{self.cfg.dataset}")
        save_knowledge(doc, path)
        self._timed("knowledge", start)
        return path

    # -- the whole run -----------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run every step; write tables and ``bench.json``; return the bench record."""
        from kec.bench.methods import scaffold_groups
        from kec.bench.tables import aggregate, csv_table, markdown_table

        total = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        ds = self.load()
        img_path, images = self.image_features(ds)
        k = ds.num_classes
        entry = dataset_info(ds.name)
        over = self.cfg.over_clusters
        if over is None and self.cfg.limit_per_class is None and self.cfg.split is None:
            over = int(entry["over_clusters"])
        needs_knowledge = any(m in KNOWLEDGE_METHODS for m in self.cfg.methods)
        needs_groups = needs_knowledge and self.cfg.knowledge is None \
            and not self.cfg.skip_knowledge
        noun_path: Path | None = None
        nouns: FeatureSet | None = None
        vocab_source = "not used"
        if needs_groups or any(m in NOUN_METHODS for m in self.cfg.methods):
            noun_path, nouns, vocab_source = self.noun_features(ds)
        groups = None
        if needs_groups:
            start = time.perf_counter()
            assert nouns is not None
            groups = scaffold_groups(images, nouns, over_clusters=over, seed=self.cfg.seeds[0],
                                     out=self.out / "scaffold")
            self._timed("scaffold", start)
        knowledge_path = self.knowledge(groups) if needs_knowledge else None
        captions = None
        if self.cfg.captions is not None:
            from kec.vocab import load_captions

            captions = load_captions(self.cfg.captions)
        inputs = {"images": images, "nouns": nouns, "k": k, "over_clusters": over,
                  "knowledge": knowledge_path, "captions": captions,
                  "features_path": img_path, "nouns_path": noun_path,
                  "cache_dir": self.out / "cache"}

        rows: list[dict[str, Any]] = []
        for method in self.cfg.methods:
            for seed in self.cfg.seeds:
                rows.append(self._run_one(method, seed, inputs, images, knowledge_path))
        agg = aggregate(rows)
        context = {
            "dataset": f"{entry['title']} ({ds.name}/{ds.split}, {len(ds)} images, "
                       f"{k} classes)",
            "model": f"{self.cfg.model} / "
                     f"{self._wanted_encoder()['pretrained'] or 'random weights'}",
            "vocabulary": f"{vocab_source} ({len(nouns)} nouns)" if nouns else vocab_source,
            "knowledge": str(knowledge_path) if knowledge_path else "none",
            "seeds": ", ".join(str(s) for s in self.cfg.seeds),
            "kec": __version__,
        }
        atomic_write_text(self.out / "summary.md", markdown_table(ds.name, agg,
                                                                  context=context))
        atomic_write_text(self.out / "summary.csv", csv_table(ds.name, agg))
        atomic_write_text(self.out / "results.csv", _rows_csv(ds.name, rows))
        self._timed("total", total)
        record = {"config": self.cfg.to_dict(), "dataset": ds.describe(),
                  "environment": environment(), "encoder": images.encoder,
                  "vocabulary": {"source": vocab_source, "count": len(nouns) if nouns else 0},
                  "knowledge": str(knowledge_path) if knowledge_path else None,
                  "over_clusters": over, "k": k, "timings": self.timings,
                  "results": rows, "summary": agg}
        write_json(self.out / "bench.json", record)
        return record

    def _run_one(self, method: str, seed: int, inputs: dict[str, Any], images: FeatureSet,
                 knowledge_path: Path | None) -> dict[str, Any]:
        from kec.bench.methods import score, write_run

        row: dict[str, Any] = {"method": method, "seed": seed}
        if method in KNOWLEDGE_METHODS and knowledge_path is None:
            row.update(status="skipped", note="no knowledge (--skip-knowledge)")
            return row
        start = time.perf_counter()
        try:
            out = self.runner(method, inputs, seed)
        except KecError as exc:
            logger.warning("%s seed %d failed: %s", method, seed, exc)
            row.update(status="failed", note=str(exc).splitlines()[0][:200])
            return row
        seconds = time.perf_counter() - start
        clusters = np.asarray(out["clusters"])
        metrics = score(images.labels, clusters)
        row.update(status="ok", seconds=round(seconds, 3),
                   **{m: round(100 * v, 3) for m, v in metrics.items()})
        if method == "cae" and not inputs.get("captions") and knowledge_path is None:
            row["note"] = "no captions (CAE's no-caption ablation)"
        run_dir = self.out / "runs" / method.replace("+", "_") / f"seed{seed}"
        write_run(run_dir, images, clusters, method=method, seed=seed, metrics=metrics,
                  seconds=seconds, extra=out.get("summary"), features_path=inputs["features_path"],
                  knowledge_path=knowledge_path)
        row["run"] = str(run_dir)
        return row


def _rows_csv(dataset: str, rows: Sequence[dict[str, Any]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    fields = ["dataset", "method", "seed", "status", "acc", "nmi", "ari", "seconds", "note",
              "run"]
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({"dataset": dataset, **r})
    return buf.getvalue()


def run_bench(config: BenchConfig, **kwargs: Any) -> dict[str, Any]:
    """Convenience: ``Bench(config, **kwargs).run()``."""
    return Bench(config, **kwargs).run()


__all__ = ["ALL_METHODS", "Bench", "BenchConfig", "environment", "run_bench"]
