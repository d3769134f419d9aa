"""Text vocabularies: WordNet nouns (read with NLTK, offline) and caption corpora.

WordNet comes from NLTK's own data when it is installed (``nltk.download("wordnet")``),
otherwise from the Debian packages ``wordnet-base`` and ``wordnet-sense-index``
(``/usr/share/wordnet``): their files are copied once into an NLTK data folder under the
kec cache (``$KEC_CACHE_DIR/nltk_data``, default ``~/.cache/kec/nltk_data``), with the
``lexnames`` file NLTK needs and Debian does not ship. Copies, not symlinks: NLTK's path
sandbox rejects links that leave the corpus root.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kec._io import atomic_write_text
from kec.errors import KecError

logger = logging.getLogger(__name__)

DEBIAN_WORDNET = Path("/usr/share/wordnet")
CACHE_ENV = "KEC_CACHE_DIR"
_COPY_PATTERNS = ("data.*", "index.*", "*.exc", "cntlist.rev")
_REQUIRED = ("data.noun", "index.noun", "index.sense", "noun.exc")
_COMPLETE_MARKER = ".kec-complete"

# WordNet 3.0 lexicographer files, lexnames(5WN): number, name, syntactic category
# (1 noun, 2 verb, 3 adjective, 4 adverb).
LEXNAMES: tuple[tuple[str, int], ...] = (
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1),
    ("noun.animal", 1), ("noun.artifact", 1), ("noun.attribute", 1), ("noun.body", 1),
    ("noun.cognition", 1), ("noun.communication", 1), ("noun.event", 1),
    ("noun.feeling", 1), ("noun.food", 1), ("noun.group", 1), ("noun.location", 1),
    ("noun.motive", 1), ("noun.object", 1), ("noun.person", 1), ("noun.phenomenon", 1),
    ("noun.plant", 1), ("noun.possession", 1), ("noun.process", 1), ("noun.quantity", 1),
    ("noun.relation", 1), ("noun.shape", 1), ("noun.state", 1), ("noun.substance", 1),
    ("noun.time", 1), ("verb.body", 2), ("verb.change", 2), ("verb.cognition", 2),
    ("verb.communication", 2), ("verb.competition", 2), ("verb.consumption", 2),
    ("verb.contact", 2), ("verb.creation", 2), ("verb.emotion", 2), ("verb.motion", 2),
    ("verb.perception", 2), ("verb.possession", 2), ("verb.social", 2),
    ("verb.stative", 2), ("verb.weather", 2), ("adj.ppl", 3),
)


class VocabularyError(KecError):
    """A vocabulary source is missing or unreadable."""


def cache_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """kec's cache root: ``path``, else ``$KEC_CACHE_DIR``, else ``~/.cache/kec``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kec"


def lexnames_text() -> str:
    """The ``lexnames`` file: ``NN<TAB>name<TAB>category`` per line, 45 lines."""
    return "".join(f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in enumerate(LEXNAMES))


def build_wordnet_corpus(
    source: str | os.PathLike[str] = DEBIAN_WORDNET,
    cache: str | os.PathLike[str] | None = None,
) -> Path:
    """Make an NLTK data folder holding ``corpora/wordnet`` from a WordNet 3.0 database.

    Done once: a complete earlier build is reused. The build goes to a temporary folder
    that is renamed into place, so concurrent runs never see half a corpus.

    Parameters
    ----------
    source : path-like
        Folder with the WordNet database files (Debian: ``/usr/share/wordnet``).
    cache : path-like, optional
        kec cache root (see :func:`cache_dir`); the NLTK data folder is ``<cache>/nltk_data``.

    Returns
    -------
    pathlib.Path
        The NLTK data folder (to put on ``nltk.data.path``).

    Raises
    ------
    VocabularyError
        ``source`` lacks the WordNet files.
    """
    nltk_dir = cache_dir(cache) / "nltk_data"
    target = nltk_dir / "corpora" / "wordnet"
    source = Path(source)
    missing = [name for name in _REQUIRED if not (source / name).is_file()]
    marker = target / _COMPLETE_MARKER
    if marker.is_file():
        built_from = marker.read_text(encoding="utf-8").strip()
        if built_from == str(source) or (missing and source == DEBIAN_WORDNET):
            # the same source, or the default one gone since: the built copy serves
            logger.debug("WordNet corpus already built in %s", target)
            return nltk_dir
    if missing:
        raise VocabularyError(
            f"WordNet database not found in {source} (missing {', '.join(missing)}); "
            "install it with: apt-get install wordnet-base wordnet-sense-index "
            "(or python -m nltk.downloader wordnet)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".wordnet.", dir=target.parent))
    try:
        files = sorted({p for pattern in _COPY_PATTERNS for p in source.glob(pattern)})
        for src in files:
            if src.is_file():
                shutil.copyfile(src, tmp / src.name)  # a copy: NLTK rejects outside links
        (tmp / "lexnames").write_text(lexnames_text(), encoding="utf-8")
        (tmp / _COMPLETE_MARKER).write_text(str(source) + "\n", encoding="utf-8")
        if target.exists():  # an incomplete earlier build
            shutil.rmtree(target)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / _COMPLETE_MARKER).is_file():
                raise
            logger.debug("another process built %s first", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("built the NLTK WordNet corpus from %s in %s (%d files)", source, target,
                len(files) + 1)
    return nltk_dir


def load_wordnet(
    *,
    cache: str | os.PathLike[str] | None = None,
    source: str | os.PathLike[str] | None = None,
) -> Any:
    """An NLTK WordNet reader, offline.

    Parameters
    ----------
    cache : path-like, optional
        kec cache root for the built corpus.
    source : path-like, optional
        A WordNet database folder to build from. When not given, NLTK's own ``wordnet``
        data is used if installed, else ``/usr/share/wordnet``.

    Returns
    -------
    nltk.corpus.reader.wordnet.WordNetCorpusReader
    """
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    if source is None:
        try:
            root = nltk.data.find("corpora/wordnet")
        except LookupError:
            root = None
        else:
            logger.info("using NLTK's own WordNet data at %s", root)
            return _reader(WordNetCorpusReader, root)
    nltk_dir = build_wordnet_corpus(source if source is not None else DEBIAN_WORDNET, cache)
    if str(nltk_dir) not in nltk.data.path:
        nltk.data.path.append(str(nltk_dir))
    root = nltk.data.find("corpora/wordnet", paths=[str(nltk_dir)])
    logger.info("loading WordNet from %s", root)
    return _reader(WordNetCorpusReader, root)


def _reader(cls: Any, root: Any) -> Any:
    """Open the reader without the Open Multilingual Wordnet (English nouns only)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The multilingual functions")
        return cls(root, None)


def wordnet_nouns(
    *,
    cache: str | os.PathLike[str] | None = None,
    source: str | os.PathLike[str] | None = None,
    lowercase: bool = False,
    wordnet: Any = None,
) -> list[str]:
    """All distinct WordNet noun lemma names, underscores turned into spaces, sorted.

    Names are taken from the lemmas of every noun synset, with their case: WordNet 3.0
    gives 119,034 (``"dog"``, ``"hot dog"``, ``"Paris"``, ...). CLIP's tokenizer lowercases,
    so case variants (``"Cat"``, ``"cat"``) encode identically; ``lowercase=True`` keeps
    one of them (117,798 names, the entries of ``index.noun``).

    Parameters
    ----------
    cache, source
        As in :func:`load_wordnet`.
    lowercase : bool
        Lowercase the names before removing duplicates.
    wordnet : WordNetCorpusReader, optional
        An already loaded reader (loading takes seconds); ``cache``/``source`` are then
        ignored.
    """
    wn = wordnet if wordnet is not None else load_wordnet(cache=cache, source=source)
    names = set(_noun_lemma_names(wn))
    if lowercase:
        names = {name.lower() for name in names}
    nouns = sorted({name.replace("_", " ") for name in names})
    logger.info("WordNet: %d distinct noun lemma names", len(nouns))
    return nouns


def _noun_lemma_names(wn: Any) -> Iterable[str]:
    """Lemma names of every noun synset, read from ``data.noun`` through the NLTK reader.

    Same result as ``{l.name() for s in wn.all_synsets("n") for l in s.lemmas()}`` in a
    fraction of the time (no Synset objects are built).
    """
    with wn.open("data.noun") as fh:
        for line in fh:
            if line.startswith(" "):  # the license header
                continue
            fields = line.split(" ", 4 + 2 * 256)
            count = int(fields[3], 16)
            for k in range(count):
                yield fields[4 + 2 * k]


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """Lines of a UTF-8 text file: stripped, empty ones dropped, duplicates removed
    (first occurrence kept, order preserved).

    Raises
    ------
    VocabularyError
        The file is missing or not UTF-8 text.
    """
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VocabularyError(f"cannot read text file {path}: {exc}") from exc
    lines = [line.strip() for line in text.splitlines()]
    unique = list(dict.fromkeys(line for line in lines if line))
    dropped = len(lines) - len(unique)
    if dropped:
        logger.info("%s: dropped %d empty or duplicate lines", path, dropped)
    return unique


def load_captions(path: str | os.PathLike[str]) -> list[str]:
    """A caption corpus: one caption per line (see :func:`read_lines`)."""
    return read_lines(path)


def write_lines(path: str | os.PathLike[str], lines: Iterable[str]) -> None:
    """Write one item per line, atomically; newlines inside an item become spaces."""
    atomic_write_text(path, "".join(" ".join(str(x).splitlines()) + "\n" for x in lines))
