"""``kec bench wordnet-glosses``: does knowledge help, and does it never hurt?

An offline efficacy benchmark on real text (WordNet 3.0 glosses, see
:mod:`kec.datasets.wordnet_glosses`) embedded by a real text encoder (all-MiniLM-L6-v2 by
default). For each regime (``clean``, ``nuisance``) it runs every method at every seed,
with each kind of knowledge:

``reference``
    the hand-written knowledge file shipped with kec
    (``kec/bench/data/wordnet_glosses.reference.knowledge.json``);
``embedded``
    knowledge built by the embedded default LLM (SmolLM2-135M via llama.cpp) from the
    scaffold's label groups of that regime. kec ships the file it built once
    (``wordnet_glosses.<regime>.embedded.knowledge.json``); ``rebuild_knowledge`` builds it
    again from this run's scaffold (LLM answers cached under ``out/llm-cache``).

plus the zero-shot line (every item to its most similar reference concept), and writes
``summary.md`` (mean ± std of ACC/NMI/ARI), ``results.csv``, ``bench.json`` and a check
of the targets (``targets`` in ``bench.json``). Every embedding is cached on disk under
``out/cache`` (keyed on the encoder and the text), so a second run only re-clusters.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from kec import __version__
from kec._io import atomic_write_text, write_json
from kec.errors import KecError

logger = logging.getLogger(__name__)

DATASET = "wordnet-glosses"
METHODS = ("kmeans", "tac", "cae", "kec", "kec+cae")
KNOWLEDGE_METHODS = ("kec", "kec+cae")
KNOWLEDGE_KINDS = ("reference", "embedded")
REGIMES = ("clean", "nuisance")
#: full size (README command) and the reduced size CI runs
FULL = {"per_class": 100, "vocab_limit": None}
QUICK = {"per_class": 50, "vocab_limit": 4000}


def data_file(name: str) -> Path:
    """A file shipped in ``kec/bench/data``."""
    return Path(str(files("kec.bench").joinpath("data", name)))


def reference_knowledge_path() -> Path:
    return data_file("wordnet_glosses.reference.knowledge.json")


def embedded_knowledge_path(regime: str) -> Path:
    return data_file(f"wordnet_glosses.{regime}.embedded.knowledge.json")


@dataclass
class EfficacyConfig:
    """Parameters of one efficacy run (recorded in ``bench.json``)."""

    out: Path = Path("bench-efficacy")
    per_class: int = FULL["per_class"]
    vocab_limit: int | None = FULL["vocab_limit"]
    seeds: tuple[int, ...] = (0, 1, 2)
    regimes: tuple[str, ...] = REGIMES
    methods: tuple[str, ...] = METHODS
    knowledge: tuple[str, ...] = KNOWLEDGE_KINDS
    encoder: str = "minilm"
    rebuild_knowledge: bool = False
    backend: str = "llamacpp"
    device: str = "auto"
    progress: bool = True

    def validate(self) -> None:
        for name, values, allowed in (("methods", self.methods, METHODS),
                                      ("regimes", self.regimes, REGIMES),
                                      ("knowledge", self.knowledge, KNOWLEDGE_KINDS)):
            bad = [v for v in values if v not in allowed]
            if bad or not values:
                raise KecError(f"unknown {name} {', '.join(bad) or '(none)'}; choose from "
                               f"{', '.join(allowed)}")
        if not self.seeds:
            raise KecError("give at least one seed")
        if self.device not in ("auto", "cpu", "cuda"):
            raise KecError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if self.per_class < 5:
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


def _stats(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std()) if a.size > 1 else 0.0


class EfficacyBench:
    """Run an :class:`EfficacyConfig` step by step (each step reusable alone)."""

    def __init__(self, config: EfficacyConfig,
                 encoder_factory: Callable[[str], Any] | None = None) -> None:
        config.validate()
        self.cfg = config
        self.out = Path(config.out)
        self.timings: dict[str, float] = {}
        self._encoder_factory = encoder_factory
        self._encoder: Any = None
        self._wn: Any = None
        self.lint: dict[str, Any] = {}

    def _timed(self, name: str, start: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 3)

    def encoder(self) -> Any:
        """The text encoder, wrapped in the on-disk embedding cache (loaded once)."""
        if self._encoder is None:
            from kec.encoders.cache import CachedTextEncoder

            if self._encoder_factory is not None:
                base = self._encoder_factory(self.cfg.encoder)
            else:
                from kec.encoders import create_text_encoder

                base = create_text_encoder(self.cfg.encoder)
            self._encoder = CachedTextEncoder(base, self.out / "cache")
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

    def _knowledge_features(self, doc: dict[str, Any], source: str) -> Any:
        """As ``kec cluster`` does by default: lint, drop what lint flags, embed."""
        from kec.api import lint_and_drop
        from kec.cluster.knowledge_features import knowledge_features

        doc, lint = lint_and_drop(doc, self.encoder())
        self.lint[source] = {"dropped": len(lint["dropped"]), "counts": lint["counts"]}
        return knowledge_features(doc, self.encoder(), name_template="{}", source=source)

    def embedded_knowledge(self, regime: str, X: np.ndarray, nouns: np.ndarray,
                           vocab: list[str], k: int) -> tuple[dict[str, Any], str]:
        """The embedded LLM's knowledge for ``regime``: shipped, or built from the scaffold."""
        from kec.knowledge.document import load_knowledge, save_knowledge

        shipped = embedded_knowledge_path(regime)
        if not self.cfg.rebuild_knowledge and shipped.is_file():
            return load_knowledge(shipped), str(shipped)
        path = self.out / "knowledge" / f"{regime}.embedded.knowledge.json"
        from kec.cluster.scaffold import build_groups

        start = time.perf_counter()
        groups = build_groups(X, nouns, vocab, rule="auto", n_classes=k, random_state=0)
        write_json(self.out / "knowledge" / f"{regime}.groups.json", groups)
        self._timed("scaffold", start)
        from kec.backends import create_backend
        from kec.knowledge.builder import KnowledgeBuilder

        start = time.perf_counter()
        with create_backend(self.cfg.backend) as backend:
            builder = KnowledgeBuilder(backend, self.encoder(),
                                       cache_dir=self.out / "llm-cache",
                                       progress=self.cfg.progress)
            doc = builder.build(groups=[g["labels"] for g in groups["groups"]],
                                source=f"{DATASET}:{regime}:scaffold")
        save_knowledge(doc, path)
        self._timed("build_knowledge", start)
        return doc, str(path)

    def prepare(self) -> tuple[list[_Regime], np.ndarray, list[str], dict[str, Any]]:
        """Items, features, vocabulary and knowledge of every regime."""
        from kec.datasets.wordnet_glosses import gloss_vocabulary, load_wordnet_glosses
        from kec.knowledge.document import load_knowledge

        wn = self.wordnet()
        regimes: list[_Regime] = []
        collections = {}
        start = time.perf_counter()
        for name in self.cfg.regimes:
            collections[name] = load_wordnet_glosses(name, per_class=self.cfg.per_class, wn=wn)
        self._timed("load", start)
        first = next(iter(collections.values()))
        need_nouns = any(m in ("tac", "cae") for m in self.cfg.methods) or (
            "embedded" in self.cfg.knowledge and self.cfg.rebuild_knowledge)
        vocab: list[str] = []
        nouns = np.zeros((0, 1), dtype=np.float32)
        if need_nouns:
            start = time.perf_counter()
            vocab = gloss_vocabulary(first, wn=wn, limit=self.cfg.vocab_limit)
            self._timed("vocabulary", start)
            nouns = self._encode(vocab, "nouns")
        ref_doc = load_knowledge(reference_knowledge_path())
        sources: dict[str, Any] = {"reference": str(reference_knowledge_path())}
        for name, col in collections.items():
            X = self._encode(col.texts, f"items_{name}")
            reg = _Regime(name, X, col.targets, col.class_names)
            start = time.perf_counter()
            if "reference" in self.cfg.knowledge:
                reg.knowledge["reference"] = self._knowledge_features(ref_doc, "reference")
            if "embedded" in self.cfg.knowledge:
                if not self.cfg.rebuild_knowledge and not embedded_knowledge_path(name).is_file():
                    logger.warning("kec ships no embedded-LLM knowledge for the %s regime: "
                                   "skipped (--rebuild-knowledge builds it)", name)
                    sources[f"embedded_{name}"] = None
                else:
                    doc, src = self.embedded_knowledge(name, X, nouns, vocab,
                                                       len(col.class_names))
                    reg.knowledge["embedded"] = self._knowledge_features(doc, src)
                    sources[f"embedded_{name}"] = src
            self._timed("embed_knowledge", start)
            regimes.append(reg)
        return regimes, nouns, vocab, sources

    def zero_shot(self, reg: _Regime) -> dict[str, float]:
        """Every item to its most similar reference concept (name + description)."""
        from kec.cluster.metrics import evaluate
        from kec.knowledge.document import load_knowledge

        kf = reg.knowledge.get("reference") or self._knowledge_features(
            load_knowledge(reference_knowledge_path()), "reference")
        from kec.cluster._checks import l2_normalize_rows

        pred = (reg.X @ l2_normalize_rows(kf.zeta.copy()).T).argmax(axis=1)
        m = evaluate(reg.y, pred)
        return {k: 100 * float(m[k]) for k in ("acc", "nmi", "ari")}

    def run_one(self, method: str, reg: _Regime, knowledge: str | None, nouns: np.ndarray,
                seed: int) -> dict[str, Any]:
        from kec.cluster.methods import run_method
        from kec.cluster.metrics import evaluate

        row: dict[str, Any] = {"regime": reg.name, "method": method,
                               "knowledge": knowledge or "-", "seed": seed}
        kwargs: dict[str, Any] = {"random_state": seed, "device": self.compute_device()}
        if method in ("tac", "cae"):
            kwargs["nouns"] = nouns
        if knowledge is not None:
            kwargs["knowledge"] = reg.knowledge[knowledge]
        start = time.perf_counter()
        try:
            res = run_method(method, reg.X, len(reg.class_names), **kwargs)
        except KecError as exc:
            row.update(status="failed", note=str(exc))
            return row
        m = evaluate(reg.y, res.labels)
        row.update(status="ok", seconds=round(time.perf_counter() - start, 3),
                   **{k: 100 * float(m[k]) for k in ("acc", "nmi", "ari")})
        guard = res.info.get("guard")
        if guard:
            row["guard"] = guard["mode"]
            row["corroboration"] = guard["corroboration"]
            row["agreement"] = guard["agreement"]
        return row

    def run(self) -> dict[str, Any]:
        """Every regime x method x knowledge x seed; tables and ``bench.json``."""
        from tqdm.auto import tqdm

        total = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        regimes, nouns, vocab, sources = self.prepare()
        rows: list[dict[str, Any]] = []
        zero_shot = {}
        jobs = []
        for reg in regimes:
            zero_shot[reg.name] = self.zero_shot(reg)
            for method in self.cfg.methods:
                kinds: list[str | None] = ([k for k in self.cfg.knowledge if k in reg.knowledge]
                                           if method in KNOWLEDGE_METHODS else [None])
                for kind in kinds:
                    for seed in self.cfg.seeds:
                        jobs.append((method, reg, kind, seed))
        start = time.perf_counter()
        for method, reg, kind, seed in tqdm(jobs, desc="clustering", unit="run",
                                             disable=not self.cfg.progress, leave=False):
            rows.append(self.run_one(method, reg, kind, nouns, seed))
        self._timed("cluster", start)
        summary = aggregate(rows)
        targets = check_targets(summary, zero_shot)
        self._timed("total", total)
        record = {"dataset": DATASET, "kec_version": __version__,
                  "config": self.cfg.to_dict(),
                  "sizes": {r.name: {"items": int(r.X.shape[0]),
                                     "classes": len(r.class_names)} for r in regimes},
                  "vocabulary": len(vocab), "encoder": self.encoder().describe(),
                  "device": self.compute_device() or "cpu (numpy)",
                  "knowledge": sources, "lint": self.lint, "zero_shot": zero_shot,
                  "summary": summary,
                  "targets": targets, "results": rows, "timings": self.timings}
        write_json(self.out / "bench.json", record)
        atomic_write_text(self.out / "results.csv", _csv(rows))
        atomic_write_text(self.out / "summary.md", markdown(record))
        return record


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over seeds per (regime, method, knowledge)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["regime"], r["method"], r["knowledge"]), []).append(r)
    out = []
    for (regime, method, kind), rs in groups.items():
        ok = [r for r in rs if r.get("status") == "ok"]
        entry: dict[str, Any] = {"regime": regime, "method": method, "knowledge": kind,
                                 "seeds": len(ok), "status": "ok" if ok else "failed"}
        for m in ("acc", "nmi", "ari"):
            if ok:
                entry[m], entry[f"{m}_std"] = _stats([r[m] for r in ok])
        modes = sorted({r["guard"] for r in ok if r.get("guard")})
        if modes:
            entry["guard"] = "/".join(modes)
        out.append(entry)
    return out


def _find(summary: list[dict[str, Any]], regime: str, method: str,
          kind: str) -> dict[str, Any] | None:
    for e in summary:
        if (e["regime"], e["method"], e["knowledge"]) == (regime, method, kind) \
                and e["status"] == "ok":
            return e
    return None


def check_targets(summary: list[dict[str, Any]],
                  zero_shot: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """The efficacy targets (issue: knowledge never hurts; good knowledge helps).

    - clean: every knowledge method with every knowledge >= k-means - 1 in ACC and NMI;
    - nuisance: kec+cae with the reference knowledge >= zero-shot + 3 ACC, and with the
      embedded LLM's knowledge >= k-means + 25 ACC.
    """
    out: list[dict[str, Any]] = []
    km = _find(summary, "clean", "kmeans", "-")
    for kind in KNOWLEDGE_KINDS:
        for method in KNOWLEDGE_METHODS:
            e = _find(summary, "clean", method, kind)
            if km is None or e is None:
                continue
            for metric in ("acc", "nmi"):
                out.append({"target": f"clean: {method} ({kind}) {metric.upper()} >= "
                                      f"k-means - 1",
                            "value": round(e[metric], 2),
                            "bound": round(km[metric] - 1, 2),
                            "met": bool(e[metric] >= km[metric] - 1)})
    e = _find(summary, "nuisance", "kec+cae", "reference")
    if e is not None and "nuisance" in zero_shot:
        bound = zero_shot["nuisance"]["acc"] + 3
        out.append({"target": "nuisance: kec+cae (reference) ACC >= zero-shot + 3",
                    "value": round(e["acc"], 2), "bound": round(bound, 2),
                    "met": bool(e["acc"] >= bound)})
    e = _find(summary, "nuisance", "kec+cae", "embedded")
    kmn = _find(summary, "nuisance", "kmeans", "-")
    if e is not None and kmn is not None:
        bound = kmn["acc"] + 25
        out.append({"target": "nuisance: kec+cae (embedded) ACC >= k-means + 25",
                    "value": round(e["acc"], 2), "bound": round(bound, 2),
                    "met": bool(e["acc"] >= bound)})
    return out


def _csv(rows: list[dict[str, Any]]) -> str:
    cols = ["regime", "method", "knowledge", "seed", "status", "acc", "nmi", "ari",
            "seconds", "guard", "agreement", "corroboration", "note"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _cell(e: dict[str, Any] | None, m: str) -> str:
    if e is None or m not in e:
        return "–"
    return f"{e[m]:.1f} ± {e[f'{m}_std']:.1f}"


def markdown(record: dict[str, Any]) -> str:
    """The README table: per regime, every method and knowledge, mean ± std."""
    cfg = record["config"]
    lines = [f"## Efficacy: {DATASET} ({', '.join(record['sizes'])}; seeds "
             f"{', '.join(str(s) for s in cfg['seeds'])}; kec {record['kec_version']})", ""]
    for regime, size in record["sizes"].items():
        lines.append(f"### {regime} ({size['items']} items, {size['classes']} classes)")
        lines.append("")
        lines.append("| method | knowledge | ACC | NMI | ARI | guarded mode |")
        lines.append("|---|---|---|---|---|---|")
        zs = record["zero_shot"].get(regime)
        if zs:
            lines.append(f"| zero-shot | reference | {zs['acc']:.1f} | {zs['nmi']:.1f} | "
                         f"{zs['ari']:.1f} | |")
        for e in record["summary"]:
            if e["regime"] != regime:
                continue
            lines.append(f"| {e['method']} | {e['knowledge']} | {_cell(e, 'acc')} | "
                         f"{_cell(e, 'nmi')} | {_cell(e, 'ari')} | {e.get('guard', '')} |")
        lines.append("")
    if record["targets"]:
        lines.append("### Targets")
        lines.append("")
        lines.append("| target | value | bound | met |")
        lines.append("|---|---|---|---|")
        for t in record["targets"]:
            lines.append(f"| {t['target']} | {t['value']:.1f} | {t['bound']:.1f} | "
                         f"{'yes' if t['met'] else 'NO'} |")
        lines.append("")
    return "\n".join(lines)


def run_efficacy(config: EfficacyConfig) -> dict[str, Any]:
    """Run the benchmark; see :class:`EfficacyBench`."""
    return EfficacyBench(config).run()
