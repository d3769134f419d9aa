"""kec.cluster._checks: inputs that would overflow are refused with one clear message."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kec.cluster._checks import MAX_ABS_FEATURE, ClusteringInputError, as_features
from kec.cluster.kmeans import SphericalKMeans
from kec.errors import KecError


@pytest.mark.parametrize("value", [3e38, -3e38, 1e16, float(np.finfo(np.float32).max)])
def test_huge_finite_values_are_refused(value: float) -> None:
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    x[2, 1] = value
    with pytest.raises(ClusteringInputError, match=r"1 row\(s\) hold values beyond") as info:
        as_features(x)
    assert isinstance(info.value, KecError) and isinstance(info.value, ValueError)
    assert "first rows: [2]" in str(info.value)


def test_kmeans_on_huge_values_is_a_clear_error_not_an_index_error() -> None:
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    x[3] = 3e38
    with pytest.raises(ClusteringInputError, match="overflow"):
        SphericalKMeans(n_clusters=3, random_state=0).fit(x)


@settings(max_examples=60, deadline=None)
@given(scale=st.floats(min_value=1e-30, max_value=MAX_ABS_FEATURE),
       d=st.integers(min_value=1, max_value=4096))
def test_every_accepted_row_has_a_finite_float32_norm(scale: float, d: int) -> None:
    """The law behind the limit: whatever as_features accepts, squared norms stay finite."""
    x = np.full((2, d), scale, dtype=np.float64)
    arr = as_features(x)
    norms = np.einsum("ij,ij->i", arr, arr)  # float32 accumulation, as the methods do
    assert np.isfinite(norms).all()
