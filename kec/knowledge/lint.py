r"""Knowledge quality without an LLM judge: score every concept and attribute of a
knowledge document in a text encoder's space and flag the items that carry nothing.

Pure functions: the encoder comes in as a callable ``encode(list[str]) -> (n, d)`` array
(L2-normalised rows; rows are normalised again here), so this module needs neither
torch nor an LLM backend.

Each concept :math:`q` is represented as in grounding (docs/methods.md §2.4) by

.. math::  \zeta_q = \frac{\varphi_q + \psi_q}{\lVert \varphi_q + \psi_q \rVert}

(:math:`\varphi_q` its name, :math:`\psi_q` its description, :math:`\psi_q = 0` when it
has none). With :math:`s_q(t) = \langle e(t), \zeta_q \rangle` for an attribute text
:math:`t`, the checks are:

``placeholder``, ``prompt_copy``, ``repeats_name``
    text only (:mod:`kec.knowledge.textcheck`): one-letter answers (``"A"``), schema
    text (``"maxLength:200,minItems:1"``), document headings (``"Overview and
    Convention"``), words copied from the prompt (``"shape"``, ``"colour"``), an
    attribute that only repeats its concept's name or labels.
``not_closer`` (uni-attribute :math:`t` of concept :math:`q`)
    :math:`m(t) = s_q(t) - \max_{r \ne q} s_r(t) \le` ``margin``: the attribute is no
    closer to its own concept than to some other concept, so it cannot pull an image
    towards its concept (KEC's attribute-mining premise: attributes discriminate,
    Zhong et al., CVPR 2026, §3.2).
``not_separating`` (bi-attribute :math:`t` of pair :math:`(a, b)`)
    :math:`\delta(t) = s_a(t) - s_b(t)` with the sign the pair requires: a text that
    names only :math:`a` (its name or a label) must have :math:`\delta >` ``pair_margin``,
    one that names only :math:`b` must have :math:`\delta < -` ``pair_margin``, and one
    that names both or neither must have :math:`|\delta| >` ``pair_margin``.
``name_off_labels`` (concept name)
    the name is closer to another concept's labels than to its own:
    :math:`\langle e(\text{name}_q), \bar\ell_q\rangle < \max_{r\ne q}
    \langle e(\text{name}_q), \bar\ell_r\rangle` with :math:`\bar\ell_r` the normalised
    mean of concept :math:`r`'s label embeddings.

:func:`drop_flagged` removes flagged attributes, replaces a flagged name by the concept's
first label (marking the concept ``fallback``) and empties a flagged description; the
result is still a valid knowledge document.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kec.errors import KecError
from kec.knowledge.textcheck import (
    PLACEHOLDER,
    PROMPT_COPY,
    REPEATS_NAME,
    content_words,
    text_flags,
)

__all__ = [
    "FLAGS",
    "NAME_OFF_LABELS",
    "NOT_CLOSER",
    "NOT_SEPARATING",
    "LintError",
    "LintItem",
    "LintReport",
    "drop_flagged",
    "lint_and_drop",
    "lint_knowledge",
]

NOT_CLOSER = "not_closer"
NOT_SEPARATING = "not_separating"
NAME_OFF_LABELS = "name_off_labels"
FLAGS = (PLACEHOLDER, PROMPT_COPY, REPEATS_NAME, NOT_CLOSER, NOT_SEPARATING, NAME_OFF_LABELS)

Encode = Callable[[list[str]], np.ndarray]


class LintError(KecError):
    """A document cannot be linted (not a knowledge document, encoder misbehaves)."""


@dataclass(frozen=True)
class LintItem:
    """One scored text of a knowledge document.

    ``id`` is a JSON path into the document (``$.concepts[2].attributes[0]``); ``kind`` is
    ``name``, ``description``, ``attribute`` or ``pair_attribute``; ``concept`` the
    concept id it belongs to (``a`` for a pair); ``pair`` the ``(a, b)`` ids of a pair;
    ``side`` for a pair attribute: +1 names a, -1 names b, 0 names both or neither.
    """

    id: str
    kind: str
    text: str
    concept: str | None = None
    pair: tuple[str, str] | None = None
    index: int | None = None
    side: int | None = None
    flags: tuple[str, ...] = ()
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; ``concept``, ``pair`` and ``side`` only when set."""
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "text": self.text,
                               "flags": list(self.flags), "scores": dict(self.scores)}
        if self.concept is not None:
            out["concept"] = self.concept
        if self.pair is not None:
            out["pair"] = list(self.pair)
        if self.side is not None:
            out["side"] = self.side
        return out


@dataclass
class LintReport:
    """Everything :func:`lint_knowledge` scored, with the thresholds it used."""

    items: list[LintItem]
    margin: float
    pair_margin: float
    embedded: bool

    @property
    def flagged(self) -> list[LintItem]:
        """The items carrying at least one flag, in document order."""
        return [it for it in self.items if it.flags]

    @property
    def clean(self) -> bool:
        """Whether no item is flagged."""
        return not self.flagged

    def counts(self) -> dict[str, int]:
        """How many items carry each flag (all flags listed, zeros included)."""
        out = dict.fromkeys(FLAGS, 0)
        for it in self.items:
            for f in it.flags:
                out[f] = out.get(f, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (thresholds, counts by kind and by flag) with every item."""
        kinds: dict[str, int] = {}
        for it in self.items:
            kinds[it.kind] = kinds.get(it.kind, 0) + 1
        return {
            "clean": self.clean,
            "embedded": self.embedded,
            "margin": self.margin,
            "pair_margin": self.pair_margin,
            "n_items": len(self.items),
            "n_flagged": len(self.flagged),
            "items_by_kind": kinds,
            "flag_counts": self.counts(),
            "items": [it.to_dict() for it in self.items],
        }

    def format(self, verbose: bool = False) -> str:
        """Plain text: one line per flagged item (every item with ``verbose``)."""
        lines = []
        for it in self.items if verbose else self.flagged:
            sc = " ".join(f"{k}={v:+.3f}" for k, v in it.scores.items())
            tag = ",".join(it.flags) if it.flags else "ok"
            lines.append(f"{tag:<22} {it.id}  {it.text!r}" + (f"  [{sc}]" if sc else ""))
        counts = ", ".join(f"{k} {v}" for k, v in self.counts().items() if v)
        lines.append(f"{len(self.flagged)} of {len(self.items)} items flagged"
                     + (f" ({counts})" if counts else "")
                     + ("" if self.embedded else "; text checks only (no encoder)"))
        return "\n".join(lines)


# -- helpers ----------------------------------------------------------------------------
def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def _embed(encode: Encode, texts: list[str]) -> dict[str, np.ndarray]:
    uniq = list(dict.fromkeys(texts))
    if not uniq:
        return {}
    emb = np.asarray(encode(uniq), dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] != len(uniq):
        raise LintError(f"text encoder returned shape {emb.shape} for {len(uniq)} texts")
    if not np.isfinite(emb).all():
        raise LintError("text encoder returned NaN or inf")
    emb = _unit(emb)
    return dict(zip(uniq, emb))


def _concepts(doc: Any) -> list[Mapping[str, Any]]:
    concepts = doc.get("concepts") if isinstance(doc, Mapping) else None
    if not isinstance(concepts, list) or not all(isinstance(c, Mapping) for c in concepts):
        raise LintError("not a knowledge document: no list of concepts")
    return concepts


def _strs(value: Any) -> list[str]:
    return [x for x in value if isinstance(x, str)] if isinstance(value, list) else []


def _side(text: str, a_names: Sequence[str], b_names: Sequence[str]) -> int:
    """+1 when ``text`` names only concept a, -1 only b, 0 both or neither."""
    wa = {w for n in a_names for w in content_words(n)}
    wb = {w for n in b_names for w in content_words(n)}
    cw = content_words(text)
    ma, mb = bool(cw & (wa - wb)), bool(cw & (wb - wa))
    return 1 if ma and not mb else -1 if mb and not ma else 0


def _name_flags(name: str, labels: Sequence[str]) -> list[str]:
    """Text flags of a concept name: none for one of its own labels (the user's word,
    even "note" or "object"), and repeating its labels is what a name should do."""
    if not name:
        return [PLACEHOLDER]
    if name.casefold() in {x.casefold() for x in labels}:
        return []
    return [f for f in text_flags(name, labels) if f != REPEATS_NAME]


def _r(x: float) -> float:
    return round(float(x), 4)


# -- the linter --------------------------------------------------------------------------
def lint_knowledge(
    doc: Mapping[str, Any],
    encode: Encode | None = None,
    *,
    margin: float = 0.0,
    pair_margin: float = 0.02,
) -> LintReport:
    r"""Score and flag every concept name, description and attribute of ``doc``.

    Parameters
    ----------
    doc : mapping
        A knowledge document (``concepts`` with ``id``, ``name``, ``description``,
        ``labels``, ``attributes``; ``pairs`` with ``a``, ``b``, ``attributes``).
    encode : callable, optional
        ``encode(list[str]) -> (n, d)`` array of L2-normalised rows (e.g. a kec text
        encoder's ``encode``). Without it only the text checks run.
    margin : float
        A uni-attribute is flagged ``not_closer`` when
        :math:`s_q(t) - \max_{r \ne q} s_r(t) \le` ``margin``.
    pair_margin : float
        A bi-attribute is flagged ``not_separating`` when its signed separation
        :math:`\pm(s_a(t) - s_b(t))` (or its absolute value, for a text that names
        both or neither concept) is ``<= pair_margin``. kec's choice: 0.02 is about the
        spread of MiniLM cosines between paraphrases of one sentence.

    Returns
    -------
    LintReport
        One :class:`LintItem` per text, in document order.

    Raises
    ------
    LintError
        ``doc`` has no list of concepts, or the encoder returns a wrong shape.
    """
    concepts = _concepts(doc)
    pairs = [p for p in (doc.get("pairs") or []) if isinstance(p, Mapping)]
    ids = [str(c.get("id", f"#{q}")) for q, c in enumerate(concepts)]
    index = {cid: q for q, cid in enumerate(ids)}
    names = [str(c.get("name") or "") for c in concepts]
    descs = [str(c.get("description") or "") for c in concepts]
    labels = [_strs(c.get("labels")) for c in concepts]
    attrs = [_strs(c.get("attributes")) for c in concepts]
    own_names = [[names[q], *labels[q]] for q in range(len(concepts))]

    emb: dict[str, np.ndarray] = {}
    zeta = lab_mean = None
    if encode is not None and concepts:
        emb, zeta, lab_mean = _embed_concepts(encode, names, descs, labels, attrs, pairs)
    many = len(concepts) >= 2

    items: list[LintItem] = []
    for q in range(len(concepts)):
        cid = ids[q]
        base = f"$.concepts[{q}]"
        items.append(_name_item(q, cid, names, labels, emb, zeta, lab_mean, many))
        if descs[q]:
            items.append(LintItem(f"{base}.description", "description", descs[q], cid,
                                  flags=tuple(text_flags(descs[q], own_names[q]))))
        items += _attribute_items(q, cid, attrs[q], own_names[q], emb, zeta, many, margin)

    for i, p in enumerate(doc.get("pairs") or []):
        if not isinstance(p, Mapping):
            continue
        items += _pair_items(i, p, index, own_names, emb, zeta, pair_margin)
    return LintReport(items, margin, pair_margin, embedded=zeta is not None)


def _embed_concepts(encode: Encode, names: list[str], descs: list[str],
                    labels: list[list[str]], attrs: list[list[str]],
                    pairs: list[Mapping[str, Any]]
                    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Embeddings of every text, concept vectors (name + description) and label means."""
    texts = names + [d for d in descs if d] + [x for ls in labels for x in ls]
    texts += [a for ls in attrs for a in ls]
    texts += [a for p in pairs for a in _strs(p.get("attributes"))]
    emb = _embed(encode, [t for t in texts if t])
    dim = next(iter(emb.values())).shape[0]
    zero = np.zeros(dim)
    zeta = _unit(np.stack([emb.get(n, zero) + (emb[d] if d else zero)
                           for n, d in zip(names, descs)]))
    lab_mean = _unit(np.stack([np.mean([emb[x] for x in ls], axis=0) if ls else zero
                               for ls in labels]))
    return emb, zeta, lab_mean


def _name_item(q: int, cid: str, names: list[str], labels: list[list[str]],
               emb: dict[str, np.ndarray], zeta: np.ndarray | None,
               lab_mean: np.ndarray | None, many: bool) -> LintItem:
    """The item of concept ``q``'s name: placeholder / prompt copy, and closeness to its
    own labels."""
    flags = _name_flags(names[q], labels[q])
    scores: dict[str, float] = {}
    if zeta is not None and lab_mean is not None and names[q] in emb:
        s_lab = lab_mean @ emb[names[q]]
        scores["name_to_labels"] = _r(s_lab[q])
        if many:
            others = np.delete(s_lab, q)
            scores["name_to_other_labels"] = _r(others.max())
            if labels[q] and s_lab[q] < others.max():
                flags.append(NAME_OFF_LABELS)
            scores["nearest_concept"] = _r(np.delete(zeta @ zeta[q], q).max())
    return LintItem(f"$.concepts[{q}].name", "name", names[q], cid, flags=tuple(flags),
                    scores=scores)


def _attribute_items(q: int, cid: str, attrs: list[str], own_names: list[str],
                     emb: dict[str, np.ndarray], zeta: np.ndarray | None, many: bool,
                     margin: float) -> list[LintItem]:
    """The items of concept ``q``'s attributes ``attrs``."""
    items = []
    for k, text in enumerate(attrs):
        flags = text_flags(text, own_names)
        scores = {}
        if zeta is not None:
            s = zeta @ emb[text]
            scores["sim_own"] = _r(s[q])
            if many:
                best = float(np.delete(s, q).max())
                scores["sim_best_other"] = _r(best)
                scores["margin"] = _r(s[q] - best)
                if s[q] - best <= margin:
                    flags.append(NOT_CLOSER)
        items.append(LintItem(f"$.concepts[{q}].attributes[{k}]", "attribute", text, cid,
                              index=k, flags=tuple(flags), scores=scores))
    return items


def _pair_items(i: int, p: Mapping[str, Any], index: dict[str, int],
                own_names: list[list[str]], emb: dict[str, np.ndarray],
                zeta: np.ndarray | None, pair_margin: float) -> list[LintItem]:
    """The items of the attributes of pair ``p`` (``$.pairs[i]``)."""
    items = []
    a, b = str(p.get("a")), str(p.get("b"))
    qa, qb = index.get(a), index.get(b)
    a_names = own_names[qa] if qa is not None else []
    b_names = own_names[qb] if qb is not None else []
    for k, text in enumerate(_strs(p.get("attributes"))):
        flags = text_flags(text, a_names + b_names)
        side = _side(text, a_names, b_names)
        scores = {}
        if zeta is not None and qa is not None and qb is not None:
            s = zeta @ emb[text]
            delta = float(s[qa] - s[qb])
            scores.update(sim_a=_r(s[qa]), sim_b=_r(s[qb]), separation=_r(delta))
            signed = side * delta if side else abs(delta)
            if signed <= pair_margin:
                flags.append(NOT_SEPARATING)
        items.append(LintItem(f"$.pairs[{i}].attributes[{k}]", "pair_attribute", text, a,
                              pair=(a, b), index=k, side=side, flags=tuple(flags),
                              scores=scores))
    return items


def drop_flagged(
    doc: Mapping[str, Any],
    report: LintReport,
    flags: Iterable[str] | None = None,
) -> dict[str, Any]:
    """A copy of ``doc`` without the items ``report`` flagged.

    Flagged attributes (uni and pair) are removed; a flagged concept name becomes the
    concept's first label and the concept is marked ``fallback``; a flagged description
    becomes empty. Concepts and pairs are never removed, so the result stays valid
    whenever ``doc`` was. An item whose text no longer sits at its path in ``doc`` is
    left alone.

    Parameters
    ----------
    doc : mapping
        The document ``report`` was computed on.
    report : LintReport
    flags : iterable of str, optional
        Only items carrying one of these flags are dropped (default: any flag).

    Returns
    -------
    dict
        A new document; ``doc`` is not changed.
    """
    wanted = set(FLAGS if flags is None else flags)
    out = copy.deepcopy(dict(doc))
    concepts = _concepts(out)
    pairs = out.get("pairs") or []
    drop_attr: dict[int, set[int]] = {}
    drop_pair: dict[int, set[int]] = {}
    for it in report.items:
        if not wanted & set(it.flags):
            continue
        q, rest = _locate(it.id)
        if rest == "name" and q is not None and q < len(concepts):
            c = concepts[q]
            if c.get("name") == it.text and _strs(c.get("labels")):
                c["name"] = _strs(c["labels"])[0]
                c["fallback"] = True
        elif rest == "description" and q is not None and q < len(concepts):
            if concepts[q].get("description") == it.text:
                concepts[q]["description"] = ""
        elif it.kind == "attribute" and q is not None and it.index is not None:
            if q < len(concepts) and _at(concepts[q], it.index) == it.text:
                drop_attr.setdefault(q, set()).add(it.index)
        elif it.kind == "pair_attribute" and it.index is not None:
            i = _pair_index(it.id)
            if i is not None and i < len(pairs) and _at(pairs[i], it.index) == it.text:
                drop_pair.setdefault(i, set()).add(it.index)
    for q, ks in drop_attr.items():
        c = concepts[q]
        c["attributes"] = [t for k, t in enumerate(c.get("attributes", [])) if k not in ks]
    for i, ks in drop_pair.items():
        p = pairs[i]
        p["attributes"] = [t for k, t in enumerate(p.get("attributes", [])) if k not in ks]
    return out


def _at(obj: Any, k: int) -> Any:
    attrs = obj.get("attributes") if isinstance(obj, Mapping) else None
    return attrs[k] if isinstance(attrs, list) and 0 <= k < len(attrs) else None


def _locate(path: str) -> tuple[int | None, str]:
    """``$.concepts[3].name`` -> ``(3, "name")``."""
    prefix = "$.concepts["
    if not path.startswith(prefix):
        return None, ""
    num, _, rest = path[len(prefix):].partition("]")
    return (int(num) if num.isdigit() else None), rest.lstrip(".").split("[")[0]


def _pair_index(path: str) -> int | None:
    prefix = "$.pairs["
    if not path.startswith(prefix):
        return None
    num = path[len(prefix):].partition("]")[0]
    return int(num) if num.isdigit() else None


def lint_and_drop(
    doc: Mapping[str, Any], text_encoder: Any, *, keep_flagged: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Lint a knowledge document in the encoder's space and drop what it flags.

    What ``kec cluster`` does by default before grounding (``--keep-flagged`` keeps
    everything): :func:`kec.knowledge.lint.lint_knowledge`, then
    :func:`kec.knowledge.lint.drop_flagged`.

    Parameters
    ----------
    doc : mapping
        A knowledge document.
    text_encoder : object with ``encode``
        The encoder of the features the knowledge will be grounded on.
    keep_flagged : bool
        Score and report, but drop nothing.

    Returns
    -------
    document : dict
        ``doc`` without the flagged items (a copy).
    info : dict
        ``kept_flagged``, ``counts`` (items per flag) and ``dropped`` (every dropped
        item, :meth:`LintItem.to_dict`): the estimators' ``lint_``, recorded by
        ``kec cluster`` in ``summary.json``.
    """
    report = lint_knowledge(doc, text_encoder.encode)
    flagged = report.flagged
    info: dict[str, Any] = {
        "kept_flagged": keep_flagged, "counts": report.counts(),
        "dropped": [] if keep_flagged else [it.to_dict() for it in flagged],
    }
    if keep_flagged or not flagged:
        return dict(doc), info
    return drop_flagged(doc, report), info
