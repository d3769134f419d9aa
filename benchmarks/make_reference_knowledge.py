"""Write the hand-written reference knowledge files of the efficacy benchmarks.

The content below is written by hand (no LLM): one concept per category with a short
description, two attributes each, and a few pairs of easily confused categories with one
attribute that tells them apart. Run it after editing the content::

    python benchmarks/make_reference_knowledge.py

It writes ``kec/bench/data/wordnet_glosses.reference.knowledge.json`` and
``kec/bench/data/foldoc.reference.knowledge.json`` (validated). The FOLDOC file was
written from the subject names alone, as a user would describe the topics of their
collection, before any clustering of that collection was run.
"""

from __future__ import annotations

from pathlib import Path

from kec._version import __version__
from kec.knowledge.document import concept_id, now_iso, save_knowledge, validate_knowledge
from kec.knowledge.labels import labels_sha256

DATA = Path(__file__).resolve().parents[1] / "kec" / "bench" / "data"

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


FOLDOC_CONCEPTS: list[tuple[str, str, list[str]]] = [
    ("programming language", "a programming language: its syntax, paradigm, designer and "
     "the language it derives from",
     ["a language with its own syntax, compiler or interpreter",
      "designed by a person or team in a given year, often a dialect of another language"]),
    ("programming", "a technique, construct or practice used in writing and structuring "
     "computer programs",
     ["a construct such as a function, loop, variable, type or expression",
      "a practice or method of software development and program design"]),
    ("networking", "computer networks: protocols, addresses, packets and the devices that "
     "connect computers",
     ["packets, routers, hosts, addresses and the Internet",
      "a protocol or standard for sending data between computers on a network"]),
    ("operating system", "an operating system, its kernel, commands, processes and system "
     "utilities",
     ["Unix, Linux, Windows, DOS or another operating system and its commands",
      "manages processes, files and devices for the programs that run on it"]),
    ("company", "a company or corporation that makes or sells computer hardware, software "
     "or services",
     ["a firm founded in a given year and headquartered in a city",
      "develops, markets and sells products to its customers"]),
    ("hardware", "physical computer hardware: devices, boards, peripherals, cables and buses",
     ["a physical device, circuit board, connector or peripheral",
      "plugs into a computer through a bus, port or slot"]),
    ("mathematics", "a mathematical concept, theorem, function or structure",
     ["defined on sets, numbers, functions or graphs",
      "a theorem, equation or formal definition in mathematics"]),
    ("storage", "data storage: memory chips, disks, tapes and how data is stored and "
     "addressed",
     ["memory, RAM, a disk drive, a tape or a cache",
      "stores bits and bytes of data at an address"]),
    ("processor", "a microprocessor or CPU: its instruction set, registers and architecture",
     ["a CPU chip made by Intel, Motorola or another manufacturer",
      "executes instructions using registers, a clock and an instruction set"]),
    ("database", "a database system: its data model, query language and transactions",
     ["tables, records, queries and SQL",
      "stores and retrieves data with transactions and indexes"]),
    ("person", "a person known in computing: an inventor, researcher, programmer or hacker",
     ["a man or woman, born in a given year, who invented or wrote something",
      "a computer scientist, engineer or hacker known for their work"]),
    ("web", "the World Wide Web: web pages, browsers, HTML, URLs and web servers",
     ["a web page, website, browser or HTML document",
      "served over HTTP by a web server and viewed in a browser"]),
    ("graphics", "computer graphics: images, pixels, colour, rendering and drawing on a "
     "screen",
     ["pixels, colours, images and the screen display",
      "rendering, drawing, shading or modelling of shapes and surfaces"]),
    ("security", "computer security: attacks, malware, encryption, passwords and access "
     "control",
     ["a virus, worm, attack or other malware",
      "protects systems with encryption, passwords or firewalls"]),
]

FOLDOC_PAIRS: list[tuple[str, str, str]] = [
    ("programming language", "programming", "a programming language is a named language "
     "with its own syntax, while programming is a technique used in any language"),
    ("networking", "web", "networking is about packets and protocols between hosts, while "
     "the web is about pages, browsers and HTML"),
    ("hardware", "storage", "hardware is any physical device or board, while storage holds "
     "data in memory, on disks or on tapes"),
    ("processor", "hardware", "a processor is a CPU chip that executes instructions, while "
     "other hardware is a device, board or peripheral"),
    ("company", "person", "a company is a firm that sells products, while a person is an "
     "individual man or woman"),
    ("operating system", "programming", "an operating system is system software with a "
     "kernel and commands, while programming is the writing of code"),
]

#: name -> (concepts, pairs, output file, source line)
DATASETS = {
    "wordnet-glosses": (CONCEPTS, PAIRS, DATA / "wordnet_glosses.reference.knowledge.json",
                        "hand-written: wordnet-glosses reference"),
    "foldoc": (FOLDOC_CONCEPTS, FOLDOC_PAIRS, DATA / "foldoc.reference.knowledge.json",
               "hand-written: foldoc reference"),
}


def build(concept_rows: list[tuple[str, str, list[str]]] = CONCEPTS,
          pair_rows: list[tuple[str, str, str]] = PAIRS,
          source: str = "hand-written: wordnet-glosses reference") -> dict:
    ids = {name: concept_id([name]) for name, _, _ in concept_rows}
    concepts = [{"id": ids[n], "name": n, "description": d, "labels": [n], "attributes": a}
                for n, d, a in concept_rows]
    pairs = [{"a": ids[a], "b": ids[b], "similarity": 0.0, "attributes": [t]}
             for a, b, t in pair_rows]
    names = [n for n, _, _ in concept_rows]
    now = now_iso()
    return {
        "schema_version": "1.0", "kind": "kec.knowledge",
        "labels": {"source": source, "count": len(names),
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
    for concept_rows, pair_rows, out, source in DATASETS.values():
        doc = build(concept_rows, pair_rows, source)
        validate_knowledge(doc, str(out))
        save_knowledge(doc, out)
        print(f"wrote {out} ({len(doc['concepts'])} concepts, {len(doc['pairs'])} pairs)")
