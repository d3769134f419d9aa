"""WordNet's own words for labels: the honest fallback when every LLM answer was invalid.

A concept whose condensation failed gets the WordNet gloss of its labels as description
(*sports car*: "a small low car with a high-powered engine; usually seats two persons"),
and one whose attributes failed gets the clauses of those glosses as attributes. The
text is WordNet 3.0's (Miller, 1995), not a model's; the builder records each use in
``provenance.fallbacks`` with the synsets it read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kec.llm.condense import group_senses

__all__ = ["gloss_attributes", "gloss_description"]

MAX_DESCRIPTION = 600  # characters; the schema allows 2000


def _glosses(labels: Sequence[str], wn: Any) -> list[tuple[str, Any]]:
    """``(label, synset)`` for each label WordNet knows, the sense fitting the group."""
    known = [x for x in labels if wn.synsets(x.strip().lower().replace(" ", "_"), pos="n")]
    return list(zip(known, group_senses(known, wn)))


def _clauses(gloss: str) -> list[str]:
    return [c.strip() for c in gloss.split(";") if c.strip()]


def gloss_description(labels: Sequence[str], wn: Any) -> tuple[str, list[str]]:
    """A description from the glosses of ``labels`` and the synsets read (``("", [])``
    when WordNet knows none). One label: its gloss; several: ``"label: gloss"`` joined
    by ``"; "``. Cut to 600 characters at a clause boundary where possible.

    Parameters
    ----------
    labels : sequence of str
        The concept's labels.
    wn : object
        NLTK's WordNet corpus reader (``nltk.corpus.wordnet``).

    Returns
    -------
    description : str
        The text (``""`` when WordNet knows no label).
    synsets : list of str
        Names of the synsets read (``"sports_car.n.01"``).
    """
    found = _glosses(labels, wn)
    if not found:
        return "", []
    if len(found) == 1:
        text = found[0][1].definition().strip()
    else:
        text = "; ".join(f"{label}: {s.definition().strip()}" for label, s in found)
    if len(text) > MAX_DESCRIPTION:
        cut = text[:MAX_DESCRIPTION].rsplit("; ", 1)[0]
        text = cut if len(cut) > MAX_DESCRIPTION // 2 else text[:MAX_DESCRIPTION - 3] + "..."
    return text, [s.name() for _, s in found]


def gloss_attributes(labels: Sequence[str], wn: Any, n: int) -> tuple[list[str], list[str]]:
    """Up to ``n`` attributes from the glosses of ``labels`` (their clauses, in label
    order, without repeats) and the synsets read; ``([], [])`` when WordNet knows none.

    Parameters
    ----------
    labels : sequence of str
        The concept's labels.
    wn : object
        NLTK's WordNet corpus reader.
    n : int
        Most attributes returned.

    Returns
    -------
    attributes : list of str
        The clauses kept.
    synsets : list of str
        Names of the synsets they come from.
    """
    found = _glosses(labels, wn)
    out: list[str] = []
    used: list[str] = []
    for _, s in found:
        for clause in _clauses(s.definition()):
            if len(out) >= n:
                break
            if clause not in out:
                out.append(clause)
                if s.name() not in used:
                    used.append(s.name())
    return out, used
