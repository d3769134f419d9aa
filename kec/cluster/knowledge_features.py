r"""Embed a knowledge document into the arrays that grounding needs (docs/methods.md §2.4).

From ``{"concepts": [{"id", "name", "description", "labels", "attributes"}],
"pairs": [{"a", "b", "similarity", "attributes"}]}`` and a text encoder (any object with
``encode(texts) -> (n, d)`` unit rows, e.g. ``kec.encoders.create_text_encoder(spec)``):

- :math:`\varphi_q` = embedding of the concept name (in a prompt template),
  :math:`\psi_q` = embedding of its description, :math:`\zeta_q = \varphi_q + \psi_q`;
- one embedding per distinct attribute text; concept :math:`q` owns its uni-attributes
  and the bi-attributes of every pair it belongs to (``pair_attributes="both"``), so
  :math:`\xi_{q,l}` runs over both kinds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from kec.cluster._checks import ClusteringInputError
from kec.cluster.grounding import attribute_means
from kec.errors import InvalidKnowledgeError
from kec.protocols import TextEncoder

NAME_TEMPLATE = "a photo of a {}."
PAIR_MODES = ("both", "a", "none")


#: Anything that turns texts into an ``(n, d)`` array of unit rows (defined once, in
#: :mod:`kec.protocols`).
SupportsEncode = TextEncoder


@dataclass
class KnowledgeFeatures:
    """Embedded knowledge.

    Attributes
    ----------
    concept_ids, names, descriptions : list of str
        One per concept ``q``.
    name_emb, desc_emb : numpy.ndarray
        ``(Q, d)`` :math:`\\varphi` and :math:`\\psi` (a concept without description has
        :math:`\\psi_q = 0`).
    zeta : numpy.ndarray
        ``(Q, d)`` :math:`\\zeta_q = \\varphi_q + \\psi_q`.
    attr_texts : list of str
        Distinct attribute texts ``l``.
    attr_emb : numpy.ndarray
        ``(L, d)`` their embeddings.
    attr_kind : list of str
        ``"uni"`` or ``"pair"`` for every attribute text (``"uni"`` wins if both).
    concept_attrs : list of numpy.ndarray
        For every concept, the indices of its attribute texts.
    pairs : list of tuple
        ``(q_a, q_b, similarity, attribute indices)`` by concept index.
    caption_texts : list of str
        Captions carried by the concepts (``concepts[*].captions``), if any.
    caption_emb : numpy.ndarray or None
        Their embeddings.
    encoder : dict
        ``describe()`` of the encoder, when it has one.
    """

    concept_ids: list[str]
    names: list[str]
    descriptions: list[str]
    name_emb: np.ndarray
    desc_emb: np.ndarray
    zeta: np.ndarray
    attr_texts: list[str]
    attr_emb: np.ndarray
    attr_kind: list[str]
    concept_attrs: list[np.ndarray]
    pairs: list[tuple[int, int, float, np.ndarray]]
    caption_texts: list[str] = field(default_factory=list)
    caption_emb: np.ndarray | None = None
    encoder: dict[str, Any] = field(default_factory=dict)

    @property
    def n_concepts(self) -> int:
        """Number of concepts ``Q``."""
        return len(self.concept_ids)

    @property
    def dim(self) -> int:
        """Embedding dimension ``d``."""
        return int(self.zeta.shape[1])

    def attribute_means(self) -> np.ndarray:
        r""":math:`\bar\xi_q`, ``(Q, d)``."""
        return attribute_means(self.attr_emb, self.concept_attrs, self.n_concepts)

    def pair_attributes(self, qa: int, qb: int) -> list[int]:
        """Attribute indices of the pair of concepts ``qa`` and ``qb`` (either order)."""
        out: list[int] = []
        for a, b, _, idx in self.pairs:
            if {a, b} == {qa, qb}:
                out.extend(int(i) for i in idx)
        return out

    def without_pair_attributes(self) -> KnowledgeFeatures:
        """A copy that keeps only uni-attributes (for ablations)."""
        keep = np.array([k == "uni" for k in self.attr_kind], dtype=bool)
        new_index = np.cumsum(keep) - 1
        attrs = [new_index[idx[keep[idx]]] if idx.size else idx for idx in self.concept_attrs]
        return replace(
            self,
            attr_texts=[t for t, k in zip(self.attr_texts, keep) if k],
            attr_emb=self.attr_emb[keep],
            attr_kind=["uni"] * int(keep.sum()),
            concept_attrs=[np.asarray(a, dtype=np.int64) for a in attrs],
            pairs=[(a, b, s, np.zeros(0, dtype=np.int64)) for a, b, s, _ in self.pairs],
        )


def _encode(encoder: SupportsEncode, texts: list[str], what: str) -> np.ndarray:
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    emb = np.asarray(encoder.encode(texts), dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise ClusteringInputError(
            f"text encoder returned shape {emb.shape} for {len(texts)} {what}"
        )
    if not np.isfinite(emb).all():
        raise ClusteringInputError(f"text encoder returned NaN or inf for {what}")
    return emb


def _concepts(doc: Mapping[str, Any], source: str) -> list[Mapping[str, Any]]:
    concepts = doc.get("concepts") if isinstance(doc, Mapping) else None
    if not isinstance(concepts, list) or not concepts:
        raise InvalidKnowledgeError(source, [("$.concepts", "no concepts to ground")])
    errors = []
    seen: set[str] = set()
    for i, c in enumerate(concepts):
        if not isinstance(c, Mapping):
            errors.append((f"$.concepts[{i}]", "not an object"))
            continue
        cid, name = c.get("id"), c.get("name")
        if not isinstance(cid, str) or not cid:
            errors.append((f"$.concepts[{i}].id", "missing id"))
        elif cid in seen:
            errors.append((f"$.concepts[{i}].id", f"duplicate id {cid}"))
        else:
            seen.add(cid)
        if not isinstance(name, str) or not name.strip():
            errors.append((f"$.concepts[{i}].name", "missing name"))
        for key in ("attributes", "captions"):
            val = c.get(key, [])
            if not isinstance(val, list) or not all(isinstance(s, str) for s in val):
                errors.append((f"$.concepts[{i}].{key}", "must be a list of strings"))
    if errors:
        raise InvalidKnowledgeError(source, errors)
    return concepts


class _AttributeTable:
    """Attribute texts, each once, in first-seen order, with their kind (``"uni"``
    wins over ``"pair"`` for a text that is both)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.kind: list[str] = []

    def add(self, text: str, kind: str) -> int:
        """The row of ``text`` (stripped), added when new."""
        text = text.strip()
        if text not in self.index:
            self.index[text] = len(self.index)
            self.kind.append(kind)
        elif kind == "uni":
            self.kind[self.index[text]] = "uni"
        return self.index[text]


def _read_pairs(doc: Mapping[str, Any], index: dict[str, int], table: _AttributeTable,
                owners: list[list[int]], pair_attributes: str, source: str,
                ) -> list[tuple[int, int, float, np.ndarray]]:
    """The document's pairs as ``(a, b, similarity, attribute rows)``; their attributes
    join the table and, by ``pair_attributes``, the owners' lists."""
    pairs: list[tuple[int, int, float, np.ndarray]] = []
    errors = []
    for i, p in enumerate(doc.get("pairs") or []):
        if not isinstance(p, Mapping) or p.get("a") not in index or p.get("b") not in index:
            errors.append((f"$.pairs[{i}]", "pair must name two known concept ids"))
            continue
        qa, qb = index[p["a"]], index[p["b"]]
        idx = [table.add(t, "pair") for t in (p.get("attributes") or [])
               if isinstance(t, str) and t.strip()]
        pairs.append((qa, qb, float(p.get("similarity", 0.0)), np.asarray(idx, np.int64)))
        if pair_attributes in ("both", "a"):
            owners[qa].extend(idx)
        if pair_attributes == "both":
            owners[qb].extend(idx)
    if errors:
        raise InvalidKnowledgeError(source, errors)
    return pairs


def knowledge_features(
    doc: Mapping[str, Any],
    encoder: SupportsEncode,
    *,
    name_template: str = NAME_TEMPLATE,
    pair_attributes: str = "both",
    source: str = "<knowledge>",
) -> KnowledgeFeatures:
    """Embed every text of a knowledge document once.

    Parameters
    ----------
    doc : mapping
        A knowledge document (see the module docstring); ``captions`` of concepts are
        embedded too when present.
    encoder : object with ``encode``
        Text encoder in the image features' space (e.g. CLIP's text tower).
    name_template : str
        Prompt for concept names (``"{}"`` for the bare name). CLIP's zero-shot prompt
        by default, a choice: names alone are short and ambiguous.
    pair_attributes : {"both", "a", "none"}
        Which concepts own a pair's attributes: both concepts (default: a contrast
        sentence describes both sides), only concept ``a``, or none (uni-attributes only).
    source : str
        Name used in error messages.

    Returns
    -------
    KnowledgeFeatures
        The concepts' name, description and attribute embeddings, with their indices.

    Raises
    ------
    InvalidKnowledgeError
        No concepts, missing names/ids, duplicate ids, pairs naming unknown concepts.
    ClusteringInputError
        The encoder returns a wrong shape or non-finite values.
    """
    if pair_attributes not in PAIR_MODES:
        raise ClusteringInputError(f"pair_attributes must be one of {PAIR_MODES}")
    if "{}" not in name_template:
        raise ClusteringInputError("name_template must contain '{}'")
    concepts = _concepts(doc, source)
    ids = [str(c["id"]) for c in concepts]
    names = [str(c["name"]).strip() for c in concepts]
    descs = [str(c.get("description") or "").strip() for c in concepts]

    table = _AttributeTable()
    owners: list[list[int]] = [[] for _ in concepts]
    for q, c in enumerate(concepts):
        for t in c.get("attributes") or []:
            if t.strip():
                owners[q].append(table.add(t, "uni"))
    pairs = _read_pairs(doc, {cid: q for q, cid in enumerate(ids)}, table, owners,
                        pair_attributes, source)
    attr_index, attr_kind = table.index, table.kind

    name_emb = _encode(encoder, [name_template.format(n) for n in names], "concept names")
    d = name_emb.shape[1]
    desc_emb = np.zeros_like(name_emb)
    has_desc = [q for q, t in enumerate(descs) if t]
    if has_desc:
        desc_emb[has_desc] = _encode(encoder, [descs[q] for q in has_desc], "descriptions")
    attr_texts = list(attr_index)
    attr_emb = (_encode(encoder, attr_texts, "attributes") if attr_texts
                else np.zeros((0, d), dtype=np.float32))
    captions = [t.strip() for c in concepts for t in (c.get("captions") or []) if t.strip()]
    captions = list(dict.fromkeys(captions))
    caption_emb = _encode(encoder, captions, "captions") if captions else None
    for arr, what in ((desc_emb, "descriptions"), (attr_emb, "attributes")):
        if arr.size and arr.shape[1] != d:
            raise ClusteringInputError(f"text encoder gave {arr.shape[1]}-d {what} "
                                       f"but {d}-d names")
    describe = getattr(encoder, "describe", None)
    return KnowledgeFeatures(
        concept_ids=ids, names=names, descriptions=descs, name_emb=name_emb,
        desc_emb=desc_emb, zeta=name_emb + desc_emb, attr_texts=attr_texts,
        attr_emb=attr_emb, attr_kind=attr_kind,
        concept_attrs=[np.asarray(list(dict.fromkeys(o)), dtype=np.int64) for o in owners],
        pairs=pairs, caption_texts=captions, caption_emb=caption_emb,
        encoder=dict(describe()) if callable(describe) else {},
    )
