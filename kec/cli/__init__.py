"""The ``kec`` command line: knowledge, embed, vocab, scaffold, cluster, bench, report."""
