r"""Which labels name the same kind of thing: WordNet links plus text similarity.

Text similarity alone does not condense labels: all-MiniLM cosines inside groups such as
*kitten/cat/tabby* are 0.30-0.66 and overlap the cosines across them (*kitten/puppy*
0.61), so no threshold separates them. WordNet 3.0 (Miller, 1995) knows the relations:
a label is linked to another label when

``synonym``
    they share a noun synset (*car/automobile*);
``hypernym``
    one of the first ``max_senses`` noun senses of one label has the other's first sense
    among its hypernyms within ``max_hops`` steps (*beagle -> hound -> hunting dog ->
    dog*; *lorry* (sense 2) *-> truck*);
``gloss``
    the genus word of its gloss -- the head noun of the definition's first phrase, the
    *genus* of a genus-differentia definition -- is the other label (*kitten*: "young
    domestic **cat**", *puppy*: "a young **dog**");
``sibling``
    both are *subordinate* terms, not yet tied to a common name among the labels, whose
    first senses meet within ``sibling_hops`` steps of each at a common hypernym that is
    specific enough (intrinsic information content >= ``min_ic``): *sparrow/finch/robin*
    at *passerine*, *orchid/poppy* at *flower*, but not *bear/camel* at *placental*. A
    term is subordinate when its tagged-corpus frequency in WordNet (``cntlist``) is
    below ``basic_count``: frequent names (*cat*, *dog*, *car*, *truck*) are basic-level
    categories (Rosch et al., 1976) and are never merged with their siblings;
``similarity``
    their text embeddings' cosine exceeds the threshold :math:`\beta`
    (docs/methods.md §2.2, ``cos(e_i, e_j) > beta``): near-duplicate spellings, labels
    WordNet does not know.

Groups are the connected components of the union of these links.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kec.knowledge.grouping import threshold_components

__all__ = ["GroupingResult", "Link", "genus_word", "group_labels", "wordnet_links"]

_CUT_TEXT = (
    "with without that which who whose of having usually often especially typically in "
    "on for from by used suitable designed resembling consisting native found , ; : ( "
    "and or"
)
_CUT = frozenset(_CUT_TEXT.split())
_LEAD = re.compile(r"^(?:(?:a|an|the|any|one|some)\s+)?(?:(?:of\s+)?(?:several|numerous|many|"
                   r"various|a\s+number|the|various\s+kinds)\s+)?(?:of\s+)?")
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'-]*|[,;:(]")


@dataclass(frozen=True)
class Link:
    """Labels ``a`` and ``b`` (indices) name the same kind of thing, because ``reason``."""

    a: int
    b: int
    reason: str

    def to_dict(self, labels: Sequence[str]) -> dict[str, str]:
        return {"a": labels[self.a], "b": labels[self.b], "reason": self.reason}


@dataclass
class GroupingResult:
    """Groups of label indices and how they were found."""

    groups: list[list[int]]
    method: str
    links: list[Link] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def record(self, labels: Sequence[str]) -> dict[str, Any]:
        """The provenance record (``provenance.grouping`` of a knowledge file)."""
        return {"method": self.method, **self.params,
                "links": [lk.to_dict(labels) for lk in self.links]}


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def genus_word(definition: str) -> str | None:
    """The head noun of a WordNet gloss's first phrase, singular and lower-case.

    ``"young domestic cat" -> "cat"``, ``"a young dog" -> "dog"``,
    ``"any of numerous small songbirds with short stout bills" -> "songbird"``.
    """
    text = _LEAD.sub("", definition.strip().lower())
    head = None
    for tok in _TOKEN.findall(text):
        if tok in _CUT:
            break
        head = tok
    return _singular(head) if head else None


def _synsets(wn: Any, label: str) -> list[Any]:
    return list(wn.synsets(label.strip().lower().replace(" ", "_"), pos="n"))


def _count(wn: Any, label: str) -> int:
    key = label.strip().lower().replace(" ", "_")
    return sum(lem.count() for s in _synsets(wn, label) for lem in s.lemmas()
               if lem.name().lower() == key)


def _ancestors(synset: Any, max_hops: int) -> dict[Any, int]:
    """Hypernyms (and instance hypernyms) of ``synset`` within ``max_hops`` steps."""
    out: dict[Any, int] = {}
    frontier = [synset]
    for hop in range(1, max_hops + 1):
        nxt = []
        for s in frontier:
            for h in s.hypernyms() + s.instance_hypernyms():
                if h not in out:
                    out[h] = hop
                    nxt.append(h)
        frontier = nxt
    return out


def wordnet_links(
    labels: Sequence[str],
    wn: Any,
    *,
    max_senses: int = 3,
    max_hops: int = 4,
    sibling_hops: int = 3,
    basic_count: int = 10,
    min_ic: float = 0.45,
) -> list[Link]:
    """WordNet links between labels (see the module docstring for each kind).

    Parameters
    ----------
    labels : sequence of str
    wn : nltk WordNetCorpusReader
        E.g. :func:`kec.vocab.load_wordnet`.
    max_senses : int
        Noun senses of a label searched for hypernym and gloss links.
    max_hops : int
        Hypernym steps searched for a ``hypernym`` link.
    sibling_hops : int
        Steps from each first sense to the common hypernym of a ``sibling`` link
        (0 disables sibling links).
    basic_count : int
        WordNet tagged-corpus count at or above which a label is a basic-level name,
        never merged with its siblings.
    min_ic : float
        Least intrinsic information content (:func:`intrinsic_ic`) of the common
        hypernym of a ``sibling`` link: 0.45 allows about 500 hyponyms (*passerine*
        279, *flower* 467) and stops at broad classes (*placental* 1,119, *container*
        744, *vascular plant* 4,390). kec's choice.

    Returns
    -------
    list of Link
        Sorted by ``(a, b)``, with ``a < b``; one link (the first reason found) per pair.
    """
    n = len(labels)
    senses = [_synsets(wn, x)[:max_senses] for x in labels]
    first = [s[0] if s else None for s in senses]
    keys = [x.strip().lower() for x in labels]
    by_key: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(_singular(k), []).append(i)
    found: dict[tuple[int, int], str] = {}

    def add(i: int, j: int, reason: str) -> None:
        if i != j:
            found.setdefault((min(i, j), max(i, j)), reason)

    first_of: dict[Any, list[int]] = {}
    for j, s in enumerate(first):
        if s is not None:
            first_of.setdefault(s, []).append(j)
    for i in range(n):
        for s in senses[i]:
            for j in first_of.get(s, []):  # a sense of i is j's first sense
                add(i, j, "synonym")
    for i in range(n):
        for k, s in enumerate(senses[i]):  # later senses: direct hypernyms only
            for anc in _ancestors(s, max_hops if k == 0 else 1):
                for j in first_of.get(anc, []):
                    add(i, j, "hypernym")
        if first[i] is not None:
            g = genus_word(first[i].definition())
            for j in by_key.get(g or "", []):
                add(i, j, "gloss")
    if sibling_hops > 0:
        _sibling_links(labels, wn, first, found, sibling_hops, basic_count, min_ic)
    return [Link(a, b, r) for (a, b), r in sorted(found.items())]


def _sibling_links(labels: Sequence[str], wn: Any, first: list[Any],
                   found: dict[tuple[int, int], str], hops: int, basic_count: int,
                   min_ic: float) -> None:
    """Add ``sibling`` links between subordinate labels whose groups have no basic name."""
    n = len(labels)
    basic = [first[i] is not None and _count(wn, labels[i]) >= basic_count for i in range(n)]
    # groups so far: a group holding a basic-level name is anchored to it
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in found:
        parent[root(a)] = root(b)
    anchored = {root(i) for i in range(n) if basic[i]}
    free = [i for i in range(n) if first[i] is not None and root(i) not in anchored]
    anc = {i: {**_ancestors(first[i], hops), first[i]: 0} for i in free}
    specific: dict[Any, bool] = {}

    # IC >= min_ic  <=>  hypo(c) + 1 <= N ** (1 - min_ic): count hyponyms up to that bound
    bound = int(np.floor(_n_nouns(wn) ** (1.0 - min_ic))) - 1

    def is_specific(s: Any) -> bool:
        if s not in specific:
            specific[s] = _count_hyponyms(s, bound + 1) <= bound
        return specific[s]

    for x, i in enumerate(free):
        for j in free[x + 1:]:
            if root(i) != root(j) and any(is_specific(h)
                                          for h in anc[i].keys() & anc[j].keys()):
                found.setdefault((min(i, j), max(i, j)), "sibling")


def intrinsic_ic(synset: Any, wn: Any) -> float:
    r"""Intrinsic information content of a synset (Seco, Veale & Hayes, ECAI 2004):

    .. math::  \mathrm{IC}(c) = 1 - \frac{\log(\mathrm{hypo}(c) + 1)}{\log N}

    with :math:`\mathrm{hypo}(c)` the number of its (transitive) hyponyms and
    :math:`N` the number of noun synsets (82,115 in WordNet 3.0). 1 for a leaf, 0 for
    *entity*.
    """
    n_hypo = _count_hyponyms(synset)
    return 1.0 - float(np.log(n_hypo + 1) / np.log(_n_nouns(wn)))


def _count_hyponyms(synset: Any, stop: int | None = None) -> int:
    """Distinct transitive hyponyms of ``synset``; counting stops once ``stop`` is
    reached."""
    seen: set[Any] = set()
    frontier = [synset]
    while frontier:
        nxt = []
        for s in frontier:
            for h in s.hyponyms() + s.instance_hyponyms():
                if h not in seen:
                    seen.add(h)
                    nxt.append(h)
                    if stop is not None and len(seen) >= stop:
                        return len(seen)
        frontier = nxt
    return len(seen)


_N_NOUNS: dict[int, int] = {}


def _n_nouns(wn: Any) -> int:
    key = id(wn)
    if key not in _N_NOUNS:
        try:
            version = wn.get_version()
        except Exception:  # pragma: no cover - a reader without a version
            version = None
        if version == "3.0":
            _N_NOUNS[key] = 82115  # noun synsets of WordNet 3.0
        else:  # pragma: no cover - other WordNet versions
            _N_NOUNS[key] = sum(1 for _ in wn.all_synsets("n"))
    return _N_NOUNS[key]


def group_labels(
    labels: Sequence[str],
    emb: np.ndarray | None,
    *,
    threshold: float = 0.8,
    wordnet: Any = None,
    sibling_hops: int = 3,
    basic_count: int = 10,
) -> GroupingResult:
    r"""Group labels that name the same kind of thing.

    Links are WordNet's (:func:`wordnet_links`, when ``wordnet`` is given) and text
    similarity :math:`\cos(e_i, e_j) > \beta` (when ``emb`` is given); groups are the
    connected components of their union, each sorted, ordered by first member.

    Parameters
    ----------
    labels : sequence of str
    emb : (n, d) array or None
        Label embeddings (rows are normalised here).
    threshold : float
        :math:`\beta` for similarity links.
    wordnet : nltk WordNetCorpusReader, optional
    sibling_hops, basic_count : int
        See :func:`wordnet_links`.

    Returns
    -------
    GroupingResult
        ``method`` is ``"wordnet+similarity"``, ``"wordnet"``, ``"similarity"`` or
        ``"none"`` (every label alone), by the sources used.
    """
    n = len(labels)
    links: list[Link] = []
    if wordnet is not None:
        links += wordnet_links(labels, wordnet, sibling_hops=sibling_hops,
                               basic_count=basic_count)
    if emb is not None and n > 1:
        known = {(lk.a, lk.b) for lk in links}
        e = np.asarray(emb, dtype=np.float64)
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        ii, jj = np.nonzero(np.triu(e @ e.T > threshold, k=1))
        links += [Link(int(i), int(j), "similarity") for i, j in zip(ii, jj)
                  if (int(i), int(j)) not in known]
    adj = np.zeros((n, n), dtype=float)
    for lk in links:
        adj[lk.a, lk.b] = adj[lk.b, lk.a] = 1.0
    groups = threshold_components(adj, 0.5) if n else []
    parts = [p for p, used in (("wordnet", wordnet is not None),
                               ("similarity", emb is not None)) if used]
    params: dict[str, Any] = {}
    if emb is not None:
        params["threshold"] = threshold
    if wordnet is not None:
        params.update(sibling_hops=sibling_hops, basic_count=basic_count)
    return GroupingResult(groups, "+".join(parts) or "none",
                          sorted(links, key=lambda lk: (lk.a, lk.b)), params)
