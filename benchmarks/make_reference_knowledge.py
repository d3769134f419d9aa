"""Write the hand-written reference knowledge file of the WordNet-glosses benchmark.

The content below is written by hand (no LLM): one concept per category with a short
description, two attributes each, and a few pairs of easily confused categories with one
attribute that tells them apart. Run it after editing the content::

    python benchmarks/make_reference_knowledge.py

It writes ``kec/bench/data/wordnet_glosses.reference.knowledge.json`` (validated).
"""

from __future__ import annotations

from pathlib import Path

from kec import __version__
from kec.knowledge.document import concept_id, now_iso, save_knowledge, validate_knowledge
from kec.knowledge.labels import labels_sha256

DATA = Path(__file__).resolve().parents[1] / "kec" / "bench" / "data"
OUT = DATA / "wordnet_glosses.reference.knowledge.json"

CONCEPTS: list[tuple[str, str, list[str]]] = [
    ("dog", "a domesticated canine kept as a pet or bred for hunting, herding or guarding",
     ["a breed with a particular coat, size and temperament", "barks and is trained by people"]),
    ("bird", "a warm-blooded egg-laying vertebrate with feathers, wings and a beak",
     ["has feathers, wings and a beak", "sings, nests and often flies"]),
    ("fish", "a cold-blooded aquatic vertebrate with gills and fins that lives in water",
     ["has fins, scales and gills", "swims in the sea, rivers or lakes"]),
    ("insect", "a small invertebrate animal with six legs, a segmented body and often wings",
     ["has six legs and antennae", "a small bug, beetle, fly or ant"]),
    ("tree", "a tall perennial woody plant with a trunk, branches and leaves",
     ["has a woody trunk, bark and branches", "yields timber, nuts or fruit"]),
    ("flower", "a plant grown or found for its colourful blossoms and petals",
     ["has showy petals and blooms", "an herb or shrub of gardens and meadows"]),
    ("musical instrument", "a device played to produce musical sounds",
     ["has strings, keys, reeds or a drumhead", "played by a musician to make music"]),
    ("weapon", "an instrument used to injure, kill or fight in combat",
     ["a gun, blade, bomb or missile", "used by soldiers to attack or defend"]),
    ("vessel", "a boat or ship for travel on water, moved by oars, sails or an engine",
     ["floats and carries people or freight on water", "has a hull, a deck, sails or a motor"]),
    ("building", "a structure with a roof and walls, such as a house, hall or factory",
     ["a structure where people live, work or worship", "has rooms, floors and walls"]),
    ("garment", "an article of clothing worn on the body",
     ["worn by a person, such as a dress, coat or shirt", "made of cloth, wool or leather"]),
    ("dish", "a particular prepared food served as part of a meal",
     ["cooked food made from meat, vegetables, rice or dough", "served as a course of a meal"]),
    ("beverage", "any liquid suitable for drinking, such as wine, juice, tea or liquor",
     ["a drink poured into a glass or cup", "alcoholic or soft, served cold or hot"]),
    ("disease", "an illness or disorder of a living body with its symptoms",
     ["an infection, inflammation or illness of the body", "caused by bacteria, viruses or "
      "defects and treated by doctors"]),
    ("sport", "an active physical game or contest played for exercise or competition",
     ["a game played by teams or athletes with a ball or equipment", "a competition with "
      "rules, players and a score"]),
]

PAIRS: list[tuple[str, str, str]] = [
    ("bird", "insect", "birds have feathers and a beak while insects have six legs and antennae"),
    ("fish", "vessel", "a fish is a living animal with gills; a vessel is a boat people steer"),
    ("tree", "flower", "trees are tall with woody trunks while flowers are small blossoming herbs"),
    ("dish", "beverage", "a dish is solid food eaten at a meal while a beverage is a liquid drunk"),
    ("weapon", "musical instrument", "a weapon is used to fight while an instrument makes music"),
    ("disease", "sport", "a disease is an illness of the body while a sport is a game played"),
]


def build() -> dict:
    ids = {name: concept_id([name]) for name, _, _ in CONCEPTS}
    concepts = [{"id": ids[n], "name": n, "description": d, "labels": [n], "attributes": a}
                for n, d, a in CONCEPTS]
    pairs = [{"a": ids[a], "b": ids[b], "similarity": 0.0, "attributes": [t]}
             for a, b, t in PAIRS]
    names = [n for n, _, _ in CONCEPTS]
    now = now_iso()
    return {
        "schema_version": "1.0", "kind": "kec.knowledge",
        "labels": {"source": "hand-written: wordnet-glosses reference", "count": len(names),
                   "sha256": labels_sha256([[n] for n in names]), "items": names,
                   "groups_given": True},
        "concepts": concepts, "pairs": pairs,
        "provenance": {"kec_version": __version__, "created_at": now, "finished_at": now,
                       "backend": {"backend": "hand-written", "model": "none"},
                       "prompts": [], "sampling": {}, "seed": None,
                       "parameters": {"note": "written by hand for the efficacy benchmark"},
                       "text_encoder": None,
                       "usage": {"calls": 0, "cached_calls": 0, "prompt_tokens": 0,
                                 "completion_tokens": 0},
                       "failures": []},
    }


if __name__ == "__main__":
    doc = build()
    validate_knowledge(doc, str(OUT))
    save_knowledge(doc, OUT)
    print(f"wrote {OUT} ({len(doc['concepts'])} concepts, {len(doc['pairs'])} pairs)")
