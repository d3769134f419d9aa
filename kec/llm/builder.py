"""The knowledge builder (docs/methods.md §2.2-2.3): labels -> concepts -> attributes -> pairs.

1. **Groups.** Pre-formed label groups (e.g. from ``kec scaffold``) are condensed as given.
   Without groups, labels that name the same kind of thing are grouped: WordNet links
   (synonyms, hypernyms, gloss genus, labels of one basic-level kind) and text similarity
   ``cos(e_i, e_j) > group_threshold`` (:func:`kec.llm.condense.group_labels`); the
   method used is recorded in ``provenance.grouping``.
2. **Condensation.** Each group becomes one concept (name + short visual description).
3. **Uni-attributes.** ``n_attributes`` (:math:`\\lambda_1`) visual attributes per concept.
4. **Pairs.** Concepts are embedded as :math:`\\zeta_q = \\phi_q + \\psi_q` (name +
   description) and paired by cumulative softmax mass :math:`\\beta`
   (:func:`kec.knowledge.grouping.select_pairs`).
5. **Bi-attributes.** ``n_pair_attributes`` (:math:`\\lambda_2`) attributes telling the two
   concepts of each pair apart.
6. **Captions** (optional, ``n_captions``): short photo captions per concept, a caption
   corpus for CAE's caption level (docs/methods.md §3) when no caption dataset is at hand.

The questions are those of the knowledge kind's prompt set (``kind``,
:data:`kec.prompts.PROMPT_SETS`): for images (the default) how a concept looks in photos,
as above; for a text collection's items what its texts are about (topics, facts, terms)
and, for captions, short example texts.

Every LLM call goes through :class:`~kec.backends.structured.StructuredRunner` (cache,
schema validation, repair with a new sample per retry, failure records), so a re-run
costs zero calls for every usable answer and an interrupted build resumes where it
stopped.

Names come from the labels: a one-label concept is named by its label, and the LLM's
name for a group is kept only when it is drawn from the group's labels or the names
WordNet gives all of them (:func:`kec.llm.condense.shared_names`; else the group's
WordNet kind or first label, recorded in ``provenance.fallbacks``), so an instruction
inside a label cannot name a concept. An item whose every answer stays invalid is
filled honestly (:mod:`kec.llm.glosses`: WordNet's gloss, else the label alone)
and listed in ``provenance.fallbacks``; an item whose requests got no answer is listed
in ``provenance.failures``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from kec._version import __version__
from kec.backends.base import Backend, SamplingParams
from kec.backends.cache import ResponseCache
from kec.backends.structured import AnswerError, Job, StructuredRunner
from kec.errors import KecError
from kec.knowledge.document import KIND, SCHEMA_VERSION, canonicalize, concept_id, now_iso
from kec.knowledge.grouping import select_pairs
from kec.knowledge.labels import labels_sha256, unique_labels
from kec.knowledge.text import dedup_attributes, one_line
from kec.llm.answers import (
    NAME_NOT_DRAWN,
    answer_problem,
    drawn_from,
    job_names,
    usable_items,
)
from kec.llm.condense import GroupingResult, group_kind, group_labels, shared_names
from kec.llm.glosses import gloss_attributes, gloss_description
from kec.prompts import load_prompt, prompt_ids
from kec.protocols import DescribedTextEncoder

logger = logging.getLogger(__name__)


TextEncoder = DescribedTextEncoder  # the one definition lives in kec.protocols


GROUPINGS = ("auto", "wordnet", "similarity")


def _validate_answer(job: Job, value: dict[str, Any]) -> None:
    """The runner's semantic check: placeholder and copied answers are invalid."""
    problem = answer_problem(job, value)
    if problem is not None:
        raise AnswerError(problem, problem.reason, content=True)


@dataclass
class BuildParams:
    """Builder parameters (recorded in provenance). Defaults: docs/methods.md §2, where the
    paper gives none they are kec's choices."""

    n_attributes: int = 2  # lambda_1 (KEC reports 2)
    n_pair_attributes: int = 1  # lambda_2 (KEC reports 1)
    group_threshold: float = 0.8  # beta for label grouping (open; 0.8 in a reimplementation)
    pair_mass: float = 0.8  # beta: cumulative softmax mass of a concept's pairs
    pair_temperature: float = 0.05  # open: softmax temperature over cosines
    max_pairs_per_concept: int = 3  # open: cap per concept
    n_captions: int = 3  # kec's choice: captions per concept for CAE (0 = none)
    grouping: str = "auto"  # auto (WordNet when installed) | wordnet | similarity
    sibling_hops: int = 4  # steps to a label's kind (0 = no sibling links), kec.llm.condense

    def validate(self) -> None:
        if self.n_attributes < 0 or self.n_pair_attributes < 0:
            raise KecError("attribute counts must be >= 0")
        if self.n_captions < 0:
            raise KecError("caption count must be >= 0")
        if max(self.n_attributes, self.n_pair_attributes, self.n_captions) > 8:
            raise KecError("at most 8 attributes or captions per concept or pair")
        if not -1 <= self.group_threshold <= 1:
            raise KecError("group threshold must be a cosine in [-1, 1]")
        if not 0 < self.pair_mass <= 1:
            raise KecError("pair mass must be in (0, 1]")
        if self.pair_temperature <= 0:
            raise KecError("pair temperature must be > 0")
        if self.grouping not in GROUPINGS:
            raise KecError(f"grouping must be one of {', '.join(GROUPINGS)}")
        if self.sibling_hops < 0:
            raise KecError("sibling hops must be >= 0")


class KnowledgeBuilder:
    """Build a knowledge document with an LLM backend and a text encoder.

    Parameters
    ----------
    backend : Backend
        Any :mod:`kec.backends` backend.
    text_encoder : object with ``encode`` and ``describe``, optional
        Groups labels and pairs concepts. Needed unless groups are given and pairs are
        disabled (``max_pairs_per_concept=0`` or ``n_pair_attributes=0``).
    cache_dir : path or None
        Persistent LLM answer cache; ``None`` disables it.
    sampling : SamplingParams
    params : BuildParams
    template_dir : path or None
        A directory of user templates overriding the built-in ones by id.
    kind : {"images", "items"}
        What the knowledge will ground: images (prompts ask how things look in photos)
        or a text collection's items (what texts are about); picks the prompt set
        (:data:`kec.prompts.PROMPT_SETS`) and is recorded in ``provenance.kind``.
    max_repairs : int
        Repair round-trips for an answer that breaks its schema.
    progress : bool or None
        Progress bars (default: when stderr is a terminal).
    """

    def __init__(
        self,
        backend: Backend,
        text_encoder: TextEncoder | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        sampling: SamplingParams | None = None,
        params: BuildParams | None = None,
        template_dir: str | os.PathLike[str] | None = None,
        max_repairs: int = 2,
        progress: bool | None = None,
        kind: str = "images",
    ):
        self.backend = backend
        self.kind = kind
        self.text_encoder = text_encoder
        self.params = params or BuildParams()
        self.params.validate()
        self.sampling = sampling or SamplingParams()
        self.runner = StructuredRunner(backend, ResponseCache(cache_dir), self.sampling,
                                       max_repairs=max_repairs, progress=progress,
                                       validate=_validate_answer)
        self.grouping: dict[str, Any] = {}
        self.prompts = {role: load_prompt(pid, template_dir)  # by role
                        for role, pid in prompt_ids(kind).items()}
        self._filled: dict[tuple[str, str], dict[str, Any]] = {}  # fallbacks by item
        self._renamed: list[dict[str, Any]] = []  # group names not drawn from the labels
        self._wn: Any = None
        self._wn_tried = False

    # ---------------------------------------------------------------------------------
    def build(
        self,
        labels: Sequence[str] | None = None,
        groups: Sequence[Sequence[str]] | None = None,
        source: str = "list",
    ) -> dict[str, Any]:
        """Build and return the knowledge document (a dict valid against the schema)."""
        started = now_iso()
        groups_given = groups is not None
        if groups_given:
            self.grouping = {"method": "given"}
            group_list = [unique_labels(list(g)) for g in groups]
            group_list = [g for g in group_list if g]
            label_list = unique_labels([x for g in group_list for x in g])
        else:
            if labels is None:
                raise KecError("give labels or label groups")
            label_list = unique_labels(list(labels))
            group_list = self._group(label_list)
        if not group_list:
            raise KecError("no labels to build knowledge from")

        concepts = self._condense(group_list)
        self._uni_attributes(concepts)
        pairs = self._pairs(concepts)
        self._bi_attributes(concepts, pairs)
        self._captions(concepts)

        p = self.params
        doc = {
            "$schema": "https://kec-toolkit.github.io/schemas/knowledge/1.0/knowledge.schema.json",
            "schema_version": SCHEMA_VERSION,
            "kind": KIND,
            "labels": {
                "source": source,
                "sha256": labels_sha256(group_list if groups_given else label_list),
                "count": len(label_list),
                "items": label_list,
                "groups_given": groups_given,
            },
            "concepts": concepts,
            "pairs": pairs,
            "provenance": {
                "kec_version": __version__,
                "created_at": started,
                "finished_at": now_iso(),
                "backend": self.backend.describe(),
                "prompts": [t.ref() for t in self.prompts.values()],
                "kind": self.kind,
                "sampling": self.sampling.to_dict(),
                "seed": self.sampling.seed,
                "parameters": {
                    "lambda_1": p.n_attributes,
                    "lambda_2": p.n_pair_attributes,
                    "group_threshold": None if groups_given else p.group_threshold,
                    "pair_mass": p.pair_mass,
                    "pair_temperature": p.pair_temperature,
                    "max_pairs_per_concept": p.max_pairs_per_concept,
                    "n_captions": p.n_captions,
                    "grouping": None if groups_given else p.grouping,
                    "sibling_hops": None if groups_given else p.sibling_hops,
                    "max_repairs": self.runner.max_repairs,
                },
                "text_encoder": self.text_encoder.describe() if self.text_encoder else None,
                "grouping": self.grouping,
                "usage": self.runner.usage.to_dict(),
                "failures": self._records(answered=False),
                "fallbacks": self._records(answered=True),
            },
        }
        return canonicalize(doc)

    def _records(self, answered: bool) -> list[dict[str, Any]]:
        """The runner's failures of one kind, each with what filled its item (with the
        replaced group names among the answered ones)."""
        out = [{**f.to_dict(), **self._filled.get((f.prompt, f.item), {"fallback": "none"})}
               for f in self.runner.failures if f.answered is answered]
        return out + self._renamed if answered else out

    def _wordnet_or_none(self) -> Any:
        """WordNet for names and fallbacks, or ``None`` where it is not installed."""
        if not self._wn_tried:
            self._wn_tried = True
            from kec.vocab import VocabularyError

            try:
                self._wn = _wordnet()
            except (VocabularyError, ImportError, LookupError, OSError) as exc:
                logger.info("WordNet unavailable (%s): no WordNet names or glosses", exc)
        return self._wn

    def _fill(self, role: str, item: str, source: str, synsets: list[str]) -> None:
        self._filled[(self.prompts[role].id, item)] = {"fallback": source, "synsets": synsets}

    # -- steps -------------------------------------------------------------------------
    def _encode(self, texts: list[str]) -> np.ndarray:
        if self.text_encoder is None:
            raise KecError("a text encoder is needed to group labels and pair concepts")
        emb = np.asarray(self.text_encoder.encode(texts), dtype=np.float64)
        if emb.shape[0] != len(texts):
            raise KecError(f"text encoder returned {emb.shape[0]} rows for {len(texts)} texts")
        return emb

    def _group(self, labels: list[str]) -> list[list[str]]:
        p = self.params
        if len(labels) == 1:
            self.grouping = {"method": "none", "links": []}
            return [labels]
        wordnet = None
        if p.grouping in ("auto", "wordnet"):
            from kec.vocab import VocabularyError

            try:
                wordnet = _wordnet()
            except (VocabularyError, ImportError, LookupError, OSError) as exc:
                if p.grouping == "wordnet":
                    raise KecError(f"grouping by WordNet: {exc}") from None
                logger.warning("WordNet unavailable (%s); grouping labels by text "
                               "similarity only", exc)
        emb = self._encode(labels) if self.text_encoder is not None else None
        if emb is None and wordnet is None:
            raise KecError("a text encoder or WordNet is needed to group labels")
        result: GroupingResult = group_labels(labels, emb, threshold=p.group_threshold,
                                              wordnet=wordnet, sibling_hops=p.sibling_hops)
        self.grouping = result.record(labels)
        groups = [[labels[i] for i in comp] for comp in result.groups]
        logger.info("grouped %d labels into %d groups (%s)", len(labels), len(groups),
                    result.method)
        return groups

    def _condense(self, groups: list[list[str]]) -> list[dict[str, Any]]:
        by_id: dict[str, list[str]] = {}
        for g in groups:
            cid = concept_id(g)
            by_id.setdefault(cid, g)
        ids = sorted(by_id)
        wn = self._wordnet_or_none() if any(len(g) > 1 for g in by_id.values()) else None
        jobs = [Job(cid, self.prompts["condense"], {"labels": by_id[cid]}, tuple(by_id[cid]))
                for cid in ids]
        concepts = []
        for cid, out in zip(ids, self.runner.run(jobs, desc="concepts")):
            g = by_id[cid]
            if out.value is not None:
                concepts.append({"id": cid, "name": self._group_name(cid, g, out.value, wn),
                                 "description": one_line(str(out.value["description"])),
                                 "labels": g, "attributes": []})
            else:
                concepts.append(self._fallback_concept(cid, g))
        return concepts

    def _group_name(self, cid: str, labels: list[str], value: dict[str, Any], wn: Any) -> str:
        """One label names its concept; a group keeps the model's name only when it is
        drawn from the labels or the names WordNet gives all of them (else the group's
        WordNet kind or first label, recorded as a fallback)."""
        name = one_line(str(value["name"]))
        if len(labels) == 1:
            return labels[0]
        if drawn_from(name, labels, shared_names(labels, wn) if wn is not None else ()):
            return name
        kind = group_kind(labels, wn) if wn is not None else None
        self._renamed.append({
            "prompt": self.prompts["condense"].id, "item": cid, "labels": list(labels),
            "reason": NAME_NOT_DRAWN,
            "error": f"the name {name[:80]!r} is in none of the labels or their shared "
                     f"WordNet names; named {kind or labels[0]!r} instead",
            "raw": json.dumps(value, ensure_ascii=False)[:2000], "attempts": 1,
            "fallback": "wordnet" if kind else "label"})
        return kind or labels[0]

    def _fallback_concept(self, cid: str, labels: list[str]) -> dict[str, Any]:
        """A concept without an LLM answer: named by its label (a group by its WordNet
        kind, else its first label), described by WordNet's gloss where WordNet knows
        it."""
        wn = self._wordnet_or_none()
        kind = group_kind(labels, wn) if wn is not None and len(labels) > 1 else None
        desc, synsets = gloss_description(labels, wn) if wn is not None else ("", [])
        self._fill("condense", cid, "wordnet" if desc else "label", synsets)
        return {"id": cid, "name": kind or labels[0], "description": desc, "labels": labels,
                "attributes": [], "fallback": True}

    @staticmethod
    def _concept_data(c: dict[str, Any]) -> dict[str, str]:
        return {"name": c["name"], "description": c["description"]}

    def _per_concept(self, concepts: list[dict[str, Any]], prompt_id: str, n: int, key: str,
                     desc: str) -> None:
        """Ask ``prompt_id`` for ``n`` items per concept and store them under ``key``
        (left empty for a concept whose answer failed)."""
        if n == 0:
            return
        tpl = self.prompts[prompt_id]
        jobs = [Job(c["id"], tpl, _values(tpl, {"concept": self._concept_data(c),
                                               "name": c["name"],
                                               "description": c["description"], "n": n}),
                    tuple(c["labels"]))
                for c in concepts]
        for c, job, out in zip(concepts, jobs, self.runner.run(jobs, desc=desc)):
            if out.value:
                names = job_names(prompt_id, job.values, job.labels)
                items = usable_items(out.value[key], names, captions=key == "captions")
                c[key] = dedup_attributes(items, limit=n)
            elif out.failure is not None:
                c[key] = self._fallback_items(prompt_id, c, n)
            else:
                c[key] = c.get(key, [])

    def _fallback_items(self, prompt_id: str, concept: dict[str, Any], n: int) -> list[str]:
        """Attributes from WordNet's glosses of the concept's labels; no captions."""
        wn = self._wordnet_or_none() if prompt_id == "concept_attributes" else None
        items, synsets = gloss_attributes(concept["labels"], wn, n) if wn else ([], [])
        self._fill(prompt_id, concept["id"], "wordnet" if items else "none", synsets)
        return dedup_attributes(items, limit=n)

    def _uni_attributes(self, concepts: list[dict[str, Any]]) -> None:
        self._per_concept(concepts, "concept_attributes", self.params.n_attributes,
                          "attributes", "attributes")

    def _pairs(self, concepts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        p = self.params
        if len(concepts) < 2 or p.max_pairs_per_concept == 0 or p.n_pair_attributes == 0:
            return []
        names = self._encode([c["name"] for c in concepts])
        descs = self._encode([c["description"] or c["name"] for c in concepts])
        zeta = names / np.linalg.norm(names, axis=1, keepdims=True) + descs / np.linalg.norm(
            descs, axis=1, keepdims=True)
        chosen = select_pairs(zeta, p.pair_mass, p.pair_temperature, p.max_pairs_per_concept)
        return [{"a": concepts[i]["id"], "b": concepts[j]["id"],
                 "similarity": round(float(np.clip(s, -1, 1)), 6), "attributes": []}
                for i, j, s in chosen]

    def _bi_attributes(self, concepts: list[dict[str, Any]], pairs: list[dict[str, Any]]
                       ) -> None:
        n = self.params.n_pair_attributes
        if n == 0 or not pairs:
            return
        by_id = {c["id"]: c for c in concepts}
        tpl = self.prompts["pair_attributes"]
        jobs = [Job(f"{pr['a']}|{pr['b']}", tpl, _values(tpl, {
                    "concept_a": self._concept_data(by_id[pr["a"]]),
                    "concept_b": self._concept_data(by_id[pr["b"]]),
                    "name_a": by_id[pr["a"]]["name"], "name_b": by_id[pr["b"]]["name"],
                    "description_a": by_id[pr["a"]]["description"],
                    "description_b": by_id[pr["b"]]["description"],
                    "n": n}), (by_id[pr["a"]]["name"], by_id[pr["b"]]["name"]))
                for pr in pairs]  # labels: the two names, for one-line reports
        for pr, job, out in zip(pairs, jobs, self.runner.run(jobs, desc="pairs")):
            if out.value is not None:
                names = job_names("pair_attributes", job.values)
                items = usable_items(out.value["attributes"], names)
                pr["attributes"] = dedup_attributes(items, limit=n)

    def _captions(self, concepts: list[dict[str, Any]]) -> None:
        self._per_concept(concepts, "captions", self.params.n_captions, "captions", "captions")


@cache
def _wordnet() -> Any:
    """WordNet, loaded once per process (a few seconds)."""
    from kec.vocab import load_wordnet

    return load_wordnet()


def _values(template: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The values ``template`` declares (a user template of an older prompt version may
    not take the concept names)."""
    return {k: v for k, v in values.items() if k in template.variables}
