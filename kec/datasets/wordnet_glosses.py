"""WordNet glosses: a real, offline text-collection benchmark for knowledge methods.

Items are the glosses (definitions) of WordNet 3.0 noun synsets that sit below one of a
few hand-picked **root** synsets; an item's category is its root. Nothing here needs a
download: WordNet comes from Debian's ``wordnet-base`` (see :mod:`kec.vocab`).

Two regimes:

``clean``
    the gloss alone;
``nuisance``
    the gloss preceded by one of :data:`CONTEXTS` (a setting, a medium, a style), drawn
    at random and independently of the category, as a photo's background is. In a text
    encoder the context sentence dominates the embedding, so k-means on the raw
    features finds the contexts rather than the categories.

The **noun vocabulary** for noun-based methods (TAC, CAE, the scaffold) is every WordNet
noun lemma except the lemmas of the items themselves, so no item can look itself up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kec.datasets.base import DatasetError

#: (category name, root synset). Chosen to be disjoint, concrete, each with >= 50 hyponyms.
ROOTS: tuple[tuple[str, str], ...] = (
    ("dog", "dog.n.01"),
    ("bird", "bird.n.01"),
    ("fish", "fish.n.01"),
    ("insect", "insect.n.01"),
    ("tree", "tree.n.01"),
    ("flower", "flower.n.01"),
    ("musical instrument", "musical_instrument.n.01"),
    ("weapon", "weapon.n.01"),
    ("vessel", "vessel.n.02"),
    ("building", "building.n.01"),
    ("garment", "garment.n.01"),
    ("dish", "dish.n.02"),
    ("beverage", "beverage.n.01"),
    ("disease", "disease.n.01"),
    ("sport", "sport.n.01"),
)

#: Context sentences of the nuisance regime: settings, media, styles; none names a category.
CONTEXTS: tuple[str, ...] = (
    "Spotted late at night under flickering neon signs in a crowded downtown market,",
    "Shown in a faded black-and-white newspaper photograph from the nineteen-thirties,",
    "Painted with thick oil brushstrokes on a large canvas hanging in a quiet museum,",
    "Captured by a grainy security camera in a dim underground parking garage,",
    "Drawn in bright cheerful colours for a Saturday-morning children's cartoon,",
    "Photographed at sunrise on a snowy mountain ridge with pink clouds behind,",
    "Sketched quickly in pencil on a page of a worn travel notebook,",
    "Rendered as blocky pixel art on the screen of a retro video game console,",
)

REGIMES = ("clean", "nuisance")


@dataclass
class GlossCollection:
    """A labelled text collection built from WordNet glosses.

    Attributes
    ----------
    texts : list of str
        One item per row (the gloss, with its context sentence in the nuisance regime).
    targets : numpy.ndarray
        ``(n,)`` int64 category of every item.
    class_names : list of str
        Category names, ``class_names[targets[i]]``.
    ids : list of str
        The synset name of every item (``"beagle.n.01"``).
    lemmas : list of list of str
        The noun lemmas of every item (excluded from the vocabulary).
    contexts : list of int
        Index into :data:`CONTEXTS` per item (``-1`` in the clean regime).
    info : dict
        Provenance: regime, roots, per-class size, seed, WordNet version.
    """

    texts: list[str]
    targets: np.ndarray
    class_names: list[str]
    ids: list[str]
    lemmas: list[list[str]]
    contexts: list[int]
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def labels(self) -> list[str]:
        """The category name of every item."""
        return [self.class_names[int(t)] for t in self.targets]


def _lemma_text(name: str) -> str:
    return name.replace("_", " ")


def _hyponyms(synset: Any) -> set[Any]:
    return set(synset.closure(lambda s: s.hyponyms() + s.instance_hyponyms()))


def category_members(wn: Any, roots: Sequence[tuple[str, str]] = ROOTS) -> dict[str, list[Any]]:
    """Every hyponym synset of each root, minus synsets below two roots (sorted by name)."""
    members: dict[str, set[Any]] = {}
    for name, root in roots:
        try:
            members[name] = _hyponyms(wn.synset(root))
        except Exception as exc:  # nltk raises WordNetError (a bare Exception subclass)
            raise DatasetError(f"WordNet has no synset {root!r} ({exc})") from None
    seen: dict[Any, int] = {}
    for syns in members.values():
        for s in syns:
            seen[s] = seen.get(s, 0) + 1
    return {name: sorted((s for s in syns if seen[s] == 1), key=lambda s: s.name())
            for name, syns in members.items()}


def load_wordnet_glosses(
    regime: str = "clean",
    *,
    per_class: int = 60,
    seed: int = 0,
    roots: Sequence[tuple[str, str]] = ROOTS,
    wn: Any = None,
) -> GlossCollection:
    """Sample ``per_class`` glosses below every root, in the given regime.

    Parameters
    ----------
    regime : {"clean", "nuisance"}
        Gloss alone, or gloss preceded by a random context sentence.
    per_class : int
        Items per category (every category must have at least this many).
    seed : int
        Seed of the item sample and of the context draw (the dataset's identity).
    roots : sequence of (name, synset)
        Categories; default :data:`ROOTS`.
    wn : WordNet reader, optional
        Default: :func:`kec.vocab.load_wordnet` (offline).

    Raises
    ------
    DatasetError
        Unknown regime, too few items in a category, a root missing from WordNet.
    """
    if regime not in REGIMES:
        raise DatasetError(f"regime must be one of {REGIMES}, got {regime!r}")
    if per_class < 1:
        raise DatasetError(f"per_class must be >= 1, got {per_class}")
    if wn is None:
        from kec.vocab import load_wordnet

        wn = load_wordnet()
    members = category_members(wn, roots)
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    targets: list[int] = []
    ids: list[str] = []
    lemmas: list[list[str]] = []
    for c, (name, _) in enumerate(roots):
        pool = members[name]
        if len(pool) < per_class:
            raise DatasetError(f"category {name!r} has {len(pool)} items, fewer than "
                               f"per_class={per_class}")
        for i in sorted(rng.choice(len(pool), size=per_class, replace=False).tolist()):
            s = pool[i]
            texts.append(s.definition().strip())
            targets.append(c)
            ids.append(s.name())
            lemmas.append([_lemma_text(n) for n in s.lemma_names()])
    contexts = [-1] * len(texts)
    if regime == "nuisance":
        ctx_rng = np.random.default_rng([seed, 1])
        contexts = ctx_rng.integers(0, len(CONTEXTS), size=len(texts)).tolist()
        texts = [f"{CONTEXTS[j]} {t}" for j, t in zip(contexts, texts)]
    return GlossCollection(
        texts=texts, targets=np.asarray(targets, dtype=np.int64),
        class_names=[n for n, _ in roots], ids=ids, lemmas=lemmas, contexts=contexts,
        info={"dataset": "wordnet-glosses", "regime": regime, "per_class": per_class,
              "seed": seed, "roots": [list(r) for r in roots],
              "n_contexts": len(CONTEXTS) if regime == "nuisance" else 0,
              "wordnet": str(getattr(wn, "get_version", lambda: "3.0")())},
    )


def gloss_vocabulary(
    collection: GlossCollection, *, wn: Any = None, limit: int | None = None, seed: int = 0,
) -> list[str]:
    """WordNet noun lemmas minus every lemma of the collection's items.

    ``limit`` keeps a random sample of that many nouns (for quick runs), always including
    the category names; the order is sorted so the list is stable.
    """
    if wn is None:
        from kec.vocab import load_wordnet

        wn = load_wordnet()
    drop = {lemma.lower() for lem in collection.lemmas for lemma in lem}
    nouns = sorted(n for n in {_lemma_text(x) for x in wn.all_lemma_names(pos="n")}
                   if n and n.lower() not in drop)
    if limit is not None and limit < len(nouns):
        rng = np.random.default_rng(seed)
        keep = set(rng.choice(len(nouns), size=limit, replace=False).tolist())
        names = {n.lower() for n in collection.class_names}
        nouns = [n for i, n in enumerate(nouns) if i in keep or n.lower() in names]
    return nouns
