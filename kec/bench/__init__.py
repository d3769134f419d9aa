"""Benchmark harnesses behind ``kec bench``.

- :mod:`kec.bench.harness` — image datasets of the papers: embed, select nouns, build
  knowledge, run every method and seed, tables beside the published numbers;
- :mod:`kec.bench.efficacy` — the offline efficacy benchmark on WordNet glosses (does
  knowledge help, and does it never hurt?);
- :mod:`kec.bench.methods`, :mod:`kec.bench.tables` — one method run and the tables.
"""
