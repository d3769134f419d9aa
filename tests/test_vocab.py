"""WordNet nouns (offline, via NLTK) and caption corpora."""

from __future__ import annotations

from pathlib import Path

import pytest

from kec.cli.main import main
from kec.vocab import (
    DEBIAN_WORDNET,
    VocabularyError,
    build_wordnet_corpus,
    cache_dir,
    lexnames_text,
    load_captions,
    load_wordnet,
    wordnet_nouns,
)

HAVE_WORDNET = (DEBIAN_WORDNET / "data.noun").is_file()
needs_wordnet = pytest.mark.skipif(
    not HAVE_WORDNET,
    reason=f"WordNet not installed in {DEBIAN_WORDNET} "
           "(apt-get install wordnet-base wordnet-sense-index)",
)


@pytest.fixture()
def tiny_wordnet(tmp_path) -> Path:
    """A minimal but well-formed WordNet database: two noun synsets."""
    src = tmp_path / "wn"
    src.mkdir()
    (src / "data.noun").write_text(
        "  1 WordNet 3.0 Copyright 2006 by Princeton University.\n"
        "00000000 05 n 02 hot_dog 0 Dog 0 000 | a sausage  \n"
        "00000060 05 n 02 dog 0 hot_dog 0 000 | an animal  \n"
    )
    (src / "index.noun").write_text(
        "  1 license\ndog n 2 0 2 0 00000000 00000060  \nhot_dog n 2 0 2 0 00000000 00000060  \n"
    )
    for name in ("data.adj", "data.adv", "data.verb", "index.adj", "index.adv", "index.verb",
                 "index.sense", "adj.exc", "adv.exc", "noun.exc", "verb.exc", "cntlist.rev"):
        (src / name).write_text("")
    (src / "README").write_text("not copied")
    return src


def test_lexnames_has_the_45_wordnet_lexicographer_files():
    lines = lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[44] == "44\tadj.ppl\t3"
    assert lines[3] == "03\tnoun.Tops\t1" and lines[29] == "29\tverb.body\t2"
    assert {line.split("\t")[2] for line in lines if "\tnoun." in line} == {"1"}


def test_cache_dir_argument_beats_env_beats_home(monkeypatch, tmp_path):
    monkeypatch.delenv("KEC_CACHE_DIR", raising=False)
    assert cache_dir() == Path.home() / ".cache" / "kec"
    monkeypatch.setenv("KEC_CACHE_DIR", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "arg") == tmp_path / "arg"


def test_build_copies_files_writes_lexnames_and_is_done_once(tiny_wordnet, tmp_path):
    nltk_dir = build_wordnet_corpus(tiny_wordnet, tmp_path / "cache")
    corpus = nltk_dir / "corpora" / "wordnet"
    assert nltk_dir == tmp_path / "cache" / "nltk_data"
    names = {p.name for p in corpus.iterdir()}
    assert {"data.noun", "index.sense", "noun.exc", "cntlist.rev", "lexnames"} <= names
    assert "README" not in names
    assert not any(p.is_symlink() for p in corpus.iterdir())
    assert (corpus / "lexnames").read_text() == lexnames_text()
    # a second build reuses the first: changing the source has no effect
    (tiny_wordnet / "data.noun").write_text("changed")
    assert build_wordnet_corpus(tiny_wordnet, tmp_path / "cache") == nltk_dir
    assert "hot_dog" in (corpus / "data.noun").read_text()
    assert [p.name for p in corpus.parent.iterdir()] == ["wordnet"]  # no temp folder left


def test_missing_database_is_a_clear_error(tmp_path):
    with pytest.raises(VocabularyError, match="apt-get install wordnet-base"):
        build_wordnet_corpus(tmp_path / "nothing", tmp_path / "cache")


def test_a_corpus_built_from_one_source_does_not_answer_for_a_missing_other(tiny_wordnet,
                                                                          tmp_path):
    build_wordnet_corpus(tiny_wordnet, tmp_path / "cache")
    with pytest.raises(VocabularyError, match="WordNet database not found"):
        build_wordnet_corpus(tmp_path / "nothing", tmp_path / "cache")


def test_nouns_are_distinct_spaced_sorted_and_case_aware(tiny_wordnet, tmp_path):
    nouns = wordnet_nouns(source=tiny_wordnet, cache=tmp_path)
    assert nouns == ["Dog", "dog", "hot dog"]
    wn = load_wordnet(source=tiny_wordnet, cache=tmp_path)
    assert wordnet_nouns(wordnet=wn, lowercase=True) == ["dog", "hot dog"]


def test_nltk_own_wordnet_is_preferred(monkeypatch, tmp_path):
    import nltk
    import nltk.corpus.reader.wordnet as nwn

    own = tmp_path / "own"
    monkeypatch.setattr(nltk.data, "find", lambda resource, paths=None: own)
    monkeypatch.setattr(nwn, "WordNetCorpusReader", lambda root, omw: ("reader", root))
    assert load_wordnet(cache=tmp_path / "cache") == ("reader", own)
    assert not (tmp_path / "cache").exists()  # nothing was built


def test_captions_are_stripped_deduplicated_and_ordered(tmp_path):
    path = tmp_path / "captions.txt"
    path.write_text("  a dog on grass \n\na cat\na dog on grass\n   \na bird\n")
    assert load_captions(path) == ["a dog on grass", "a cat", "a bird"]
    with pytest.raises(VocabularyError, match="cannot read"):
        load_captions(tmp_path / "missing.txt")


def test_cli_vocab_captions_and_wordnet(tmp_path, tiny_wordnet, capsys):
    src = tmp_path / "c.txt"
    src.write_text("b\n\na\nb\n")
    out = tmp_path / "out" / "captions.txt"
    assert main(["vocab", "captions", str(src), "--out", str(out)]) == 0
    assert out.read_text() == "b\na\n"
    nouns = tmp_path / "nouns.txt"
    assert main(["vocab", "wordnet", "--source", str(tiny_wordnet), "--cache-dir",
                 str(tmp_path / "cache"), "--out", str(nouns)]) == 0
    assert nouns.read_text() == "Dog\ndog\nhot dog\n"
    assert main(["vocab", "wordnet", "--source", str(tmp_path / "no"), "--out",
                 str(nouns)]) != 0
    assert "WordNet database not found" in capsys.readouterr().err


@needs_wordnet
def test_real_wordnet_30_nouns(tmp_path, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))
    wn = load_wordnet(source=DEBIAN_WORDNET, cache=tmp_path)
    assert str(tmp_path / "nltk_data") in nltk.data.path
    assert wn.synset("dog.n.01").lexname() == "noun.animal"  # needs the lexnames file
    assert wn.synsets("hot_dog", pos="n")
    nouns = wordnet_nouns(wordnet=wn)
    assert len(nouns) == 119_034  # distinct noun lemma names of WordNet 3.0
    assert nouns == sorted(set(nouns))
    assert {"dog", "hot dog", "Paris", "Einstein"} <= set(nouns)
    assert not any("_" in n for n in nouns)
    assert len(wordnet_nouns(wordnet=wn, lowercase=True)) == 117_798
