r"""Clustering methods by name: ``kmeans``, ``tac``, ``kec``, ``cae``, ``kec+cae``.

One function per method, each returning a :class:`MethodResult` (labels, per-stage
timings, parameters and, for knowledge methods, cluster names and explanations), and
:func:`run_method` to pick one by name.

===========  =================================================================  ==========
method       features clustered (default fusion)                                needs
===========  =================================================================  ==========
kmeans       :math:`x_i`                                                        images
tac          :math:`[x_i ; \hat t_i]`, TAC's text counterpart (§1)              nouns
kec          softmax-grounded knowledge (§2), guarded fusion with :math:`x_i`   knowledge
             (§4.3); ``fusion="concat"``: :math:`[x_i ; \kappa_i]` as published
cae          adaptive fusion of :math:`x_i, x^u_i, x^v_i`, OT-aligned (§3)      nouns
kec+cae      OT-grounded knowledge (§4), guarded fusion with :math:`x_i`;       knowledge
             ``fusion="adaptive"``: CAE's fusion of :math:`x_i, c_i, a_i`
===========  =================================================================  ==========

Guarded fusion (:mod:`kec.cluster.guard`) clusters :math:`x_i` alone, the knowledge
partition refined on :math:`x_i`, or :math:`[x^\perp_i ; \beta\hat c_i ; \beta\hat a_i]`,
as the data decides; ``MethodResult.info["guard"]`` records the decision (docs/api.md).

A cluster's **name** is the concept with the highest mean grounding weight over its
members (:math:`\omega` or the row-normalised concept plan); its **explanation** is the
attributes with the highest mean weight, pair attributes that separate its top concept
from the top concept of its nearest cluster first (docs/methods.md §4, last paragraph).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from kec.cluster._checks import ClusteringInputError, as_features
from kec.cluster.distributed import current_rows
from kec.cluster.feature_maps import (
    CaeMap,
    Identity,
    OTGrounder,
    SoftmaxGrounder,
    TacMap,
    TransportedTexts,
    cluster_centres,
    nearest_centre,
)
from kec.cluster.fusion import adaptive_fusion, concat
from kec.cluster.grounding import (
    DEFAULT_TEMPERATURE,
    Grounding,
    ground_ot,
    ground_softmax,
    mean_weights_per_cluster,
)
from kec.cluster.knowledge_features import KnowledgeFeatures
from kec.cluster.ot import solve_and_transport
from kec.cluster.params import Params, declared, method_params
from kec.cluster.registry import INPUTS, method_names, method_spec, resolve, resolve_fusion
from kec.cluster.scaffold import SELECTION_TEMPERATURE, text_counterpart
from kec.cluster.steps import Stages as _Stages
from kec.cluster.steps import (
    check_images,
    check_texts,
    cluster_features,
    jsonable,
    mean_weights,
    ot_info,
    ot_kwargs,
    overcluster_and_select,
)
from kec.cluster.strategies import FusionInput

METHOD_NAMES = method_names()


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
        Diagnostics (selected texts, OT convergence, fusion weights, guarded fusion's
        decision); every key, by method and fusion, is listed in docs/api.md.
    features : numpy.ndarray or None
        The matrix that was clustered (only with ``keep_features=True``).
    feature_map : FeatureMap or None
        Maps new items into the clustered space (:mod:`kec.cluster.feature_maps`),
        for :meth:`predict`.
    centres : numpy.ndarray or None
        ``(K, D)`` float32 unit centres of the clusters in that space (zero for an
        empty cluster), for :meth:`predict`.
    """

    method: str
    labels: np.ndarray
    timings: dict[str, float]
    params: dict[str, Any]
    clusters: list[dict[str, Any]] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    features: np.ndarray | None = None
    feature_map: Any = None
    centres: np.ndarray | None = None

    def predict(self, X: Any) -> np.ndarray:
        """The nearest fitted centre of every new item, in the space that was clustered
        (:mod:`kec.cluster.feature_maps`; knowledge grounded for the new items)."""
        if self.feature_map is None or self.centres is None:
            raise ClusteringInputError(f"this {self.method} result cannot predict")
        X = as_features(X, "new items")
        return nearest_centre(self.feature_map(X), self.centres)


def _done(result: MethodResult, features: np.ndarray, fmap: Any) -> MethodResult:
    """``result`` with what ``predict`` needs: the feature map and the fitted centres."""
    result.feature_map = fmap
    result.centres = cluster_centres(features, result.labels,
                                     int(result.params["n_clusters"]))
    return result




def _transported_levels(
    X: np.ndarray, texts: list[tuple[str, np.ndarray]], stages: _Stages, p: Params, k: int,
) -> tuple[list[tuple[str, np.ndarray]], dict[str, Any]]:
    """CAE's text levels (docs/methods.md §3.1–3.2): over-cluster ``X``, keep each text
    set's top-k texts per centre, and align each set to ``X`` by OT."""
    selected, info = overcluster_and_select(
        X, texts, stages, n_over=p.n_overclusters, rule=p.rule,
        n_classes=p.n_classes if p.n_classes is not None else k, top_k=p.top_k,
        selector="top", selection_temperature=SELECTION_TEMPERATURE,
        random_state=p.random_state, overcluster_params=p.overcluster_params,
        device=p.device)
    levels = []
    for name, T in texts:
        with stages(f"ot_{name}"):
            feats, res = solve_and_transport(X, T[selected[name]], p.ot_method, reg=p.reg,
                                             **ot_kwargs(p.ot_params, p.device))
        levels.append((name, feats))
        info[f"ot_{name}"] = ot_info(res)
    info["_level_map"] = TransportedTexts([T[selected[n]] for n, T in texts], p.reg,
                                          p.ot_method, dict(p.ot_params or {}))
    return levels, info


# --------------------------------------------------------------------------- methods
@declared("kmeans")
def run_kmeans(X: np.ndarray, n_clusters: int, **params: Any) -> MethodResult:
    """Baseline: cluster the image features alone (docs/methods.md §6).

    ``device`` (every method): ``"auto"``, ``"cpu"``, ``"cuda"`` or ``None`` (numpy): where
    the OT solvers and k-means run; inputs and outputs stay numpy.

    Parameters
    ----------
    X : array-like of shape (N, d)
        Image (or text-item) features.
    n_clusters : int
        Number of clusters ``K`` (1 <= K <= N).

    Returns
    -------
    MethodResult
        ``labels``, ``timings``, ``params`` and ``info`` (docs/api.md).
    """
    p = method_params("kmeans", params)
    X, k = check_images(X, n_clusters)
    stages = _Stages()
    with stages("cluster"):
        labels, cinfo = cluster_features(X, k, p.clusterer, p.random_state,
                                         p.clusterer_params, p.device)
    return _done(MethodResult("kmeans", labels, stages.timings,
                              {"n_clusters": k, "device": p.device, "clusterer": cinfo},
                              features=X if p.keep_features else None), X, Identity())


@declared("tac")
def run_tac(X: np.ndarray, nouns: np.ndarray, n_clusters: int, **params: Any
            ) -> MethodResult:
    r"""TAC, training-free (docs/methods.md §1): cluster :math:`[x_i ; \hat t_i]`.

    Parameters
    ----------
    X : array-like of shape (N, d)
        Image (or text-item) features.
    nouns : array-like of shape (M, d)
        Noun features in the space of ``X``.
    n_clusters : int
        Number of clusters ``K`` (1 <= K <= N).

    Returns
    -------
    MethodResult
        ``labels``, ``timings``, ``params`` and ``info`` (docs/api.md).
    """
    p = method_params("tac", params)
    X, k = check_images(X, n_clusters)
    T = check_texts(nouns, X, "noun features")
    stages = _Stages()
    selected, info = overcluster_and_select(
        X, [("nouns", T)], stages, n_over=p.n_overclusters, rule=p.rule,
        n_classes=p.n_classes if p.n_classes is not None else k,
        top_k=p.top_k, selector="tac", selection_temperature=p.selection_temperature,
        random_state=p.random_state, overcluster_params=p.overcluster_params,
        device=p.device)
    with stages("counterpart"):
        t_hat = text_counterpart(X, T[selected["nouns"]], p.tau)
        feats = concat([X, t_hat])
    with stages("cluster"):
        labels, cinfo = cluster_features(feats, k, p.clusterer, p.random_state,
                                         p.clusterer_params, p.device)
    out = {"n_clusters": k, "device": p.device, "n_overclusters": info["n_overclusters"],
           "rule": None if p.n_overclusters is not None else p.rule, "top_k": p.top_k,
           "tau": p.tau, "selection_temperature": p.selection_temperature,
           "overcluster": jsonable(p.overcluster_params), "clusterer": cinfo}
    return _done(MethodResult("tac", labels, stages.timings, out, info=info,
                              features=feats if p.keep_features else None), feats,
                 TacMap(T[selected["nouns"]], p.tau))


@declared("kec")
def run_kec(X: np.ndarray, knowledge: KnowledgeFeatures, n_clusters: int, **params: Any
            ) -> MethodResult:
    r"""KEC (docs/methods.md §2.4–2.5): softmax grounding, then the ``fusion`` strategy
    (:mod:`kec.cluster.strategies`).

    ``fusion="concat"``: KEC as published, cluster :math:`[x_i ; \kappa_i]` with
    ``clusterer``. ``fusion="guarded"`` (default, docs/methods.md §4.3): measure whether
    the data corroborates the knowledge, in its dominant structure or in what is left
    once that is projected out, then cluster :math:`x` alone, refine the knowledge
    partition on :math:`x`, or refine it on :math:`[x^\perp ; \beta\hat c ;
    \beta\hat a]` (:mod:`kec.cluster.guard`); the attribute view is
    :math:`a_i = \sum_l \mathrm{softmax}_l(x_i\cdot\xi_l/T)\,\xi_l`.

    Parameters
    ----------
    X : array-like of shape (N, d)
        Image (or text-item) features.
    knowledge : KnowledgeFeatures
        Knowledge embedded in the space of ``X`` (:func:`kec.cluster.knowledge_features`).
    n_clusters : int
        Number of clusters ``K`` (1 <= K <= N).

    Returns
    -------
    MethodResult
        ``labels``, ``timings``, ``params``, ``clusters`` (names and explanations)
        and ``info`` (docs/api.md).
    """
    p = method_params("kec", params)
    X, k = check_images(X, n_clusters)
    kf = _knowledge(knowledge, X, p.pair_attributes)
    stages = _Stages()
    with stages("ground"):
        g = ground_softmax(X, kf.zeta, kf.attribute_means(), p.temperature, device=p.device)
    fi = FusionInput(X, k, kf, g, p, stages, grounder=SoftmaxGrounder(
        kf.zeta, kf.attribute_means(), kf.attr_emb, p.temperature))
    out = resolve_fusion("kec", p.fusion)(fi)
    with stages("naming"):
        clusters = name_clusters(X, out.labels, k, kf, g, temperature=p.temperature,
                                 n_names=p.n_names, n_attributes=p.n_attributes,
                                 device=p.device)
    used = {"n_clusters": k, "device": p.device,
            "temperature": p.temperature, "pair_attributes": p.pair_attributes,
            "normalize_parts": p.normalize_parts, "fusion": p.fusion,
            "n_concepts": kf.n_concepts, "n_attributes": len(kf.attr_texts),
            "clusterer": out.clusterer}
    if p.fusion == "guarded":
        used.update({name: p[name] for name in _GUARD_PARAMS})
    return _done(MethodResult("kec", out.labels, stages.timings, used, clusters,
                              info=fi.info,
                              features=out.features if p.keep_features else None),
                 out.features, out.feature_map)


_GUARD_PARAMS = ("beta", "corroboration_threshold", "agreement_threshold",
                 "agreement_margin", "objective_tolerance", "anchor_weight", "spread_ratio",
                 "spread_margin")


@declared("cae")
def run_cae(X: np.ndarray, nouns: np.ndarray, n_clusters: int, *,
            captions: np.ndarray | None = None, **params: Any) -> MethodResult:
    r"""CAE (docs/methods.md §3): OT-aligned noun (and caption) features, adaptive fusion.

    Without ``captions`` the caption modality is left out (CAE's "no captions" ablation).
    ``fusion`` is ``"sum"`` (weighted sum, default) or ``"concat"``.

    Parameters
    ----------
    X : array-like of shape (N, d)
        Image (or text-item) features.
    nouns : array-like of shape (M, d)
        Noun features in the space of ``X``.
    n_clusters : int
        Number of clusters ``K`` (1 <= K <= N).
    captions : array-like of shape (M', d), optional
        Caption features in the space of ``X``.

    Returns
    -------
    MethodResult
        ``labels``, ``timings``, ``params`` and ``info`` (docs/api.md).
    """
    p = method_params("cae", params)
    X, k = check_images(X, n_clusters)
    texts = [("nouns", check_texts(nouns, X, "noun features"))]
    if captions is not None:
        texts.append(("captions", check_texts(captions, X, "caption features")))
    stages = _Stages()
    levels, info = _transported_levels(X, texts, stages, p, k)
    level_map = info.pop("_level_map")
    with stages("fusion"):
        fused, w = adaptive_fusion([X, *(f for _, f in levels)], p.gamma, p.fusion,
                                   device=p.device)
        info["mean_fusion_weights"] = mean_weights(["image"] + [n for n, _ in texts], w)
    del levels
    with stages("cluster"):
        labels, cinfo = cluster_features(fused, k, p.clusterer, p.random_state,
                                         p.clusterer_params, p.device)
    used = {"n_clusters": k, "device": p.device, "n_overclusters": info["n_overclusters"],
            "rule": None if p.n_overclusters is not None else p.rule, "top_k": p.top_k,
            "reg": p.reg, "ot_method": p.ot_method, "ot": jsonable(p.ot_params),
            "gamma": p.gamma, "fusion": p.fusion, "captions": captions is not None,
            "overcluster": jsonable(p.overcluster_params), "clusterer": cinfo}
    return _done(MethodResult("cae", labels, stages.timings, used, info=info,
                              features=fused if p.keep_features else None), fused,
                 CaeMap(level_map, p.gamma, p.fusion))


def _caption_level(captions: Any, kf: KnowledgeFeatures) -> tuple[Any, str | None]:
    """kec+cae's captions and where they come from: given, the knowledge's, or none."""
    if captions is not None:
        return captions, "given"
    if kf.caption_emb is not None and kf.caption_emb.shape[0] > 0:
        return kf.caption_emb, "knowledge"
    return None, None


@declared("kec+cae")
def run_kec_cae(X: np.ndarray, knowledge: KnowledgeFeatures, n_clusters: int, *,
                nouns: np.ndarray | None = None, captions: np.ndarray | None = None,
                **params: Any) -> MethodResult:
    r"""kec's combination (docs/methods.md §4): KEC's knowledge grounded by CAE's OT,
    then the ``fusion`` strategy (:mod:`kec.cluster.strategies`).

    Concept level: :math:`c_i` from an OT plan over the concepts; attribute level:
    :math:`a_i` from an OT plan over all attribute texts (``attribute_mode=
    "elementwise"``: KEC's :math:`x_i \odot \xi`). Optional levels: raw ``nouns``
    (over-cluster + top-k selection as in CAE) and ``captions`` (given, or the
    knowledge's own captions), each by OT. ``fusion="guarded"`` (default,
    docs/methods.md §4.3): :func:`kec.cluster.guard.guarded_cluster` decides from the
    data whether to cluster :math:`x` alone, refine the knowledge partition on :math:`x`,
    or project the data's dominant (nuisance) structure out and refine it on
    :math:`[x^\perp ; \beta\hat c ; \beta\hat a]` (optional levels are then not used:
    ``info["ignored_levels"]``); ``fusion="adaptive"``: CAE's weights over
    :math:`[x, c, a, \dots]` with ``fusion_mode`` ``"sum"`` or ``"concat"``;
    ``fusion="kec"``: :math:`[x ; c + a ; \dots]`.

    Parameters
    ----------
    X : array-like of shape (N, d)
        Image (or text-item) features.
    knowledge : KnowledgeFeatures
        Knowledge embedded in the space of ``X`` (:func:`kec.cluster.knowledge_features`).
    n_clusters : int
        Number of clusters ``K`` (1 <= K <= N).
    nouns, captions : array-like of shape (M, d), optional
        The optional levels, in the space of ``X``.

    Returns
    -------
    MethodResult
        ``labels``, ``timings``, ``params``, ``clusters`` (names and explanations)
        and ``info`` (docs/api.md).
    """
    p = method_params("kec+cae", params)
    X, k = check_images(X, n_clusters)
    kf = _knowledge(knowledge, X, p.pair_attributes)
    if kf.attr_emb.shape[0] == 0:
        raise ClusteringInputError("kec+cae needs attributes in the knowledge (none found)")
    stages = _Stages()
    info: dict[str, Any] = {}
    with stages("ground"):
        g = ground_ot(X, kf.zeta, kf.attr_emb, reg=p.reg, ot_method=p.ot_method,
                      attribute_mode=p.attribute_mode,
                      ot_params=ot_kwargs(p.ot_params, p.device), device=p.device)
    info.update(g.info)
    captions, caption_source = _caption_level(captions, kf)
    texts = []
    if nouns is not None:
        texts.append(("nouns", check_texts(nouns, X, "noun features")))
    if captions is not None:
        texts.append(("captions", check_texts(captions, X, "caption features")))
    if texts and not method_spec("kec+cae").fusions[p.fusion].get("levels"):
        info["ignored_levels"] = [name for name, _ in texts]  # guarded: x, c, a only
        texts = []
    levels: list[tuple[str, np.ndarray]] = []
    level_map = None
    if texts:
        levels, linfo = _transported_levels(X, texts, stages, p, k)
        level_map = linfo.pop("_level_map")
        info.update(linfo)
    grounder = OTGrounder(kf.zeta, kf.attr_emb, p.reg, p.ot_method, p.attribute_mode,
                          dict(p.ot_params or {}))
    fi = FusionInput(X, k, kf, g, p, stages, levels, info, grounder, level_map)
    out = resolve_fusion("kec+cae", p.fusion)(fi)
    del levels
    fi.levels = []
    with stages("naming"):
        clusters = name_clusters(X, out.labels, k, kf, g, n_names=p.n_names,
                                 n_attributes=p.n_attributes, device=p.device)
    used = {"n_clusters": k, "device": p.device, "reg": p.reg,
            "ot_method": p.ot_method, "ot": jsonable(p.ot_params),
            "attribute_mode": p.attribute_mode, "pair_attributes": p.pair_attributes,
            "fusion": p.fusion, "fusion_mode": p.fusion_mode, "gamma": p.gamma,
            **{name: p[name] for name in _GUARD_PARAMS},
            "nouns": nouns is not None,
            "captions": caption_source, "top_k": p.top_k,
            "n_concepts": kf.n_concepts, "n_attributes": len(kf.attr_texts),
            "clusterer": out.clusterer}
    return _done(MethodResult("kec+cae", out.labels, stages.timings, used, clusters,
                              info=info,
                              features=out.features if p.keep_features else None),
                 out.features, out.feature_map)


def _knowledge(kf: Any, X: np.ndarray, pair_attributes: bool) -> KnowledgeFeatures:
    if not isinstance(kf, KnowledgeFeatures):
        raise ClusteringInputError(
            "knowledge must be KnowledgeFeatures (see kec.cluster.knowledge_features)"
        )
    if kf.dim != X.shape[1]:
        raise ClusteringInputError(
            f"dimension mismatch: the features are {X.shape[1]}-d but the knowledge was "
            f"embedded in {kf.dim}-d (use the features' encoder, or an image encoder's text "
            "tower)"
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

    Parameters
    ----------
    X : numpy.ndarray of shape (N, d)
        The items.
    labels : numpy.ndarray of shape (N,)
        Their clusters, in ``0..n_clusters-1``.
    n_clusters : int
        ``K`` (empty clusters get the name ``None``).
    knowledge : KnowledgeFeatures
        The embedded knowledge.
    grounding : Grounding
        Its grounding on ``X`` (:mod:`kec.cluster.grounding`).
    temperature : float
        :math:`T` of the softmax attribute weights (softmax grounding only).
    n_names, n_attributes : int
        Concepts and attributes listed per cluster.
    device : str or None
        Where the attribute weights are computed.

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
    """Run the method called ``name`` (see :data:`METHOD_NAMES`): its registry entry
    names the function and the inputs it requires or uses.

    ``tac`` and ``cae`` need ``nouns``; ``kec`` and ``kec+cae`` need ``knowledge``
    (``nouns``/``captions`` add optional levels to ``kec+cae``, ``captions`` to
    ``cae``). Inputs the method does not use are not passed on. Other keyword
    arguments are the method's parameters (:func:`kec.cluster.params.method_params`).

    Parameters
    ----------
    name : str
        ``"kmeans"``, ``"tac"``, ``"kec"``, ``"cae"`` or ``"kec+cae"``.
    X : array-like of shape (N, d)
        Image (or text-item) features.
    n_clusters : int
        Number of clusters ``K`` (1 <= K <= N).
    nouns, captions : array-like of shape (M, d), optional
        Text features in the space of ``X``.
    knowledge : KnowledgeFeatures, optional
        Embedded knowledge.
    **params
        The method's parameters (see each ``run_*`` function).

    Returns
    -------
    MethodResult
        ``labels``, ``timings``, ``params``, ``clusters`` (knowledge methods) and
        ``info`` (docs/api.md).

    Raises
    ------
    ClusteringInputError
        Unknown method, a required input missing, or an invalid input or parameter.

    Examples
    --------
    >>> import numpy as np
    >>> from kec.cluster import run_method
    >>> X = np.repeat(np.eye(2, 4), 5, axis=0)
    >>> run_method("kmeans", X, 2, random_state=0).labels.reshape(2, 5).std(axis=1)
    array([0., 0.])
    """
    if name not in METHOD_NAMES:
        raise ClusteringInputError(f"unknown method {name!r}; choose from {METHOD_NAMES}")
    spec = method_spec(name)
    given = {"nouns": nouns, "captions": captions, "knowledge": knowledge}
    missing = [i for i in spec.requires if given[i] is None]
    if missing:
        raise ClusteringInputError(f"method {name!r} needs " + " and ".join(
            f"{INPUTS[i]['what']} ({i}=..., made by '{INPUTS[i]['made_by']}')"
            for i in missing))
    inputs = {i: given[i] for i in spec.inputs if i in given}
    if name == "cae":  # the knowledge's captions reach cae through prepare_inputs
        inputs.pop("knowledge", None)
    return resolve(name, "function")(X, n_clusters=n_clusters, **inputs, **params)
