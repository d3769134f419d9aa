"""FOLDOC definitions: a real, offline text collection with natural topics.

The Free On-line Dictionary of Computing (FOLDOC, Denis Howe, GFDL) tags most entries
with a subject in angle brackets, ``<networking>``, ``<database>``, ``<person>``. An item
of this collection is the first paragraph of an entry's definition, without its headword,
cut at a sentence end near :data:`MAX_CHARS` characters; its category is the entry's
subject. Only entries with exactly one subject are used, so every item has one true
category.

Unlike :mod:`kec.datasets.wordnet_glosses`, nothing here is synthetic: the topics
overlap as they do in real collections (a processor is also hardware, a language entry
is also about programming), and k-means on all-MiniLM-L6-v2 features of the default 14
subjects reaches about 65 ACC, with several points of spread between seeds.

Nothing is downloaded: the dictionary comes from Debian's ``dict-foldoc`` package
(``/usr/share/dictd/foldoc.dict.dz`` and ``foldoc.index``, the dictd format). Set
``KEC_FOLDOC_DIR`` to read the two files from another folder.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kec.datasets.base import DatasetError

DEFAULT_DIR = Path("/usr/share/dictd")
DICT_NAME = "foldoc.dict.dz"
INDEX_NAME = "foldoc.index"

#: The default subjects: single-subject entries of each number 99 to 879 in the
#: 2023-01-19 edition, so every subject has at least 50 items after filtering.
SUBJECTS: tuple[str, ...] = (
    "language", "programming", "networking", "operating system", "company", "hardware",
    "mathematics", "storage", "processor", "database", "person", "web", "graphics",
    "security",
)
MAX_CHARS = 300
"""An item is cut at the last sentence end before this many characters (or here)."""
MIN_CHARS = 20
"""Shorter definitions ("(SPRING)", "See foo.") carry no topic and are skipped."""

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_SUBJECT = re.compile(r"^<([^<>]+)>\s*")
_LINK_WITH_URL = re.compile(r"\{([^{}]*?)\s*\((?:https?|ftp|mailto|gopher|news)[^)]*\)\}")
_LINK = re.compile(r"\{([^{}]*)\}")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class FoldocEntry:
    """One dictionary entry: headword, subjects, first definition paragraph."""

    headword: str
    subjects: tuple[str, ...]
    text: str


@dataclass
class FoldocCollection:
    """A labelled text collection sampled from FOLDOC.

    Attributes
    ----------
    texts : list of str
        One definition per item (headword removed).
    targets : numpy.ndarray
        ``(n,)`` int64 subject of every item.
    class_names : list of str
        Subject names, ``class_names[targets[i]]``.
    ids : list of str
        The headword of every item.
    lemmas : list of list of str
        The headword of every item, as a one-element list (dropped from the noun
        vocabulary of noun-based methods, so that no item looks itself up).
    info : dict
        Provenance: edition, subjects, per-class size, seed.
    """

    texts: list[str]
    targets: np.ndarray
    class_names: list[str]
    ids: list[str]
    lemmas: list[list[str]]
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def labels(self) -> list[str]:
        """The subject of every item."""
        return [self.class_names[int(t)] for t in self.targets]


def foldoc_dir() -> Path:
    """Where the dictd files are read from (``KEC_FOLDOC_DIR`` or Debian's folder)."""
    return Path(os.environ.get("KEC_FOLDOC_DIR") or DEFAULT_DIR)


def foldoc_available(directory: Path | None = None) -> bool:
    """Whether both dictd files of FOLDOC are readable."""
    d = directory or foldoc_dir()
    return (d / DICT_NAME).is_file() and (d / INDEX_NAME).is_file()


def _b64(text: str) -> int:
    value = 0
    for ch in text:
        value = value * 64 + _B64.index(ch)
    return value


def clean_definition(paragraph: str, max_chars: int = MAX_CHARS) -> str:
    """Cross-reference braces removed (``{foo (http://…)}`` → ``foo``), spaces folded,
    cut at the last sentence end before ``max_chars``."""
    text = _LINK_WITH_URL.sub(r"\1", paragraph)
    text = _LINK.sub(r"\1", text)
    text = _SPACE.sub(" ", text).strip()
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    end = max(head.rfind(". "), head.rfind("? "), head.rfind("! "))
    return head[:end + 1] if end >= MIN_CHARS else head.rstrip()


def _first_paragraph(lines: list[str]) -> str:
    """The first paragraph of the indented body (the lines after the headwords)."""
    i = 0
    while i < len(lines) and not lines[i].startswith((" ", "\t")):
        i += 1
    para: list[str] = []
    for line in lines[i:]:
        if not line.strip():
            if para:
                break
            continue
        para.append(line.strip())
    return " ".join(para)


def read_entries(directory: Path | None = None) -> list[FoldocEntry]:
    """Every entry of the dictionary that opens with a subject tag, in file order.

    Raises
    ------
    DatasetError
        The files are missing or not a dictd FOLDOC.
    """
    d = directory or foldoc_dir()
    if not foldoc_available(d):
        raise DatasetError(f"FOLDOC not found in {d} (install Debian's dict-foldoc, or set "
                           "KEC_FOLDOC_DIR to a folder with foldoc.dict.dz and foldoc.index)")
    try:
        with gzip.open(d / DICT_NAME) as fh:
            data = fh.read()
        index = (d / INDEX_NAME).read_text("utf-8", errors="replace").splitlines()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"cannot read FOLDOC in {d}: {exc}") from None
    offsets: dict[int, int] = {}
    for line in index:
        parts = line.split("\t")
        if len(parts) < 3 or not parts[1] or not parts[2]:
            continue
        try:
            offsets.setdefault(_b64(parts[1]), _b64(parts[2]))
        except ValueError:
            raise DatasetError(f"{d / INDEX_NAME} is not a dictd index") from None
    entries: list[FoldocEntry] = []
    for off in sorted(offsets):
        raw = data[off:off + offsets[off]].decode("utf-8", errors="replace")
        lines = raw.split("\n")
        paragraph = _first_paragraph(lines)
        m = _SUBJECT.match(paragraph)
        if not m or not lines[0].strip():
            continue
        subjects = tuple(s.strip() for s in m.group(1).split(",") if s.strip())
        entries.append(FoldocEntry(lines[0].strip(), subjects,
                                   clean_definition(paragraph[m.end():])))
    if not entries:
        raise DatasetError(f"{d / DICT_NAME} holds no FOLDOC entries with a subject")
    return entries


def _edition(directory: Path) -> str:
    try:
        with gzip.open(directory / DICT_NAME) as fh:
            head = fh.read(4096).decode("utf-8", errors="replace")
    except (OSError, EOFError):
        return "unknown"
    m = re.search(r"Free On-line Dictionary of Computing \(([^)]*)\)", head)
    return m.group(1) if m else "unknown"


def load_foldoc(
    *,
    per_class: int = 50,
    seed: int = 0,
    subjects: tuple[str, ...] = SUBJECTS,
    directory: Path | None = None,
    entries: list[FoldocEntry] | None = None,
) -> FoldocCollection:
    """Sample ``per_class`` single-subject definitions of every subject.

    Parameters
    ----------
    per_class : int
        Items per subject (every subject must have at least this many).
    seed : int
        Seed of the sample (the collection's identity, not a clustering seed).
    subjects : tuple of str
        The categories; default :data:`SUBJECTS`.
    directory : Path, optional
        Folder of the dictd files; default :func:`foldoc_dir`.
    entries : list of FoldocEntry, optional
        Already read entries (:func:`read_entries`), to sample several collections.

    Raises
    ------
    DatasetError
        Missing dictionary, an unknown subject, or too few items in a subject.
    """
    if per_class < 1:
        raise DatasetError(f"per_class must be >= 1, got {per_class}")
    d = directory or foldoc_dir()
    entries = entries if entries is not None else read_entries(d)
    pools: dict[str, list[FoldocEntry]] = {s: [] for s in subjects}
    seen: set[str] = set()
    for e in entries:
        if len(e.subjects) == 1 and e.subjects[0] in pools and len(e.text) >= MIN_CHARS \
                and e.text.lower() not in seen:
            seen.add(e.text.lower())
            pools[e.subjects[0]].append(e)
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    targets: list[int] = []
    ids: list[str] = []
    for c, subject in enumerate(subjects):
        pool = sorted(pools[subject], key=lambda e: e.headword)
        if len(pool) < per_class:
            raise DatasetError(f"FOLDOC subject {subject!r} has {len(pool)} usable entries, "
                               f"fewer than per_class={per_class}")
        for i in sorted(rng.choice(len(pool), size=per_class, replace=False).tolist()):
            texts.append(pool[i].text)
            targets.append(c)
            ids.append(pool[i].headword)
    return FoldocCollection(
        texts=texts, targets=np.asarray(targets, dtype=np.int64), class_names=list(subjects),
        ids=ids, lemmas=[[h] for h in ids],
        info={"dataset": "foldoc", "edition": _edition(d), "per_class": per_class,
              "seed": seed, "subjects": list(subjects), "max_chars": MAX_CHARS})
