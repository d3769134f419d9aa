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
    both have the same *kind*: the nearest basic-level category at or above their
    WordNet sense (:func:`kind_of`). A basic-level category is a name people use for
    things (Rosch et al., 1976): a synset named at least ``basic_count`` times in
    WordNet's tagged corpus (``cntlist``: *cat* 18, *dog* 42, *car* 89, *bird* 29,
    *flower* 31) and specific enough (intrinsic information content >= ``min_ic``:
    *bird*, *tree*, *fish*, but not *animal* or *plant*). The kind is searched up to
    ``sibling_hops`` steps along hypernyms, where the genus of the sense's gloss, read as
    a noun of the same lexicographer file, is one more parent: *kitten* ("young domestic
    **cat**") is a cat and *puppy* a dog, although WordNet files both under *young
    mammal*. So *sunflower/daisy* meet at *flower*, *sports car/convertible* at *car*,
    *pickup truck/lorry* at *truck*, *sparrow/finch/robin* at *bird*; a label that is
    itself a basic-level name is its own kind, so *cat* and *dog* never merge, young
    animals join their species, and two kinds never merge at a broader class
    (*kitten/puppy* at *young mammal*, *lion/tiger* at *big cat*);
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

__all__ = ["GroupingResult", "Link", "genus_word", "group_kind", "group_labels", "group_senses",
           "kind_of", "senses_of", "shared_names", "wordnet_links"]

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
    """Labels ``a`` and ``b`` (indices) name the same kind of thing, because ``reason``
    (for a ``sibling`` link, ``kind`` names their common kind)."""

    a: int
    b: int
    reason: str
    kind: str | None = None

    def to_dict(self, labels: Sequence[str]) -> dict[str, str]:
        out = {"a": labels[self.a], "b": labels[self.b], "reason": self.reason}
        if self.kind:
            out["kind"] = self.kind
        return out


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
    sibling_hops: int = 4,
    basic_count: int = 10,
    min_ic: float = 0.38,
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
        Steps searched from a sense to its kind (:func:`kind_of`; 0 disables sibling
        links). 4 reaches *bird* from *robin* (*thrush*, *oscine*, *passerine*).
    basic_count : int
        WordNet tagged-corpus count at or above which a synset is a basic-level name.
    min_ic : float
        Least intrinsic information content (:func:`intrinsic_ic`) of a kind: 0.38 allows
        about 1,100 hyponyms (*bird* 867, *tree* 1,000) and stops at broad classes
        (*structure* 1,500, *animal* 7,500, *person* 10,000). kec's choice.

    Returns
    -------
    list of Link
        Sorted by ``(a, b)``, with ``a < b``; one link (the first reason found) per pair.
    """
    senses = [_synsets(wn, x)[:max_senses] for x in labels]
    first = [s[0] if s else None for s in senses]
    keys = [x.strip().lower() for x in labels]
    by_key: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(_singular(k), []).append(i)
    found: dict[tuple[int, int], str] = {}
    first_of: dict[Any, list[int]] = {}
    for j, s in enumerate(first):
        if s is not None:
            first_of.setdefault(s, []).append(j)
    _synonym_links(senses, first_of, found)
    _hypernym_gloss_links(senses, first, first_of, by_key, max_hops, found)
    kinds: dict[tuple[int, int], str] = {}
    if sibling_hops > 0:
        _sibling_links(labels, wn, senses, found, kinds,
                       _Kinds(wn, sibling_hops, basic_count, min_ic))
    return [Link(a, b, r, kinds.get((a, b)) if r == "sibling" else None)
            for (a, b), r in sorted(found.items())]


def _add_link(found: dict[tuple[int, int], str], i: int, j: int, reason: str) -> None:
    """Record ``reason`` for the pair ``i``, ``j`` unless it has one or ``i == j``."""
    if i != j:
        found.setdefault((min(i, j), max(i, j)), reason)


def _synonym_links(senses: list[list[Any]], first_of: dict[Any, list[int]],
                   found: dict[tuple[int, int], str]) -> None:
    """Add ``synonym`` links: a sense of one label is another label's first sense."""
    for i in range(len(senses)):
        for s in senses[i]:
            for j in first_of.get(s, []):  # a sense of i is j's first sense
                _add_link(found, i, j, "synonym")


def _hypernym_gloss_links(senses: list[list[Any]], first: list[Any],
                          first_of: dict[Any, list[int]], by_key: dict[str, list[int]],
                          max_hops: int, found: dict[tuple[int, int], str]) -> None:
    """Add ``hypernym`` and ``gloss`` links, label by label."""
    for i in range(len(senses)):
        for k, s in enumerate(senses[i]):  # later senses: direct hypernyms only
            for anc in _ancestors(s, max_hops if k == 0 else 1):
                for j in first_of.get(anc, []):
                    _add_link(found, i, j, "hypernym")
        if first[i] is not None:
            g = genus_word(first[i].definition())
            for j in by_key.get(g or "", []):
                _add_link(found, i, j, "gloss")


class _Kinds:
    """:func:`kind_of` with its parameters and a cache of specificity checks."""

    def __init__(self, wn: Any, hops: int, basic_count: int, min_ic: float):
        self.wn, self.hops, self.basic_count = wn, hops, basic_count
        # IC >= min_ic  <=>  hypo(c) + 1 <= N ** (1 - min_ic)
        self.bound = int(np.floor(_n_nouns(wn) ** (1.0 - min_ic))) - 1
        self._basic: dict[Any, bool] = {}

    def basic(self, synset: Any) -> bool:
        if synset not in self._basic:
            count = sum(lem.count() for lem in synset.lemmas())
            self._basic[synset] = (count >= self.basic_count
                                   and _count_hyponyms(synset, self.bound + 1) <= self.bound)
        return self._basic[synset]

    def of(self, synset: Any) -> Any:
        """The nearest basic-level synset at or above ``synset`` (ties: the more specific
        one, then by name), or ``None`` within ``hops`` steps."""
        frontier, seen = [synset], {synset}
        for hop in range(self.hops + 1):
            found = [s for s in frontier if self.basic(s)]
            if found:
                return max(found, key=lambda s: (-_count_hyponyms(s, self.bound + 1),
                                                 s.name()))
            if hop == self.hops:
                return None
            nxt = []
            for s in frontier:
                for h in _parents(s, self.wn, genus=s is synset):
                    if h not in seen:
                        seen.add(h)
                        nxt.append(h)
            frontier = nxt
        return None  # pragma: no cover - the loop returns


def _parents(synset: Any, wn: Any, genus: bool = False) -> list[Any]:
    """Hypernyms and instance hypernyms; with ``genus``, also the gloss's genus noun of
    the same lexicographer file (*kitten* "young domestic cat" -> *cat*)."""
    out = list(synset.hypernyms() + synset.instance_hypernyms())
    if genus:
        g = _genus_synset(synset, wn)
        if g is not None and g not in out:
            out.append(g)
    return out


def _genus_synset(synset: Any, wn: Any) -> Any:
    word = genus_word(synset.definition())
    if not word or word in {lem.name().lower() for lem in synset.lemmas()}:
        return None
    for cand in wn.synsets(word, pos="n"):
        if cand.lexname() == synset.lexname() and cand != synset:
            return cand
    return None


def kind_of(synset: Any, wn: Any, *, hops: int = 4, basic_count: int = 10,
            min_ic: float = 0.38) -> Any:
    """The kind of a WordNet noun sense: the nearest basic-level category at or above it
    (see the module docstring, ``sibling``), or ``None``.

    ``kind_of(kitten.n.01) == cat.n.01``, ``kind_of(puppy.n.01) == dog.n.01``,
    ``kind_of(sunflower.n.01) == flower.n.01``, ``kind_of(lion.n.01) is None``.
    """
    return _Kinds(wn, hops, basic_count, min_ic).of(synset)


def _unordered_senses(wn: Any, label: str, senses: list[Any]) -> list[Any]:
    """The senses WordNet's order says nothing about: the first, and every later one
    with as many tagged occurrences of the label (*lorry*: a horse-drawn wagon and a
    truck, both 0) -- WordNet lists senses by frequency."""
    key = label.strip().lower().replace(" ", "_")

    def count(s: Any) -> int:
        return sum(lem.count() for lem in s.lemmas() if lem.name().lower() == key)

    return [s for s in senses if s is senses[0] or count(s) == count(senses[0])]


def _sibling_links(labels: Sequence[str], wn: Any, senses: list[list[Any]],
                   found: dict[tuple[int, int], str], kinds: dict[tuple[int, int], str],
                   k: _Kinds) -> None:
    """Add ``sibling`` links between labels of the same kind."""
    by_kind: dict[Any, list[int]] = {}
    for i, ss in enumerate(senses):
        if not ss:
            continue
        mine = {k.of(s) for s in _unordered_senses(wn, labels[i], ss)} - {None}
        for kind in mine:
            by_kind.setdefault(kind, []).append(i)
    for kind, members in sorted(by_kind.items(), key=lambda kv: kv[0].name()):
        for x, i in enumerate(members):
            for j in members[x + 1:]:
                pair = (min(i, j), max(i, j))
                if pair not in found:
                    found[pair] = "sibling"
                    kinds[pair] = _lemma(kind)


def _lemma(synset: Any) -> str:
    return str(synset.lemmas()[0].name()).replace("_", " ")


def senses_of(label: str, wn: Any, max_senses: int = 3) -> list[Any]:
    """The noun senses of ``label`` that count: its first, and the later ones WordNet
    leaves unordered (as frequent in its tagged corpus as the first; *lorry*: both)."""
    ss = _synsets(wn, label)[:max_senses]
    return _unordered_senses(wn, label, ss) if ss else []


def _label_senses(labels: Sequence[str], wn: Any) -> list[list[Any]]:
    """Per label WordNet knows, its senses whose order WordNet leaves open."""
    return [ss for ss in (senses_of(x, wn) for x in labels) if ss]


def shared_names(labels: Sequence[str], wn: Any, max_hops: int = 4) -> list[str]:
    """Names the labels share in WordNet: the lemmas of every synset at or above a sense
    of each label WordNet knows (its first sense, or each sense WordNet leaves unordered;
    hypernyms and gloss genus, within ``max_hops``), nearest first.
    ``["tabby cat", "tomcat", "kitten"]`` -> ``["cat", "true cat", "feline", ...]``;
    ``[]`` when WordNet knows fewer than two of them."""
    per_label = _label_senses(labels, wn)
    if len(per_label) < 2:
        return []
    reach = []
    for senses in per_label:
        dist: dict[Any, int] = {}
        for s in senses:
            dist.setdefault(s, 0)
            frontier = [s]
            for hop in range(1, max_hops + 1):
                frontier = [h for f in frontier for h in _parents(f, wn, genus=f is s)
                            if h not in dist]
                for h in frontier:
                    dist.setdefault(h, hop)
        reach.append(dist)
    common = set(reach[0]).intersection(*reach[1:])
    ordered = sorted(common, key=lambda c: (max(r[c] for r in reach), c.name()))
    return list(dict.fromkeys(lem.name().replace("_", " ") for c in ordered
                              for lem in c.lemmas()))


def group_kind(labels: Sequence[str], wn: Any, hops: int = 4) -> str | None:
    """The name of the one kind every label WordNet knows shares (``"cat"`` for *tabby
    cat, tomcat, kitten*; ``"truck"`` for *pickup truck, lorry*), or ``None``."""
    kind = _group_kind_synset(labels, wn, hops)
    return _lemma(kind) if kind is not None else None


def _group_kind_synset(labels: Sequence[str], wn: Any, hops: int = 4) -> Any:
    kinds = _Kinds(wn, hops, 10, 0.38)
    per_label = [{kinds.of(s) for s in senses} - {None}
                 for senses in _label_senses(labels, wn)]
    if not per_label:
        return None
    common = set(per_label[0]).intersection(*per_label[1:])
    return common.pop() if len(common) == 1 else None


def group_senses(labels: Sequence[str], wn: Any, hops: int = 4) -> list[Any]:
    """One sense per label WordNet knows, in label order: the sense of the group's kind
    where the label has several (*lorry* next to *pickup truck*: the truck, not the
    horse-drawn wagon), else its first."""
    kind = _group_kind_synset(labels, wn, hops) if len(labels) > 1 else None
    kinds = _Kinds(wn, hops, 10, 0.38)
    out = []
    for senses in _label_senses(labels, wn):
        match = [s for s in senses if kind is not None and kinds.of(s) == kind]
        out.append(match[0] if match else senses[0])
    return out


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
    sibling_hops: int = 4,
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
