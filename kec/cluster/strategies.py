r"""Fusion strategies: how the knowledge methods join the image features with their
grounded knowledge, one function per value of the ``fusion`` parameter.

The registry (:data:`kec.cluster.registry.METHODS`, ``"fusions"``) maps every strategy
name to its function here and to the parameters it reads; ``run_kec`` and
``run_kec_cae`` ground the knowledge, then call the strategy the table names, as POT
picks a solver by name. Every strategy takes a :class:`FusionInput` and returns a
:class:`FusionOutput`.

=======  =============  ================================================================
method   fusion         clusters
=======  =============  ================================================================
kec      guarded        :func:`kec.cluster.guard.guarded_cluster` on :math:`x`, the
                        concept view and the softmax attribute view (docs/methods.md §4.3)
kec      concat         :math:`[x ; \kappa]` with the final clusterer (KEC as published)
kec+cae  guarded        :func:`~kec.cluster.guard.guarded_cluster` on :math:`x, c, a`
kec+cae  adaptive       CAE's adaptive fusion of :math:`x, c, a` and the optional levels
kec+cae  kec            :math:`[x ; c + a ; \dots]`
=======  =============  ================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kec.cluster._checks import l2_normalize_rows
from kec.cluster.feature_maps import (
    FeatureMap,
    Identity,
    KecCaeMap,
    KecConcatMap,
    NuisanceMap,
    TransportedTexts,
)
from kec.cluster.fusion import adaptive_fusion, concat, kec_concat
from kec.cluster.grounding import Grounding, softmax_attribute_view
from kec.cluster.guard import guarded_cluster, nuisance_basis, nuisance_max_rank
from kec.cluster.knowledge_features import KnowledgeFeatures
from kec.cluster.steps import Stages, cluster_features, mean_weights


@dataclass
class FusionInput:
    """What a fusion strategy gets.

    Attributes
    ----------
    X : numpy.ndarray
        ``(N, d)`` float32 image features.
    n_clusters : int
        ``K``.
    knowledge : KnowledgeFeatures
        The embedded knowledge.
    grounding : Grounding
        The knowledge grounded on ``X``.
    params : Mapping
        The method's full parameter set (:func:`kec.cluster.params.method_params`).
    stages : Stages
        Where the strategy times its stages.
    levels : list of (str, numpy.ndarray)
        kec+cae's optional noun and caption levels, OT-aligned to ``X`` (empty unless
        the strategy is declared with ``"levels": True``).
    info : dict
        Diagnostics; the strategy adds its own.
    grounder : SoftmaxGrounder or OTGrounder or None
        Grounds new items as ``grounding`` grounded ``X`` (for ``predict``).
    level_map : TransportedTexts or None
        Aligns new items to the optional levels' texts (for ``predict``).
    """

    X: np.ndarray
    n_clusters: int
    knowledge: KnowledgeFeatures
    grounding: Grounding
    params: Any
    stages: Stages
    levels: list[tuple[str, np.ndarray]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    grounder: Any = None
    level_map: TransportedTexts | None = None


@dataclass
class FusionOutput:
    """``labels`` (``(N,)`` int64), the clustered ``features``, ``clusterer`` (what
    clustered them, for ``MethodResult.params["clusterer"]``) and ``feature_map`` (new
    items to the clustered space, for ``predict``)."""

    labels: np.ndarray
    features: np.ndarray
    clusterer: dict[str, Any]
    feature_map: FeatureMap | None = None


def _guarded(fi: FusionInput, attribute: np.ndarray | None) -> FusionOutput:
    p = fi.params
    labels, feats, dec = guarded_cluster(
        fi.X, fi.grounding.concept, attribute, fi.n_clusters, beta=p.beta,
        corroboration_threshold=p.corroboration_threshold,
        agreement_threshold=p.agreement_threshold, agreement_margin=p.agreement_margin,
        objective_tolerance=p.objective_tolerance, anchor_weight=p.anchor_weight,
        spread_ratio=p.spread_ratio, spread_margin=p.spread_margin,
        random_state=p.random_state,
        n_init=(p.clusterer_params or {}).get("n_init", "auto"), device=p.device)
    fi.info["guard"] = dec.info
    fmap: FeatureMap = Identity()
    if dec.mode == "nuisance":  # the same basis decide() projected out
        Xn = l2_normalize_rows(np.array(fi.X, dtype=np.float32))
        basis = nuisance_basis(Xn, dec.data_labels, fi.n_clusters,
                               nuisance_max_rank(Xn.shape[1]))
        fmap = NuisanceMap(basis, p.beta, fi.grounder)
    return FusionOutput(labels, feats, {"name": "guarded", "mode": dec.mode,
                                        "random_state": p.random_state}, fmap)


def _final(fi: FusionInput, features: np.ndarray, fmap: FeatureMap) -> FusionOutput:
    p = fi.params
    with fi.stages("cluster"):
        labels, cinfo = cluster_features(features, fi.n_clusters, p.clusterer,
                                         p.random_state, p.clusterer_params, p.device)
    return FusionOutput(labels, features, cinfo, fmap)


def kec_guarded(fi: FusionInput) -> FusionOutput:
    r"""KEC, guarded (default): :func:`~kec.cluster.guard.guarded_cluster` on :math:`x`,
    the concept view and the attribute view
    :math:`a_i = \sum_l \mathrm{softmax}_l(x_i\cdot\xi_l/T)\,\xi_l`."""
    p, kf = fi.params, fi.knowledge
    with fi.stages("guard"):
        attr_view = (softmax_attribute_view(fi.X, kf.attr_emb, p.temperature, p.device)
                     if kf.attr_emb.shape[0] else None)
        return _guarded(fi, attr_view)


def kec_concat_fusion(fi: FusionInput) -> FusionOutput:
    r"""KEC as published: the final clusterer on :math:`[x ; \kappa]` (each part
    L2-normalised with ``normalize_parts``)."""
    with fi.stages("cluster"):
        feats = kec_concat(fi.X, fi.grounding.kappa, normalize=fi.params.normalize_parts)
    return _final(fi, feats, KecConcatMap(fi.grounder, fi.params.normalize_parts))


def kec_cae_guarded(fi: FusionInput) -> FusionOutput:
    """kec+cae, guarded (default): :func:`~kec.cluster.guard.guarded_cluster` on
    :math:`x` and the OT concept and attribute views (no optional levels)."""
    with fi.stages("guard"):
        return _guarded(fi, fi.grounding.attribute)


def kec_cae_adaptive(fi: FusionInput) -> FusionOutput:
    """kec+cae with CAE's adaptive weights over :math:`x, c, a` and the optional levels
    (``fusion_mode`` ``"sum"`` or ``"concat"``)."""
    g, p = fi.grounding, fi.params
    with fi.stages("fusion"):
        mods = [fi.X, g.concept, g.attribute] + [f for _, f in fi.levels]
        fused, w = adaptive_fusion(mods, p.gamma, p.fusion_mode, device=p.device)
        names = ["image", "concepts", "attributes"] + [n for n, _ in fi.levels]
        fi.info["mean_fusion_weights"] = mean_weights(names, w)
    return _final(fi, fused, KecCaeMap(fi.grounder, fi.level_map, "adaptive", p.gamma,
                                       p.fusion_mode))


def kec_cae_concat(fi: FusionInput) -> FusionOutput:
    r"""kec+cae with KEC's concatenation :math:`[x ; c + a ; \dots]` (levels appended)."""
    with fi.stages("fusion"):
        fused = concat([kec_concat(fi.X, fi.grounding.kappa)] + [f for _, f in fi.levels])
    return _final(fi, fused, KecCaeMap(fi.grounder, fi.level_map, "kec"))


__all__ = ["FusionInput", "FusionOutput", "kec_cae_adaptive", "kec_cae_concat",
           "kec_cae_guarded", "kec_concat_fusion", "kec_guarded"]
