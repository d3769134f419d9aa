"""Every method on CPU torch (``device="cpu"``) agrees with the numpy path."""

from __future__ import annotations

import pytest

from kec.cluster import cluster_accuracy
from kec.cluster.methods import METHOD_NAMES, run_method
from kec.cluster.metrics import nmi

pytest.importorskip("torch")


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_cpu_torch_matches_numpy(nuisance_world_small, name):
    X, y, nouns, kf = nuisance_world_small
    kw = {"nouns": nouns, "knowledge": kf, "random_state": 0}
    if name in ("tac", "cae"):
        kw["n_overclusters"] = 12
    ref = run_method(name, X, 4, **kw)
    dev = run_method(name, X, 4, device="cpu", **kw)
    assert dev.params["device"] == "cpu" and ref.params["device"] is None
    assert nmi(ref.labels, dev.labels) >= 0.95
    assert abs(cluster_accuracy(y, ref.labels) - cluster_accuracy(y, dev.labels)) <= 0.03
    if "guard" in ref.info:
        assert ref.info["guard"]["mode"] == dev.info["guard"]["mode"]


@pytest.fixture(scope="module")
def nuisance_world_small():
    from tests.cluster.test_methods_use_text import nuisance_world

    X, y, _, nouns, kf = nuisance_world.__wrapped__()
    return X, y, nouns, kf


def test_method_device_maps_the_cli_choice():
    import torch

    from kec.cluster.backend import method_device

    assert method_device("cpu") is None and method_device(None) is None
    assert method_device("cuda") == "cuda"
    assert method_device("auto") == ("cuda" if torch.cuda.is_available() else None)
    with pytest.raises(ValueError):
        method_device("tpu")
