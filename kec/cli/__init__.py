"""The ``kec`` command line: knowledge, embed, vocab, scaffold and cluster commands."""
