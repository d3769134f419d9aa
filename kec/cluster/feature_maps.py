r"""What ``predict`` needs: the map from new items to the space a method clustered, and
the nearest centre there.

Every method's run returns a :class:`FeatureMap` (a picklable object) that rebuilds,
for new items :math:`x`, the matrix that was clustered: :math:`x` itself (``kmeans``,
guarded fusion's ``data`` and ``refine`` modes), TAC's :math:`[x ; \hat t]`, KEC's
:math:`[x ; \kappa]`, guarded fusion's :math:`[x^\perp ; \beta\hat c ; \beta\hat a]` or
an adaptive fusion of OT-aligned views. Knowledge and texts are grounded for the new
items as for the fitted ones: softmax grounding per item; optimal transport between the
batch of new items and the same texts (uniform marginals over that batch). Then

.. math::
    \hat y(x) = \arg\max_k \frac{f(x)}{\lVert f(x)\rVert} \cdot \mu_k, \qquad
    \mu_k = \mathrm{normalize}\Big(\sum_{i \in C_k} \frac{f_i}{\lVert f_i\rVert}\Big)

with :math:`f` the feature map and :math:`C_k` the fitted clusters (spherical k-means'
assignment rule; an empty cluster gets a zero centre and no item).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kec.cluster._checks import l2_normalize_rows
from kec.cluster.fusion import adaptive_fusion, concat, kec_concat
from kec.cluster.grounding import Grounding, ground_ot, ground_softmax, softmax_attribute_view
from kec.cluster.ot import solve_and_transport
from kec.cluster.scaffold import text_counterpart


def cluster_centres(F: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    r"""``(K, D)`` float32 :math:`\mu_k`: the normalised sum of the normalised rows of
    ``F`` in cluster ``k`` (zero for an empty cluster)."""
    F = l2_normalize_rows(np.array(F, dtype=np.float32))
    y = np.asarray(labels, dtype=np.int64)
    sums = np.zeros((int(n_clusters), F.shape[1]), dtype=np.float64)
    np.add.at(sums, y, F)
    return l2_normalize_rows(sums.astype(np.float32))


def nearest_centre(F: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``(N,)`` int64 index of the centre of highest cosine with every row of ``F``
    (empty clusters, with zero centres, are never chosen)."""
    sims = l2_normalize_rows(np.array(F, dtype=np.float32)) @ centres.T
    sims[:, ~np.any(centres != 0, axis=1)] = -np.inf
    return np.asarray(sims.argmax(axis=1), dtype=np.int64)


class FeatureMap:
    """New items -> the space that was clustered (subclasses implement ``__call__``)."""

    def __call__(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class Identity(FeatureMap):
    """:math:`f(x) = x` (kmeans; guarded fusion's ``data`` and ``refine`` modes)."""

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """The items as they are (float32)."""
        return np.asarray(X, dtype=np.float32)


@dataclass
class TacMap(FeatureMap):
    r"""TAC: :math:`f(x) = [x ; \hat t(x)]` over the selected nouns (docs/methods.md §1)."""

    texts: np.ndarray
    tau: float

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """:math:`[x ; \\hat t(x)]`, each half normalised."""
        return concat([X, text_counterpart(X, self.texts, self.tau)])


@dataclass
class SoftmaxGrounder:
    """KEC's softmax grounding of new items (docs/methods.md §2.4)."""

    zeta: np.ndarray
    attr_means: np.ndarray
    attr_emb: np.ndarray
    temperature: float

    def ground(self, X: np.ndarray) -> Grounding:
        """:func:`kec.cluster.grounding.ground_softmax` of ``X``."""
        return ground_softmax(X, self.zeta, self.attr_means, self.temperature)

    def views(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Concept view and softmax attribute view (guarded fusion's inputs)."""
        attr = (softmax_attribute_view(X, self.attr_emb, self.temperature)
                if self.attr_emb.shape[0] else None)
        return self.ground(X).concept, attr


@dataclass
class OTGrounder:
    """kec+cae's OT grounding of new items (docs/methods.md §4)."""

    zeta: np.ndarray
    attr_emb: np.ndarray
    reg: float
    ot_method: str
    attribute_mode: str
    ot_params: dict[str, Any] = field(default_factory=dict)

    def ground(self, X: np.ndarray) -> Grounding:
        """:func:`kec.cluster.grounding.ground_ot` of ``X`` (OT over the batch ``X``)."""
        return ground_ot(X, self.zeta, self.attr_emb, reg=self.reg, ot_method=self.ot_method,
                         attribute_mode=self.attribute_mode, ot_params=dict(self.ot_params))

    def views(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Concept and attribute views (guarded fusion's inputs)."""
        g = self.ground(X)
        return g.concept, g.attribute


@dataclass
class KecConcatMap(FeatureMap):
    r"""KEC's :math:`f(x) = [x ; \kappa(x)]` (docs/methods.md §2.5)."""

    grounder: SoftmaxGrounder
    normalize: bool = True

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """:math:`[x ; \\kappa(x)]`."""
        return kec_concat(X, self.grounder.ground(X).kappa, normalize=self.normalize)


@dataclass
class NuisanceMap(FeatureMap):
    r"""Guarded fusion's ``nuisance`` mode: :math:`f(x) = [x^\perp ; \beta\hat c ;
    \beta\hat a]`, :math:`x^\perp = \mathrm{normalize}((I - QQ^\top)\hat x)` with the
    fitted nuisance basis :math:`Q` (docs/methods.md §4.3)."""

    basis: np.ndarray
    beta: float
    grounder: Any

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """:math:`[x^\\perp ; \\beta\\hat c ; \\beta\\hat a]`."""
        Xn = l2_normalize_rows(np.array(X, dtype=np.float32))
        Q = self.basis
        parts = [l2_normalize_rows(Xn - (Xn @ Q) @ Q.T)]
        concept, attribute = self.grounder.views(X)
        parts.append(np.float32(self.beta) * l2_normalize_rows(
            np.array(concept, dtype=np.float32)))
        if attribute is not None:
            parts.append(np.float32(self.beta) * l2_normalize_rows(
                np.array(attribute, dtype=np.float32)))
        return np.concatenate(parts, axis=1)


@dataclass
class TransportedTexts:
    """Text sets aligned to new items by OT, as CAE aligns them (docs/methods.md §3.2)."""

    texts: list[np.ndarray]
    reg: float
    ot_method: str
    ot_params: dict[str, Any] = field(default_factory=dict)

    def __call__(self, X: np.ndarray) -> list[np.ndarray]:
        """One transported view of ``X`` per text set."""
        return [solve_and_transport(X, T, self.ot_method, reg=self.reg,
                                    **dict(self.ot_params))[0] for T in self.texts]


@dataclass
class CaeMap(FeatureMap):
    """CAE: adaptive fusion of :math:`x` and its OT-aligned nouns (and captions)."""

    levels: TransportedTexts
    gamma: float
    mode: str

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """The fused matrix."""
        return adaptive_fusion([np.asarray(X, np.float32), *self.levels(X)], self.gamma,
                               self.mode)[0]


@dataclass
class KecCaeMap(FeatureMap):
    r"""kec+cae's ``adaptive`` (:math:`x, c, a` and levels, CAE's weights) or ``kec``
    (:math:`[x ; c + a ; \dots]`) fusion of new items."""

    grounder: OTGrounder
    levels: TransportedTexts | None
    fusion: str
    gamma: float = 0.01
    mode: str = "sum"

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """The fused matrix."""
        g = self.grounder.ground(X)
        extra = self.levels(X) if self.levels is not None else []
        if self.fusion == "adaptive":
            return adaptive_fusion([np.asarray(X, np.float32), g.concept, g.attribute,
                                    *extra], self.gamma, self.mode)[0]
        return concat([kec_concat(X, g.kappa), *extra])


__all__ = ["CaeMap", "FeatureMap", "Identity", "KecCaeMap", "KecConcatMap", "NuisanceMap",
           "OTGrounder", "SoftmaxGrounder", "TacMap", "TransportedTexts", "cluster_centres",
           "nearest_centre"]
