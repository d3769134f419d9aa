r"""Clustering methods by name: ``kmeans``, ``tac``, ``kec``, ``cae``, ``kec+cae``.

One function per method, each returning a :class:`MethodResult` (labels, per-stage
timings, parameters and, for knowledge methods, cluster names and explanations), and
:func:`run_method` to pick one by name.

===========  =================================================================  ==========
method       features clustered                                                 needs
===========  =================================================================  ==========
kmeans       :math:`x_i`                                                        images
tac          :math:`[x_i ; \hat t_i]`, TAC's text counterpart (§1)              nouns
kec          :math:`[x_i ; \kappa_i]`, softmax-grounded knowledge (§2)          knowledge
cae          adaptive fusion of :math:`x_i, x^u_i, x^v_i`, OT-aligned (§3)      nouns
kec+cae      adaptive fusion of :math:`x_i, c_i, a_i`, OT-grounded knowledge    knowledge
===========  =================================================================  ==========

A cluster's **name** is the concept with the highest mean grounding weight over its
members (:math:`\omega` or the row-normalised concept plan); its **explanation** is the
attributes with the highest mean weight, pair attributes that separate its top concept
from the top concept of its nearest cluster first (docs/methods.md §4, last paragraph).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from kec.cluster._checks import ClusteringInputError, as_features, check_n_clusters, same_dim
from kec.cluster.clusterers import CLUSTERERS, create_clusterer
from kec.cluster.distributed import current_rows
from kec.cluster.fusion import DEFAULT_GAMMA, FUSION_MODES, adaptive_fusion, concat, kec_concat
from kec.cluster.grounding import (
    DEFAULT_TEMPERATURE,
    Grounding,
    ground_ot,
    ground_softmax,
    mean_weights_per_cluster,
    softmax_attribute_view,
)
from kec.cluster.guard import (
    DEFAULT_AGREEMENT,
    DEFAULT_AGREEMENT_MARGIN,
    DEFAULT_ANCHOR_WEIGHT,
    DEFAULT_BETA,
    DEFAULT_CORROBORATION,
    DEFAULT_OBJECTIVE_TOLERANCE,
    DEFAULT_SPREAD_MARGIN,
    DEFAULT_SPREAD_RATIO,
    guarded_cluster,
)
from kec.cluster.knowledge_features import KnowledgeFeatures
from kec.cluster.ot import DEFAULT_REG, OTResult, solve_and_transport
from kec.cluster.scaffold import (
    SELECTION_TEMPERATURE,
    TAC_TAU,
    n_overclusters,
    overcluster,
    select_nouns,
    select_top_texts,
    text_counterpart,
)

METHOD_NAMES = ("kmeans", "tac", "kec", "cae", "kec+cae")


@dataclass
class MethodResult:
    """What a clustering method returns.

    Attributes
    ----------
    method : str
        The method name.
    labels : numpy.ndarray
        ``(N,)`` int64 cluster of every image, in ``0..K-1``.
    timings : dict
        Seconds per stage, in execution order.
    params : dict
        Every parameter that shaped the result (JSON-serialisable).
    clusters : list of dict or None
        Knowledge methods: per cluster ``{"cluster", "size", "name", "concepts",
        "attributes", "nearest"}``.
    info : dict
        Diagnostics (selected texts, OT convergence, fusion weights...).
    features : numpy.ndarray or None
        The matrix that was clustered (only with ``keep_features=True``).
    """

    method: str
    labels: np.ndarray
    timings: dict[str, float]
    params: dict[str, Any]
    clusters: list[dict[str, Any]] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    features: np.ndarray | None = None


class _Stages:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0)
                                       + time.perf_counter() - t0, 4)


def _jsonable(d: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (d or {}).items():
        if isinstance(v, (bool, int, float, str)) or v is None:
            out[k] = v
        elif isinstance(v, (np.integer, np.floating)):
            out[k] = v.item()
    return out


def _cluster(
    features: np.ndarray, n_clusters: int, clusterer: str, random_state: int | None,
    clusterer_params: dict[str, Any] | None, device: str | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    if clusterer not in CLUSTERERS:
        raise ClusteringInputError(f"unknown clusterer {clusterer!r}; choose from {CLUSTERERS}")
    est = create_clusterer(clusterer, n_clusters, random_state, device=device,
                           **(clusterer_params or {}))
    labels = np.asarray(est.fit_predict(features), dtype=np.int64)
    info: dict[str, Any] = {"name": clusterer, "implementation":
                            f"{type(est).__module__}.{type(est).__name__}",
                            "random_state": random_state, **_jsonable(clusterer_params)}
    for attr in ("n_init_", "n_iter_", "objective_", "device_"):
        if hasattr(est, attr):
            info[attr.rstrip("_")] = getattr(est, attr)
    if clusterer != "kmeans":
        info["sklearn_params"] = _jsonable(getattr(est, "params", {}))
    return labels, info


def _images(X: Any, n_clusters: int) -> tuple[np.ndarray, int]:
    X = as_features(X, "image features")
    n = current_rows().total(X.shape[0])  # every rank's rows (kec.cluster.distributed)
    return X, check_n_clusters(n_clusters, n, "number of clusters (k)")


def _texts(T: Any, X: np.ndarray, name: str) -> np.ndarray:
    T = as_features(T, name)
    same_dim(X, T, "image features", name)
    return T


def _overcluster_and_select(
    X: np.ndarray, texts: list[tuple[str, np.ndarray]], stages: _Stages, *,
    n_over: int | None, rule: str | int, n_classes: int | None, top_k: int,
    selector: str, selection_temperature: float, random_state: int | None,
    overcluster_params: dict[str, Any] | None, device: str | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    n = current_rows().total(X.shape[0])
    L = (check_n_clusters(n_over, n, "n_overclusters") if n_over is not None
         else n_overclusters(n, rule, n_classes=n_classes))
    with stages("overcluster"):
        params = dict(overcluster_params or {})
        if device is not None:
            params.setdefault("device", device)
        _, centres = overcluster(X, L, random_state=random_state, **params)
    selected: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {"n_overclusters": L}
    with stages("select"):
        for name, T in texts:
            sel = (select_nouns(centres, T, top_k, temperature=selection_temperature)
                   if selector == "tac" else select_top_texts(centres, T, top_k))
            selected[name] = sel.indices
            info[f"n_selected_{name}"] = int(sel.indices.size)
    return selected, info


def _ot_kwargs(ot_params: dict[str, Any] | None, device: str | None) -> dict[str, Any]:
    out = dict(ot_params or {})
    if device is not None:
        out.setdefault("device", device)
    return out


def _mean_weights(names: list[str], w: np.ndarray) -> dict[str, float]:
    return {n: round(float(v), 4) for n, v in zip(names, w.mean(axis=0))}


def _ot_info(res: OTResult) -> dict[str, Any]:
    return {"method": res.method, "n_iter": res.n_iter, "converged": res.converged,
            "marginal_error": res.marginal_error, "seconds": round(res.seconds, 3),
            **{k: v for k, v in res.info.items() if isinstance(v, (int, float, str, bool))}}


# --------------------------------------------------------------------------- methods
def run_kmeans(
    X: np.ndarray,
    n_clusters: int,
    *,
    clusterer: str = "kmeans",
    random_state: int | None = 0,
    clusterer_params: dict[str, Any] | None = None,
    keep_features: bool = False,
    device: str | None = None,
) -> MethodResult:
    """Baseline: cluster the image features alone.

    ``device`` (every method): ``"auto"``, ``"cpu"``, ``"cuda"`` or ``None`` (numpy): where
    the OT solvers and k-means run; inputs and outputs stay numpy."""
    X, k = _images(X, n_clusters)
    stages = _Stages()
    with stages("cluster"):
        labels, cinfo = _cluster(X, k, clusterer, random_state, clusterer_params, device)
    return MethodResult("kmeans", labels, stages.timings,
                        {"n_clusters": k, "device": device, "clusterer": cinfo},
                        features=X if keep_features else None)


def run_tac(
    X: np.ndarray,
    nouns: np.ndarray,
    n_clusters: int,
    *,
    n_overclusters: int | None = None,
    rule: str | int = "auto",
    n_classes: int | None = None,
    top_k: int = 5,
    tau: float = TAC_TAU,
    selection_temperature: float = SELECTION_TEMPERATURE,
    clusterer: str = "kmeans",
    random_state: int | None = 0,
    overcluster_params: dict[str, Any] | None = None,
    clusterer_params: dict[str, Any] | None = None,
    keep_features: bool = False,
    device: str | None = None,
) -> MethodResult:
    r"""TAC, training-free (docs/methods.md §1): cluster :math:`[x_i ; \hat t_i]`."""
    X, k = _images(X, n_clusters)
    T = _texts(nouns, X, "noun features")
    stages = _Stages()
    selected, info = _overcluster_and_select(
        X, [("nouns", T)], stages, n_over=n_overclusters, rule=rule,
        n_classes=n_classes if n_classes is not None else k,
        top_k=top_k, selector="tac", selection_temperature=selection_temperature,
        random_state=random_state, overcluster_params=overcluster_params,
        device=device)
    with stages("counterpart"):
        t_hat = text_counterpart(X, T[selected["nouns"]], tau)
        feats = concat([X, t_hat])
    with stages("cluster"):
        labels, cinfo = _cluster(feats, k, clusterer, random_state, clusterer_params, device)
    params = {"n_clusters": k, "device": device, "n_overclusters": info["n_overclusters"],
              "rule": None if n_overclusters is not None else rule, "top_k": top_k,
              "tau": tau, "selection_temperature": selection_temperature,
              "overcluster": _jsonable(overcluster_params), "clusterer": cinfo}
    return MethodResult("tac", labels, stages.timings, params, info=info,
                        features=feats if keep_features else None)


def run_kec(
    X: np.ndarray,
    knowledge: KnowledgeFeatures,
    n_clusters: int,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    pair_attributes: bool = True,
    normalize_parts: bool = True,
    fusion: str = "guarded",
    beta: float = DEFAULT_BETA,
    corroboration_threshold: float = DEFAULT_CORROBORATION,
    agreement_threshold: float = DEFAULT_AGREEMENT,
    agreement_margin: float = DEFAULT_AGREEMENT_MARGIN,
    objective_tolerance: float = DEFAULT_OBJECTIVE_TOLERANCE,
    anchor_weight: float = DEFAULT_ANCHOR_WEIGHT,
    spread_ratio: float = DEFAULT_SPREAD_RATIO,
    spread_margin: float = DEFAULT_SPREAD_MARGIN,
    clusterer: str = "kmeans",
    random_state: int | None = 0,
    clusterer_params: dict[str, Any] | None = None,
    n_names: int = 3,
    n_attributes: int = 3,
    keep_features: bool = False,
    device: str | None = None,
) -> MethodResult:
    r"""KEC (docs/methods.md §2.4–2.5): softmax grounding, then fusion.

    ``fusion="concat"``: KEC as published, cluster :math:`[x_i ; \kappa_i]` with
    ``clusterer``. ``fusion="guarded"`` (default, docs/methods.md §4.3): measure whether
    the data corroborates the knowledge, in its dominant structure or in what is left
    once that is projected out, then cluster :math:`x` alone, refine the knowledge
    partition on :math:`x`, or refine it on :math:`[x^\perp ; \beta\hat c ;
    \beta\hat a]` (:mod:`kec.cluster.guard`); the attribute view is
    :math:`a_i = \sum_l \mathrm{softmax}_l(x_i\cdot\xi_l/T)\,\xi_l`.
    """
    X, k = _images(X, n_clusters)
    kf = _knowledge(knowledge, X, pair_attributes)
    if fusion not in ("guarded", "concat"):
        raise ClusteringInputError(f"fusion must be 'guarded' or 'concat', got {fusion!r}")
    stages = _Stages()
    info: dict[str, Any] = {}
    with stages("ground"):
        g = ground_softmax(X, kf.zeta, kf.attribute_means(), temperature, device=device)
    if fusion == "concat":
        with stages("cluster"):
            feats = kec_concat(X, g.kappa, normalize=normalize_parts)
            labels, cinfo = _cluster(feats, k, clusterer, random_state, clusterer_params, device)
    else:
        with stages("guard"):
            attr_view = (softmax_attribute_view(X, kf.attr_emb, temperature, device)
                         if kf.attr_emb.shape[0] else None)
            labels, feats, dec = guarded_cluster(
                X, g.concept, attr_view, k, beta=beta,
                corroboration_threshold=corroboration_threshold,
                agreement_threshold=agreement_threshold, agreement_margin=agreement_margin,
                objective_tolerance=objective_tolerance, anchor_weight=anchor_weight,
                spread_ratio=spread_ratio, spread_margin=spread_margin,
                random_state=random_state,
                n_init=(clusterer_params or {}).get("n_init", "auto"), device=device)
        info["guard"] = dec.info
        cinfo = {"name": "guarded", "mode": dec.mode, "random_state": random_state}
    with stages("naming"):
        clusters = name_clusters(X, labels, k, kf, g, temperature=temperature,
                                 n_names=n_names, n_attributes=n_attributes, device=device)
    params = {"n_clusters": k, "device": device,
              "temperature": temperature, "pair_attributes": pair_attributes,
              "normalize_parts": normalize_parts, "fusion": fusion,
              "n_concepts": kf.n_concepts, "n_attributes": len(kf.attr_texts),
              "clusterer": cinfo}
    if fusion == "guarded":
        params.update(beta=beta, corroboration_threshold=corroboration_threshold,
                      agreement_threshold=agreement_threshold,
                      agreement_margin=agreement_margin,
                      objective_tolerance=objective_tolerance, anchor_weight=anchor_weight,
                      spread_ratio=spread_ratio, spread_margin=spread_margin)
    return MethodResult("kec", labels, stages.timings, params, clusters, info=info,
                        features=feats if keep_features else None)


def run_cae(
    X: np.ndarray,
    nouns: np.ndarray,
    n_clusters: int,
    *,
    captions: np.ndarray | None = None,
    n_overclusters: int | None = None,
    rule: str | int = "auto",
    n_classes: int | None = None,
    top_k: int = 5,
    reg: float = DEFAULT_REG,
    ot_method: str = "auto",
    ot_params: dict[str, Any] | None = None,
    gamma: float = DEFAULT_GAMMA,
    fusion: str = "sum",
    clusterer: str = "kmeans",
    random_state: int | None = 0,
    overcluster_params: dict[str, Any] | None = None,
    clusterer_params: dict[str, Any] | None = None,
    keep_features: bool = False,
    device: str | None = None,
) -> MethodResult:
    r"""CAE (docs/methods.md §3): OT-aligned noun (and caption) features, adaptive fusion.

    Without ``captions`` the caption modality is left out (CAE's "no captions" ablation).
    ``fusion`` is ``"sum"`` (weighted sum, default) or ``"concat"``.
    """
    X, k = _images(X, n_clusters)
    texts = [("nouns", _texts(nouns, X, "noun features"))]
    if captions is not None:
        texts.append(("captions", _texts(captions, X, "caption features")))
    if fusion not in FUSION_MODES:
        raise ClusteringInputError(f"fusion must be one of {FUSION_MODES}, got {fusion!r}")
    stages = _Stages()
    selected, info = _overcluster_and_select(
        X, texts, stages, n_over=n_overclusters, rule=rule,
        n_classes=n_classes if n_classes is not None else k, top_k=top_k,
        selector="top", selection_temperature=SELECTION_TEMPERATURE,
        random_state=random_state, overcluster_params=overcluster_params,
        device=device)
    modalities = [X]
    for name, T in texts:
        with stages(f"ot_{name}"):
            feats, res = solve_and_transport(X, T[selected[name]], ot_method, reg=reg,
                                             **_ot_kwargs(ot_params, device))
        modalities.append(feats)
        info[f"ot_{name}"] = _ot_info(res)
        del feats
    with stages("fusion"):
        fused, w = adaptive_fusion(modalities, gamma, fusion, device=device)
        info["mean_fusion_weights"] = _mean_weights(["image"] + [n for n, _ in texts], w)
    del modalities
    with stages("cluster"):
        labels, cinfo = _cluster(fused, k, clusterer, random_state, clusterer_params, device)
    params = {"n_clusters": k, "device": device, "n_overclusters": info["n_overclusters"],
              "rule": None if n_overclusters is not None else rule, "top_k": top_k,
              "reg": reg, "ot_method": ot_method, "ot": _jsonable(ot_params), "gamma": gamma,
              "fusion": fusion, "captions": captions is not None,
              "overcluster": _jsonable(overcluster_params), "clusterer": cinfo}
    return MethodResult("cae", labels, stages.timings, params, info=info,
                        features=fused if keep_features else None)


def run_kec_cae(
    X: np.ndarray,
    knowledge: KnowledgeFeatures,
    n_clusters: int,
    *,
    nouns: np.ndarray | None = None,
    captions: np.ndarray | None = None,
    reg: float = DEFAULT_REG,
    ot_method: str = "auto",
    ot_params: dict[str, Any] | None = None,
    attribute_mode: str = "transport",
    pair_attributes: bool = True,
    fusion: str = "guarded",
    fusion_mode: str = "sum",
    gamma: float = DEFAULT_GAMMA,
    beta: float = DEFAULT_BETA,
    corroboration_threshold: float = DEFAULT_CORROBORATION,
    agreement_threshold: float = DEFAULT_AGREEMENT,
    agreement_margin: float = DEFAULT_AGREEMENT_MARGIN,
    objective_tolerance: float = DEFAULT_OBJECTIVE_TOLERANCE,
    anchor_weight: float = DEFAULT_ANCHOR_WEIGHT,
    spread_ratio: float = DEFAULT_SPREAD_RATIO,
    spread_margin: float = DEFAULT_SPREAD_MARGIN,
    n_overclusters: int | None = None,
    rule: str | int = "auto",
    n_classes: int | None = None,
    top_k: int = 5,
    clusterer: str = "kmeans",
    random_state: int | None = 0,
    overcluster_params: dict[str, Any] | None = None,
    clusterer_params: dict[str, Any] | None = None,
    n_names: int = 3,
    n_attributes: int = 3,
    keep_features: bool = False,
    device: str | None = None,
) -> MethodResult:
    r"""kec's combination (docs/methods.md §4): KEC's knowledge grounded by CAE's OT.

    Concept level: :math:`c_i` from an OT plan over the concepts; attribute level:
    :math:`a_i` from an OT plan over all attribute texts (``attribute_mode=
    "elementwise"``: KEC's :math:`x_i \odot \xi`). Optional levels: raw ``nouns``
    (over-cluster + top-k selection as in CAE) and ``captions`` (given, or the
    knowledge's own captions), each by OT. ``fusion="guarded"`` (default,
    docs/methods.md §4.3): :func:`kec.cluster.guard.guarded_cluster` decides from the
    data whether to cluster :math:`x` alone, refine the knowledge partition on :math:`x`,
    or project the data's dominant (nuisance) structure out and refine it on
    :math:`[x^\perp ; \beta\hat c ; \beta\hat a]` (optional levels are then not used);
    ``fusion="adaptive"``: CAE's weights over :math:`[x, c, a, \dots]` with
    ``fusion_mode`` ``"sum"`` or ``"concat"``; ``fusion="kec"``: :math:`[x ; c + a ; \dots]`.
    """
    X, k = _images(X, n_clusters)
    kf = _knowledge(knowledge, X, pair_attributes)
    if fusion not in ("guarded", "adaptive", "kec"):
        raise ClusteringInputError(
            f"fusion must be 'guarded', 'adaptive' or 'kec', got {fusion!r}")
    if fusion_mode not in FUSION_MODES:
        raise ClusteringInputError(f"fusion_mode must be one of {FUSION_MODES}")
    if kf.attr_emb.shape[0] == 0:
        raise ClusteringInputError("kec+cae needs attributes in the knowledge (none found)")
    stages = _Stages()
    info: dict[str, Any] = {}
    with stages("ground"):
        g = ground_ot(X, kf.zeta, kf.attr_emb, reg=reg, ot_method=ot_method,
                      attribute_mode=attribute_mode, ot_params=_ot_kwargs(ot_params, device),
                      device=device)
    info.update(g.info)
    levels: list[tuple[str, np.ndarray]] = []
    caption_source = None
    if captions is not None:
        caption_source = "given"
    elif kf.caption_emb is not None and kf.caption_emb.shape[0] > 0:
        captions, caption_source = kf.caption_emb, "knowledge"
    texts = []
    if nouns is not None:
        texts.append(("nouns", _texts(nouns, X, "noun features")))
    if captions is not None:
        texts.append(("captions", _texts(captions, X, "caption features")))
    if texts and fusion == "guarded":
        info["ignored_levels"] = [name for name, _ in texts]  # guarded fusion: x, c, a only
        texts = []
    if texts:
        selected, sinfo = _overcluster_and_select(
            X, texts, stages, n_over=n_overclusters, rule=rule,
            n_classes=n_classes if n_classes is not None else k,
            top_k=top_k, selector="top", selection_temperature=SELECTION_TEMPERATURE,
            random_state=random_state, overcluster_params=overcluster_params,
        device=device)
        info.update(sinfo)
        for name, T in texts:
            with stages(f"ot_{name}"):
                feats, res = solve_and_transport(X, T[selected[name]], ot_method, reg=reg,
                                                 **_ot_kwargs(ot_params, device))
            levels.append((name, feats))
            info[f"ot_{name}"] = _ot_info(res)
    if fusion == "guarded":
        with stages("guard"):
            labels, fused, dec = guarded_cluster(
                X, g.concept, g.attribute, k, beta=beta,
                corroboration_threshold=corroboration_threshold,
                agreement_threshold=agreement_threshold, agreement_margin=agreement_margin,
                objective_tolerance=objective_tolerance, anchor_weight=anchor_weight,
                spread_ratio=spread_ratio, spread_margin=spread_margin,
                random_state=random_state,
                n_init=(clusterer_params or {}).get("n_init", "auto"), device=device)
        info["guard"] = dec.info
        cinfo = {"name": "guarded", "mode": dec.mode, "random_state": random_state}
    with stages("fusion"):
        if fusion == "guarded":
            pass
        elif fusion == "adaptive":
            mods = [X, g.concept, g.attribute] + [f for _, f in levels]
            fused, w = adaptive_fusion(mods, gamma, fusion_mode, device=device)
            names = ["image", "concepts", "attributes"] + [n for n, _ in levels]
            info["mean_fusion_weights"] = _mean_weights(names, w)
        else:
            fused = concat([kec_concat(X, g.kappa)] + [f for _, f in levels])
    del levels
    if fusion != "guarded":
        with stages("cluster"):
            labels, cinfo = _cluster(fused, k, clusterer, random_state, clusterer_params, device)
    with stages("naming"):
        clusters = name_clusters(X, labels, k, kf, g, n_names=n_names,
                                 n_attributes=n_attributes, device=device)
    params = {"n_clusters": k, "device": device, "reg": reg,
              "ot_method": ot_method, "ot": _jsonable(ot_params),
              "attribute_mode": attribute_mode, "pair_attributes": pair_attributes,
              "fusion": fusion, "fusion_mode": fusion_mode, "gamma": gamma,
              "beta": beta, "corroboration_threshold": corroboration_threshold,
              "agreement_threshold": agreement_threshold,
              "agreement_margin": agreement_margin,
              "objective_tolerance": objective_tolerance, "anchor_weight": anchor_weight,
              "spread_ratio": spread_ratio, "spread_margin": spread_margin,
              "nouns": nouns is not None,
              "captions": caption_source, "top_k": top_k,
              "n_concepts": kf.n_concepts, "n_attributes": len(kf.attr_texts),
              "clusterer": cinfo}
    return MethodResult("kec+cae", labels, stages.timings, params, clusters, info=info,
                        features=fused if keep_features else None)


def _knowledge(kf: Any, X: np.ndarray, pair_attributes: bool) -> KnowledgeFeatures:
    if not isinstance(kf, KnowledgeFeatures):
        raise ClusteringInputError(
            "knowledge must be KnowledgeFeatures (see kec.cluster.knowledge_features)"
        )
    if kf.dim != X.shape[1]:
        raise ClusteringInputError(
            f"dimension mismatch: image features are {X.shape[1]}-d but the knowledge was "
            f"embedded in {kf.dim}-d (use the image encoder's text tower)"
        )
    return kf if pair_attributes else kf.without_pair_attributes()


# --------------------------------------------------------------------------- naming
def name_clusters(
    X: np.ndarray,
    labels: np.ndarray,
    n_clusters: int,
    knowledge: KnowledgeFeatures,
    grounding: Grounding,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    n_names: int = 3,
    n_attributes: int = 3,
    device: str | None = None,
) -> list[dict[str, Any]]:
    """Name and explain every cluster from its members' grounding weights.

    Concept scores are the mean of ``grounding.concept_weights`` over the members.
    Attribute weights per image are the row-normalised attribute plan (OT grounding) or
    :math:`\\mathrm{softmax}_l(x_i \\cdot \\xi_l / T)` (softmax grounding, kec's choice:
    KEC defines no per-attribute weight). The explanation lists, best first: the
    attributes of the pair (top concept, top concept of the nearest cluster), then the
    top concept's own attributes, then any others, by the cluster's mean weight.

    Returns
    -------
    list of dict
        ``{"cluster", "size", "name", "concepts": [{"id", "name", "score"}],
        "attributes": [{"text", "score", "kind", "versus"?}], "nearest"}`` per cluster.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.size
    k = n_clusters
    rows = current_rows()  # sums over every rank's rows (kec.cluster.distributed)
    counts = rows.sum(np.bincount(labels, minlength=k))
    onehot = sparse.csr_matrix((np.ones(n), (labels, np.arange(n))), shape=(k, n))
    denom = np.maximum(counts, 1)[:, None]
    concept_scores = rows.sum(
        np.asarray(onehot @ grounding.concept_weights.astype(np.float64))) / denom
    if knowledge.attr_emb.shape[0]:
        if grounding.attribute_ot is not None:
            attr_scores = mean_weights_per_cluster(X, knowledge.attr_emb, labels, k,
                                                   ot=grounding.attribute_ot, device=device)
        else:
            attr_scores = mean_weights_per_cluster(X, knowledge.attr_emb, labels, k,
                                                   temperature=temperature, device=device)
    else:
        attr_scores = np.zeros((k, 0))
    centroids = rows.sum(np.asarray(onehot @ X.astype(np.float64)))
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    sim = centroids @ centroids.T
    sim[:, counts == 0] = -np.inf
    np.fill_diagonal(sim, -np.inf)
    top_concept = concept_scores.argmax(axis=1)
    out = []
    for c in range(k):
        order = np.argsort(-concept_scores[c], kind="stable")[:n_names]
        nearest = int(sim[c].argmax()) if k > 1 and np.isfinite(sim[c]).any() else None
        entry: dict[str, Any] = {
            "cluster": c, "size": int(counts[c]),
            "name": knowledge.names[int(order[0])] if counts[c] else None,
            "concepts": [{"id": knowledge.concept_ids[int(q)], "name": knowledge.names[int(q)],
                          "score": round(float(concept_scores[c, q]), 6)} for q in order],
            "nearest": nearest,
        }
        chosen: list[dict[str, Any]] = []
        if attr_scores.shape[1] and counts[c]:
            s = attr_scores[c]
            q = int(top_concept[c])
            if nearest is not None and int(top_concept[nearest]) != q:
                qn = int(top_concept[nearest])
                _take(chosen, knowledge, s, knowledge.pair_attributes(q, qn), n_attributes,
                      "pair", knowledge.names[qn])
            _take(chosen, knowledge, s, [int(i) for i in knowledge.concept_attrs[q]],
                  n_attributes)
            _take(chosen, knowledge, s, list(range(s.size)), n_attributes)
        entry["attributes"] = [{k: v for k, v in a.items() if k != "index"} for a in chosen]
        out.append(entry)
    return out


def _take(
    chosen: list[dict[str, Any]], knowledge: KnowledgeFeatures, scores: np.ndarray,
    candidates: list[int], limit: int, kind: str | None = None, versus: str | None = None,
) -> None:
    """Append the best-scoring new attributes among ``candidates`` until ``limit``."""
    used = {item["index"] for item in chosen}
    for i in sorted(set(candidates), key=lambda i: (-scores[i], i)):
        if len(chosen) >= limit:
            break
        if i in used:
            continue
        used.add(i)
        item: dict[str, Any] = {"index": i, "text": knowledge.attr_texts[i],
                                "score": round(float(scores[i]), 6),
                                "kind": kind or knowledge.attr_kind[i]}
        if versus is not None:
            item["versus"] = versus
        chosen.append(item)


# --------------------------------------------------------------------------- dispatch
def run_method(
    name: str,
    X: np.ndarray,
    n_clusters: int,
    *,
    nouns: np.ndarray | None = None,
    captions: np.ndarray | None = None,
    knowledge: KnowledgeFeatures | None = None,
    **params: Any,
) -> MethodResult:
    """Run the method called ``name`` (see :data:`METHOD_NAMES`).

    ``tac`` and ``cae`` need ``nouns``; ``kec`` and ``kec+cae`` need ``knowledge``
    (``nouns``/``captions`` add optional levels to ``kec+cae``). Other keyword
    arguments go to the method's function.
    """
    if name not in METHOD_NAMES:
        raise ClusteringInputError(f"unknown method {name!r}; choose from {METHOD_NAMES}")
    if name in ("tac", "cae") and nouns is None:
        raise ClusteringInputError(f"method {name!r} needs noun features (--nouns)")
    if name in ("kec", "kec+cae") and knowledge is None:
        raise ClusteringInputError(
            f"method {name!r} needs a knowledge file (--knowledge), made by 'kec knowledge build'"
        )
    if name == "kmeans":
        return run_kmeans(X, n_clusters, **params)
    if name == "tac":
        return run_tac(X, nouns, n_clusters, **params)
    if name == "cae":
        return run_cae(X, nouns, n_clusters, captions=captions, **params)
    if name == "kec":
        return run_kec(X, knowledge, n_clusters, **params)
    return run_kec_cae(X, knowledge, n_clusters, nouns=nouns, captions=captions, **params)
