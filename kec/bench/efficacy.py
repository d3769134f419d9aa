"""``kec bench wordnet-glosses|foldoc``: does knowledge help, on every seed, and never hurt?

Offline efficacy benchmarks on real text (:mod:`kec.bench.efficacy_data`: WordNet
glosses in a clean and a nuisance regime, FOLDOC definitions in their natural topics)
embedded by a real text encoder (all-MiniLM-L6-v2 by default). For each regime it runs
every method at every seed, the knowledge methods with each kind of knowledge
(``reference``, ``embedded``, ``wrong``, ``random``: see :mod:`kec.bench.efficacy_data`),
plus the zero-shot line (every item to its most similar reference concept), and writes
``summary.md`` (mean ± std, worst seed and every seed's ACC), ``results.csv``,
``bench.json`` and a check of the targets (:func:`kec.bench.efficacy_report.check_targets`).
Every embedding is cached on disk under ``out/cache`` (keyed on the encoder spec and
the text, as ``kec cluster --cache-dir`` keys it), so a second run only re-clusters.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kec._io import atomic_write_text, write_json
from kec._version import __version__
from kec.bench.efficacy_data import (
    DATASETS,
    KNOWLEDGE_KINDS,
    EfficacyDataset,
    data_file,
    efficacy_dataset,
    random_knowledge,
)
from kec.bench.efficacy_report import (
    KNOWLEDGE_METHODS,
    aggregate,
    check_targets,
    markdown,
    rows_csv,
)
from kec.errors import KecError

logger = logging.getLogger(__name__)

DATASET = "wordnet-glosses"
METHODS = ("kmeans", "tac", "cae", "kec", "kec+cae")
REGIMES = DATASETS[DATASET].regimes
#: full size (README command) and the reduced size CI runs, of ``wordnet-glosses``
FULL = DATASETS[DATASET].full
QUICK = DATASETS[DATASET].quick
SEEDS = (0, 1, 2, 3, 4)

__all__ = ["FULL", "KNOWLEDGE_KINDS", "KNOWLEDGE_METHODS", "METHODS", "QUICK", "SEEDS",
           "EfficacyBench", "EfficacyConfig", "aggregate", "check_targets", "data_file",
           "embedded_knowledge_path", "markdown", "reference_knowledge_path",
           "run_efficacy"]


def reference_knowledge_path(dataset: str = DATASET) -> Path:
    return efficacy_dataset(dataset).reference_path()


def embedded_knowledge_path(regime: str, dataset: str = DATASET) -> Path:
    return efficacy_dataset(dataset).embedded_path(regime)


@dataclass
class EfficacyConfig:
    """Parameters of one efficacy run (recorded in ``bench.json``).

    ``per_class``, ``vocab_limit`` and ``regimes`` left at ``None`` take the dataset's
    full size and all its regimes.
    """

    out: Path = Path("bench-efficacy")
    dataset: str = DATASET
    per_class: int | None = None
    vocab_limit: int | None = None
    seeds: tuple[int, ...] = SEEDS
    regimes: tuple[str, ...] | None = None
    methods: tuple[str, ...] = METHODS
    knowledge: tuple[str, ...] = KNOWLEDGE_KINDS
    encoder: str = "minilm"
    rebuild_knowledge: bool = False
    backend: str = "llamacpp"
    device: str = "auto"
    progress: bool = True

    @property
    def spec(self) -> EfficacyDataset:
        return efficacy_dataset(self.dataset)

    def resolved(self) -> EfficacyConfig:
        """A copy with the dataset's defaults filled in."""
        spec = self.spec
        return EfficacyConfig(**{
            **asdict(self), "out": self.out, "dataset": spec.name,
            "per_class": spec.full["per_class"] if self.per_class is None else self.per_class,
            "vocab_limit": (spec.full["vocab_limit"] if self.vocab_limit is None
                            else self.vocab_limit),
            "regimes": spec.regimes if self.regimes is None else self.regimes})

    def validate(self) -> None:
        spec = self.spec
        for name, values, allowed in (
                ("methods", self.methods, METHODS),
                ("regimes", self.regimes or spec.regimes, spec.regimes),
                ("knowledge", self.knowledge, KNOWLEDGE_KINDS)):
            bad = [v for v in values if v not in allowed]
            if bad or not values:
                raise KecError(f"unknown {name} {', '.join(bad) or '(none)'} for "
                               f"{spec.name}; choose from {', '.join(allowed)}")
        if not self.seeds:
            raise KecError("give at least one seed")
        if self.device not in ("auto", "cpu", "cuda"):
            raise KecError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if self.per_class is not None and self.per_class < 5:
            raise KecError(f"--per-class must be >= 5, got {self.per_class}")
        if self.vocab_limit is not None and self.vocab_limit < 100:
            raise KecError(f"--vocab-limit must be >= 100, got {self.vocab_limit}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
                for k, v in d.items()}


@dataclass
class _Regime:
    name: str
    X: np.ndarray
    y: np.ndarray
    class_names: list[str]
    knowledge: dict[str, Any] = field(default_factory=dict)  # kind -> KnowledgeFeatures


class EfficacyBench:
    """Run an :class:`EfficacyConfig` step by step (each step reusable alone)."""

    def __init__(self, config: EfficacyConfig,
                 encoder_factory: Callable[[str], Any] | None = None) -> None:
        config.validate()
        self.cfg = config.resolved()
        self.spec = self.cfg.spec
        self.out = Path(config.out)
        self.timings: dict[str, float] = {}
        self._encoder_factory = encoder_factory
        self._encoder: Any = None
        self._wn: Any = None
        self.lint: dict[str, Any] = {}

    def _timed(self, name: str, start: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 3)

    def encoder(self) -> Any:
        """The text encoder behind the on-disk embedding cache ``out/cache``, keyed on
        its spec as ``kec cluster --cache-dir`` keys it (so ``kec cluster --cache-dir
        OUT/cache`` reads the same vectors); the model loads on the first cache miss."""
        if self._encoder is None:
            from kec.encoders.cache import CachedTextEncoder

            spec = self.cfg.encoder
            factory = self._encoder_factory
            if factory is None:
                from kec.cluster.inputs import make_text_encoder as factory
            self._encoder = CachedTextEncoder(factory=lambda: factory(spec),
                                              cache_dir=self.out / "cache",
                                              key={"spec": spec})
        return self._encoder

    def compute_device(self) -> str | None:
        """The methods' ``device``: ``None`` (numpy) on the CPU, ``"cuda"`` on a GPU."""
        from kec.cluster.backend import method_device

        return method_device(self.cfg.device)

    def wordnet(self) -> Any:
        if self._wn is None:
            from kec.vocab import load_wordnet

            self._wn = load_wordnet()
        return self._wn

    def _encode(self, texts: list[str], what: str) -> np.ndarray:
        start = time.perf_counter()
        logger.info("embedding %d %s", len(texts), what)
        out = self.encoder().encode(texts, progress=self.cfg.progress)
        self._timed(f"embed_{what}", start)
        return np.asarray(out, dtype=np.float32)

    def _knowledge_features(self, X: np.ndarray, doc: dict[str, Any], source: str) -> Any:
        """The knowledge document ``doc`` (read from ``source``) as ``kec cluster``
        prepares it for a text collection (:func:`kec.cluster.inputs.prepare_inputs`:
        lint, drop what lint flags, embed with bare concept names)."""
        from kec.cluster.inputs import prepare_inputs

        prepared = prepare_inputs(X, "kec", knowledge=doc, text_encoder=self.encoder(),
                                  kind="items")
        lint = prepared.lint or {"dropped": [], "counts": {}}
        self.lint[source] = {"dropped": len(lint["dropped"]), "counts": lint["counts"]}
        return prepared.knowledge

    def embedded_knowledge(self, regime: str, X: np.ndarray, nouns: np.ndarray,
                           vocab: list[str], k: int) -> tuple[dict[str, Any], str]:
        """The embedded LLM's knowledge for ``regime``: shipped, or built from the scaffold."""
        from kec.knowledge.document import load_knowledge, save_knowledge

        shipped = self.spec.embedded_path(regime)
        if not self.cfg.rebuild_knowledge and shipped.is_file():
            return load_knowledge(shipped), str(shipped)
        path = self.out / "knowledge" / f"{regime}.embedded.knowledge.json"
        from kec.cluster.scaffold import build_groups

        start = time.perf_counter()
        groups = build_groups(X, nouns, vocab, rule="auto", n_classes=k, random_state=0)
        write_json(self.out / "knowledge" / f"{regime}.groups.json", groups)
        self._timed("scaffold", start)
        from kec.backends import create_backend
        from kec.llm.builder import KnowledgeBuilder

        start = time.perf_counter()
        with create_backend(self.cfg.backend) as backend:
            builder = KnowledgeBuilder(backend, self.encoder(),
                                       cache_dir=self.out / "llm-cache",
                                       progress=self.cfg.progress)
            doc = builder.build(groups=[g["labels"] for g in groups["groups"]],
                                source=f"{self.spec.name}:{regime}:scaffold")
        save_knowledge(doc, path)
        self._timed("build_knowledge", start)
        return doc, str(path)

    def _fixed_documents(self, n_classes: int) -> dict[str, tuple[dict[str, Any], str]]:
        """The reference, wrong and random knowledge documents (the same for every regime)."""
        from kec.knowledge.document import load_knowledge, save_knowledge

        docs: dict[str, tuple[dict[str, Any], str]] = {}
        if "reference" in self.cfg.knowledge:
            path = self.spec.reference_path()
            docs["reference"] = (load_knowledge(path), str(path))
        if "wrong" in self.cfg.knowledge:
            path = self.spec.wrong_path()
            docs["wrong"] = (load_knowledge(path), str(path))
        if "random" in self.cfg.knowledge:
            doc = random_knowledge(n_classes, self.wordnet(), seed=0, source=self.spec.name)
            path = self.out / "knowledge" / "random.knowledge.json"
            save_knowledge(doc, path)
            docs["random"] = (doc, str(path))
        return docs

    def _needs_nouns(self) -> bool:
        return any(m in ("tac", "cae") for m in self.cfg.methods) or (
            "embedded" in self.cfg.knowledge and (self.cfg.rebuild_knowledge or not all(
                self.spec.embedded_path(r).is_file() for r in self.cfg.regimes)))

    def prepare(self) -> tuple[list[_Regime], np.ndarray, list[str], dict[str, Any]]:
        """Items, features, vocabulary and knowledge of every regime."""
        from kec.datasets.wordnet_glosses import gloss_vocabulary

        need_nouns = self._needs_nouns()
        wn = self.wordnet() if need_nouns or self.spec.name == "wordnet-glosses" else None
        start = time.perf_counter()
        collections = {name: self.spec.load(name, self.cfg.per_class, wn)
                       for name in self.cfg.regimes}
        self._timed("load", start)
        first = next(iter(collections.values()))
        vocab: list[str] = []
        nouns = np.zeros((0, 1), dtype=np.float32)
        if need_nouns:
            start = time.perf_counter()
            vocab = gloss_vocabulary(first, wn=wn, limit=self.cfg.vocab_limit)
            self._timed("vocabulary", start)
            nouns = self._encode(vocab, "nouns")
        docs = self._fixed_documents(len(first.class_names))
        sources: dict[str, Any] = {kind: src for kind, (_, src) in docs.items()}
        regimes: list[_Regime] = []
        for name, col in collections.items():
            X = self._encode(col.texts, f"items_{name}")
            reg = _Regime(name, X, col.targets, col.class_names)
            start = time.perf_counter()
            for kind, (doc, src) in docs.items():
                reg.knowledge[kind] = self._knowledge_features(X, doc, src)
            if "embedded" in self.cfg.knowledge:
                doc, src = self.embedded_knowledge(name, X, nouns, vocab, len(col.class_names))
                reg.knowledge["embedded"] = self._knowledge_features(X, doc, src)
                sources[f"embedded_{name}"] = src
            self._timed("embed_knowledge", start)
            regimes.append(reg)
        return regimes, nouns, vocab, sources

    def zero_shot(self, reg: _Regime) -> dict[str, float]:
        """Every item to its most similar reference concept (name + description)."""
        from kec.cluster._checks import l2_normalize_rows
        from kec.cluster.metrics import evaluate
        from kec.knowledge.document import load_knowledge

        path = self.spec.reference_path()
        kf = reg.knowledge.get("reference") or self._knowledge_features(
            reg.X, load_knowledge(path), str(path))
        pred = (reg.X @ l2_normalize_rows(kf.zeta.copy()).T).argmax(axis=1)
        m = evaluate(reg.y, pred)
        return {k: 100 * float(m[k]) for k in ("acc", "nmi", "ari")}

    def cluster(self, method: str, reg: _Regime, knowledge: str | None, nouns: np.ndarray,
                seed: int) -> Any:
        """One run of ``method`` on regime ``reg`` with the knowledge of kind ``knowledge``
        (its :class:`~kec.cluster.methods.MethodResult`)."""
        from kec.cluster.methods import run_method
        from kec.cluster.registry import method_spec

        kwargs: dict[str, Any] = {"random_state": seed, "device": self.compute_device()}
        if "nouns" in method_spec(method).requires:
            kwargs["nouns"] = nouns
        if knowledge is not None:
            kwargs["knowledge"] = reg.knowledge[knowledge]
        return run_method(method, reg.X, len(reg.class_names), **kwargs)

    def run_one(self, method: str, reg: _Regime, knowledge: str | None, nouns: np.ndarray,
                seed: int) -> dict[str, Any]:
        """:meth:`cluster`, scored: one row of ``results.csv``."""
        from kec.cluster.metrics import evaluate

        row: dict[str, Any] = {"regime": reg.name, "method": method,
                               "knowledge": knowledge or "-", "seed": seed}
        start = time.perf_counter()
        try:
            res = self.cluster(method, reg, knowledge, nouns, seed)
        except KecError as exc:
            row.update(status="failed", note=str(exc))
            return row
        m = evaluate(reg.y, res.labels)
        row.update(status="ok", seconds=round(time.perf_counter() - start, 3),
                   **{k: 100 * float(m[k]) for k in ("acc", "nmi", "ari")})
        guard = res.info.get("guard")
        if guard:
            row.update(guard=guard["mode"], agreement=guard["agreement"],
                       trust=guard.get("trust"), corroboration=guard["corroboration"])
        return row

    def _jobs(self, regimes: list[_Regime]) -> list[tuple[str, _Regime, str | None, int]]:
        jobs = []
        for reg in regimes:
            for method in self.cfg.methods:
                kinds: list[str | None] = ([k for k in self.cfg.knowledge if k in reg.knowledge]
                                           if method in KNOWLEDGE_METHODS else [None])
                for kind in kinds:
                    for seed in self.cfg.seeds:
                        jobs.append((method, reg, kind, seed))
        return jobs

    def run(self) -> dict[str, Any]:
        """Every regime x method x knowledge x seed; tables and ``bench.json``."""
        from tqdm.auto import tqdm

        total = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        regimes, nouns, vocab, sources = self.prepare()
        zero_shot = {reg.name: self.zero_shot(reg) for reg in regimes
                     if "reference" in reg.knowledge}
        rows: list[dict[str, Any]] = []
        start = time.perf_counter()
        for method, reg, kind, seed in tqdm(self._jobs(regimes), desc="clustering",
                                             unit="run", disable=not self.cfg.progress,
                                             leave=False):
            rows.append(self.run_one(method, reg, kind, nouns, seed))
        self._timed("cluster", start)
        summary = aggregate(rows)
        targets = check_targets(summary, zero_shot, real_text=self.spec.real_text)
        self._timed("total", total)
        record = {"dataset": self.spec.name, "kec_version": __version__,
                  "config": self.cfg.to_dict(),
                  "sizes": {r.name: {"items": int(r.X.shape[0]),
                                     "classes": len(r.class_names)} for r in regimes},
                  "vocabulary": len(vocab), "encoder": self.encoder().describe(),
                  "device": self.compute_device() or "cpu (numpy)",
                  "knowledge": sources, "lint": self.lint, "zero_shot": zero_shot,
                  "summary": summary,
                  "targets": targets, "results": rows, "timings": self.timings}
        write_json(self.out / "bench.json", record)
        atomic_write_text(self.out / "results.csv", rows_csv(rows))
        atomic_write_text(self.out / "summary.md", markdown(record))
        return record


def run_efficacy(config: EfficacyConfig) -> dict[str, Any]:
    """Run the benchmark; see :class:`EfficacyBench`."""
    return EfficacyBench(config).run()
