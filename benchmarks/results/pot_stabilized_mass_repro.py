import inspect
import warnings

import numpy as np
import ot
from ot.bregman import _sinkhorn

warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
n, m, d, reg = 2000, 800, 512, 0.01


def unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


# CLIP-like unit features: cosines between the two sets of about 0.1 to 0.5
mx, mu = unit(rng.standard_normal(d)), unit(rng.standard_normal(d))
X = unit(0.7 * mx + 0.55 * unit(rng.standard_normal((n, d))))
U = unit(0.7 * (0.35 * mx + 0.94 * mu) + 0.55 * unit(rng.standard_normal((m, d))))
M = 1.0 - X @ U.T
a, b = np.full(n, 1 / n), np.full(m, 1 / m)

for method in ("sinkhorn", "sinkhorn_stabilized", "sinkhorn_epsilon_scaling"):
    T = ot.sinkhorn(a, b, M, reg, method=method, numItermax=30)
    print(f"{method:26s} mass {T.sum():.4g}")
print(f"1 / (n m) = {1 / (n * m):.4g}")

# the same function with u, v reset to ones (not 1/dim) after absorbing them
src = inspect.getsource(_sinkhorn.sinkhorn_stabilized)
src = src.replace("nx.ones(dim_a, type_as=M) / dim_a", "nx.ones(dim_a, type_as=M)")
src = src.replace("nx.ones(dim_b, type_as=M) / dim_b", "nx.ones(dim_b, type_as=M)")
ns = dict(vars(_sinkhorn))
exec(src, ns)
T = ns["sinkhorn_stabilized"](a, b, M, reg, numItermax=30)
print(f"{'patched sinkhorn_stabilized':26s} mass {T.sum():.4g}")
