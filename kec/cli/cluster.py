"""``kec cluster``: cluster image features with kmeans, tac, kec, cae or kec+cae.

Writes ``OUT/assignments.csv`` (``id,cluster[,label]``) and ``OUT/summary.json``
(inputs with hashes, parameters, per-stage timings, metrics when the images carry
labels, and per-cluster names, concepts and attributes for the knowledge methods).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from kec import __version__
from kec._io import check_output_path, sha256_file
from kec.cli._common import seed_arg
from kec.cli.scaffold import describe_file, n_init_arg, overcluster_arg
from kec.cluster.registry import CLUSTERERS, method_names, method_spec
from kec.errors import InvalidKnowledgeError, KecError

if TYPE_CHECKING:  # numpy and the clustering math are imported in cmd_cluster
    pass

logger = logging.getLogger(__name__)

RESULT_KIND = "kec.cluster_result"
RESULT_VERSION = 1
USES_NOUNS = ("tac", "cae", "kec+cae")
USES_CAPTIONS = ("cae", "kec+cae")
USES_KNOWLEDGE = ("kec", "kec+cae")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cluster",
        help="cluster image features (kmeans, tac, kec, cae, kec+cae)",
        description="Cluster image features, optionally guided by nouns, captions or a "
                    "knowledge file, and write assignments.csv and summary.json.",
    )
    p.add_argument("images", type=Path, help="image feature file (kec embed images)")
    p.add_argument("--k", type=int, required=True, help="number of clusters")
    p.add_argument("--method", choices=method_names(), default="kmeans",
                   help="clustering method (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="result folder to write")
    p.add_argument("--knowledge", type=Path, default=None,
                   help="knowledge file (kec knowledge build); needed by kec and kec+cae; "
                        "for cae without --captions, its captions are the caption corpus")
    p.add_argument("--nouns", type=Path, default=None,
                   help="noun feature file from the images' encoder; needed by tac and cae")
    p.add_argument("--captions", type=Path, default=None,
                   help="caption feature file from the images' encoder (cae, kec+cae)")
    p.add_argument("--text-encoder", default=None,
                   help="encoder for the knowledge texts (default: the images' own text "
                        "encoder, e.g. clip:MODEL:PRETRAINED)")
    p.add_argument("--clusterer", choices=CLUSTERERS, default="kmeans",
                   help="final clustering algorithm (default: %(default)s)")
    p.add_argument("--n-init", type=n_init_arg, default="auto",
                   help="k-means restarts: integer or 'auto' (default: %(default)s)")
    p.add_argument("--seed", type=seed_arg, default=0,
                   help="random seed, an integer in [0, 2**32 - 1] (default: %(default)s)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where knowledge-text embeddings are cached, keyed on the encoder "
                        "and the text (default: $KEC_CACHE_DIR or ~/.cache/kec)")
    p.add_argument("--no-cache", action="store_true",
                   help="embed the knowledge texts again instead of reading the cache")
    p.add_argument("--keep-flagged", action="store_true",
                   help="keep knowledge items that 'kec knowledge lint' flags (placeholders, "
                        "copies, attributes that separate nothing); by default they are "
                        "dropped and listed in summary.json")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where OT and k-means run: auto = cuda when a GPU is visible, else "
                        "the CPU (numpy) (default: %(default)s)")
    g = p.add_argument_group("method parameters")
    g.add_argument("--overclusters", type=overcluster_arg, default="auto",
                   help="over-clusters for noun selection: number or rule 'n/300' | '3k' "
                        "(default: %(default)s)")
    g.add_argument("--n-classes", type=int, default=None, help="for the '3k' rule")
    g.add_argument("--top-k", type=int, default=5,
                   help="texts kept per over-cluster (default: %(default)s)")
    g.add_argument("--tau", type=float, default=0.005,
                   help="tac: softmax temperature of the text counterpart (default: "
                        "%(default)s)")
    g.add_argument("--temperature", type=float,
                   default=method_spec("kec").defaults["temperature"],
                   help="kec: grounding softmax temperature T (default: %(default)s)")
    g.add_argument("--reg", type=float, default=method_spec("cae").defaults["reg"],
                   help="cae, kec+cae: entropic OT regularisation (default: %(default)s)")
    g.add_argument("--ot-method", default="auto",
                   choices=("auto", "sinkhorn", "chunked", "semi_relaxed", "partial"),
                   help="OT solver (default: %(default)s)")
    g.add_argument("--ot-cache-gib", type=float, default=None,
                   help="memory for cached OT kernel blocks in GiB (default: 4)")
    g.add_argument("--gamma", type=float, default=0.01,
                   help="cae, kec+cae: adaptive fusion temperature (default: %(default)s)")
    g.add_argument("--fusion", choices=("guarded", "sum", "concat", "kec"), default=None,
                   help="kec, kec+cae: 'guarded' (default) trusts the knowledge only "
                        "where the data corroborates it: in the raw features' own clusters, "
                        "or in what is left once those are projected out as a nuisance "
                        "(docs/methods.md §4.3); "
                        "kec: 'concat' = KEC's [x ; kappa]; kec+cae: 'sum'/'concat' = CAE's "
                        "adaptive fusion, 'kec' = [x ; c + a]; cae: 'sum' (default) or "
                        "'concat'")
    g.add_argument("--beta", type=float, default=0.25,
                   help="kec, kec+cae: weight of the knowledge views when guarded fusion "
                        "finds a nuisance and projects it out (default: %(default)s)")
    g.add_argument("--attribute-mode", choices=("transport", "elementwise"),
                   default="transport", help="kec+cae: attribute level (default: %(default)s)")
    g.add_argument("--no-pair-attributes", action="store_true",
                   help="kec, kec+cae: ground uni-attributes only (ablation)")
    p.set_defaults(func=cmd_cluster)


def method_device(choice: str) -> str | None:
    """``--device`` to the methods' ``device`` (see :func:`kec.cluster.backend.method_device`)."""
    from kec.cluster.backend import method_device as resolve

    return resolve(choice)


def make_text_encoder(spec: str) -> Any:
    """The text encoder for knowledge texts (a seam for tests)."""
    from kec.encoders import create_text_encoder

    return create_text_encoder(spec)


def cached_text_encoder(spec: str, cache: Path | None) -> Any:
    """The encoder of ``spec`` behind the on-disk embedding cache (``None``: no cache).

    The model is loaded only when a text is not in the cache, so a second run with the
    same knowledge embeds nothing and loads no model."""
    if cache is None:
        return make_text_encoder(spec)
    from kec.encoders.cache import CachedTextEncoder

    return CachedTextEncoder(factory=lambda: make_text_encoder(spec), cache_dir=cache,
                             key={"spec": spec})


def _warn(msg: str) -> None:
    print(f"kec: warning: {msg}", file=sys.stderr)


def _load_text(path: Path, images: Any, what: str) -> Any:
    from kec.features import check_compatible, load_features

    feats = load_features(path, kind="text")
    check_compatible(images, feats)
    logger.info("%s: %d x %d from %s", what, len(feats), feats.dim, path)
    return feats


def _knowledge(args: argparse.Namespace, images: Any) -> tuple[Any, dict[str, Any]]:
    """The knowledge file embedded for grounding, and its description for summary.json.

    A file that is not valid knowledge (schema, no concepts...) is an input error of this
    command: :class:`KecError` (exit 2) with the first problem on one line, not
    ``InvalidKnowledgeError``'s exit 1 ("a check found a problem").
    """
    try:
        return _embed_knowledge(args, images)
    except InvalidKnowledgeError as exc:
        first = exc.errors[0] if exc.errors else ("$", "invalid")
        more = f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""
        raise KecError(f"{args.knowledge} is not usable knowledge: {first[0]}: {first[1]}"
                       f"{more}; see kec knowledge validate {args.knowledge}") from None


def _embed_knowledge(args: argparse.Namespace, images: Any) -> tuple[Any, dict[str, Any]]:
    from kec.cluster.knowledge_features import NAME_TEMPLATE, knowledge_features
    from kec.features import encoder_differences
    from kec.knowledge.document import load_knowledge

    doc = load_knowledge(args.knowledge)
    if args.text_encoder:
        spec = args.text_encoder
    else:
        from kec.encoders import spec_from_description

        try:
            spec = spec_from_description(images.encoder)
        except KecError as exc:
            raise KecError(f"cannot tell which text encoder matches {args.images} ({exc}); "
                           "give --text-encoder") from None
    from kec.vocab import cache_dir

    cache = None if args.no_cache else cache_dir(args.cache_dir)
    encoder = cached_text_encoder(spec, cache)
    described = dict(encoder.describe()) if hasattr(encoder, "describe") else {"spec": spec}
    dim = getattr(encoder, "dim", None)
    if dim is not None and int(dim) != images.dim:
        raise KecError(f"text encoder {spec!r} gives {dim}-d vectors but {args.images} holds "
                       f"{images.dim}-d image features; use the images' encoder "
                       "(--text-encoder clip:MODEL:PRETRAINED)")
    diffs = encoder_differences(images.encoder, described) if "kind" in described else []
    if diffs:
        raise KecError(f"text encoder {spec!r} is not the encoder of {args.images} "
                       f"({'; '.join(diffs)}): its vectors live in another space")
    from kec.api import lint_and_drop

    doc, lint = lint_and_drop(doc, encoder, keep_flagged=getattr(args, "keep_flagged", False))
    if lint["dropped"]:
        logger.info("dropped %d knowledge item(s) flagged by lint (see summary.json; "
                    "--keep-flagged keeps them)", len(lint["dropped"]))
    # concept names go into CLIP's zero-shot prompt for images, bare for text collections
    template = "{}" if getattr(images, "kind", "image") == "items" else NAME_TEMPLATE
    kf = knowledge_features(doc, encoder, pair_attributes="both", source=str(args.knowledge),
                            name_template=template)
    info = {"path": str(args.knowledge), "sha256": sha256_file(args.knowledge),
            "n_concepts": kf.n_concepts, "n_attributes": len(kf.attr_texts),
            "n_pairs": len(kf.pairs), "text_encoder": described, "lint": lint}
    return kf, info


def _method_params(args: argparse.Namespace) -> dict[str, Any]:
    m = args.method
    params: dict[str, Any] = {"clusterer": args.clusterer, "random_state": args.seed,
                              "device": method_device(args.device)}
    if args.clusterer == "kmeans":
        params["clusterer_params"] = {"n_init": args.n_init}
    over: dict[str, Any] = {}
    if isinstance(args.overclusters, int):
        over["n_overclusters"] = args.overclusters
    else:
        over["rule"] = args.overclusters
    over.update(n_classes=args.n_classes, top_k=args.top_k)
    ot_params = ({"cache_bytes": int(args.ot_cache_gib * 2**30)}
                 if args.ot_cache_gib is not None else None)
    allowed = {"cae": ("sum", "concat"), "kec": ("guarded", "concat"),
               "kec+cae": ("guarded", "sum", "concat", "kec")}
    if args.fusion is not None and args.fusion not in allowed.get(m, ()):
        raise KecError(f"--fusion {args.fusion} is not available for --method {m}"
                       + (f" (choose {', '.join(allowed[m])})" if m in allowed else ""))
    if m == "tac":
        params.update(over, tau=args.tau)
    elif m == "cae":
        params.update(over, reg=args.reg, ot_method=args.ot_method, ot_params=ot_params,
                      gamma=args.gamma, fusion=args.fusion or "sum")
    elif m == "kec":
        params.update(temperature=args.temperature,
                      pair_attributes=not args.no_pair_attributes,
                      fusion=args.fusion or "guarded", beta=args.beta)
    elif m == "kec+cae":
        params.update(reg=args.reg, ot_method=args.ot_method, ot_params=ot_params,
                      gamma=args.gamma, attribute_mode=args.attribute_mode,
                      pair_attributes=not args.no_pair_attributes,
                      fusion={None: "guarded", "guarded": "guarded", "kec": "kec"}.get(
                          args.fusion, "adaptive"),
                      fusion_mode=args.fusion if args.fusion in ("sum", "concat") else "sum",
                      beta=args.beta)
        if args.nouns is not None or args.captions is not None:
            params.update(over)
    return params


def _check_args(args: argparse.Namespace) -> None:
    """Every check that needs no file read, before any work."""
    m = args.method
    check_output_path(args.out, "dir")
    if args.k < 1:
        raise KecError(f"--k must be >= 1, got {args.k}")
    for opt, low, strict in (("reg", 0.0, True), ("gamma", 0.0, True), ("tau", 0.0, True),
                             ("temperature", 0.0, True), ("beta", 0.0, False),
                             ("ot_cache_gib", 0.0, False)):
        value = getattr(args, opt, None)
        if value is None:
            continue
        if not math.isfinite(value) or value < low or (strict and value == low):
            bound = f"> {low:g}" if strict else f">= {low:g}"
            raise KecError(f"--{opt.replace('_', '-')} must be a finite number {bound}, "
                           f"got {value}")
    if m in USES_KNOWLEDGE and args.knowledge is None:
        raise KecError(f"--method {m} needs --knowledge K.json (make one with "
                       "'kec knowledge build')")
    if m in ("tac", "cae") and args.nouns is None:
        raise KecError(f"--method {m} needs --nouns NOUNS.safetensors (kec embed texts)")
    for opt, users in (("knowledge", (*USES_KNOWLEDGE, "cae")), ("nouns", USES_NOUNS),
                       ("captions", USES_CAPTIONS)):
        if getattr(args, opt) is not None and m not in users:
            _warn(f"--{opt} is not used by --method {m}")


def _load_inputs(args: argparse.Namespace, timings: dict[str, float]) -> SimpleNamespace:
    """Features, nouns, captions and embedded knowledge, with their descriptions."""
    from kec.features import load_features

    m = args.method
    t = time.perf_counter()
    images = load_features(args.images, kind="image")
    if args.k > len(images):
        raise KecError(f"--k {args.k} is larger than the number of images ({len(images)}) "
                       f"in {args.images}")
    inputs: dict[str, Any] = {"features": describe_file(args.images, images)}
    nouns = captions = knowledge = None
    if args.nouns is not None and m in USES_NOUNS:
        nouns = _load_text(args.nouns, images, "nouns")
        inputs["nouns"] = describe_file(args.nouns, nouns)
    if args.captions is not None and m in USES_CAPTIONS:
        captions = _load_text(args.captions, images, "captions")
        inputs["captions"] = describe_file(args.captions, captions)
    timings["load"] = round(time.perf_counter() - t, 4)
    if m in USES_KNOWLEDGE:
        t = time.perf_counter()
        knowledge, inputs["knowledge"] = _knowledge(args, images)
        timings["embed_knowledge"] = round(time.perf_counter() - t, 4)
    elif m == "cae" and captions is None and args.knowledge is not None:
        # no caption corpus: the knowledge file's LLM-written captions stand in for one
        t = time.perf_counter()
        kf, info = _knowledge(args, images)
        if kf.caption_emb is None:
            raise KecError(f"{args.knowledge} holds no captions (build it with "
                           "--n-captions > 0) and no --captions file was given")
        captions = SimpleNamespace(features=kf.caption_emb)
        inputs["captions"] = {"from_knowledge": info["path"], "sha256": info["sha256"],
                              "count": len(kf.caption_texts)}
        timings["embed_captions"] = round(time.perf_counter() - t, 4)
    return SimpleNamespace(images=images, nouns=nouns, captions=captions,
                           knowledge=knowledge, inputs=inputs)


def _warn_unconverged(info: dict[str, Any]) -> None:
    for name, value in sorted(info.items()):
        if isinstance(value, dict) and value.get("converged") is False:
            _warn(f"optimal transport '{name}' did not converge within its budget "
                  f"(marginal error {value.get('marginal_error')}); see info.{name} in "
                  "summary.json")


def _matmul_dtypes(info: Any) -> set[str]:
    """Every GEMM precision the OT solves recorded (``matmul_dtype``) in ``info``."""
    if isinstance(info, dict):
        found = {str(info["matmul_dtype"])} if info.get("matmul_dtype") else set()
        for v in info.values():
            found |= _matmul_dtypes(v)
        return found
    if isinstance(info, list):
        return set().union(*(_matmul_dtypes(v) for v in info)) if info else set()
    return set()


def empty_cluster_warnings(sizes: Any, features: Any) -> list[str]:
    """What to warn about a clustering with empty clusters (none when every cluster has a
    member): how many are empty and, when that is the cause, how few distinct feature rows
    there are."""
    import numpy as np

    empty = int(np.count_nonzero(np.asarray(sizes) == 0))
    if not empty:
        return []
    k = len(sizes)
    text = f"{empty} of the {k} clusters are empty"
    distinct = len(np.unique(np.asarray(features), axis=0))
    if distinct < k:
        text += (f": the {len(features)} feature rows hold only {distinct} distinct "
                 f"vector(s), fewer than --k {k}")
    return [text + " (recorded in summary.json, 'warnings')"]


def cmd_cluster(args: argparse.Namespace) -> int:
    import numpy as np

    from kec.cluster.methods import run_method
    from kec.cluster.metrics import evaluate
    from kec.report.result import write_result

    t0 = time.perf_counter()
    m = args.method
    _check_args(args)
    timings: dict[str, float] = {}
    data = _load_inputs(args, timings)
    images = data.images
    result = run_method(
        m, images.features, args.k,
        nouns=None if data.nouns is None else data.nouns.features,
        captions=None if data.captions is None else data.captions.features,
        knowledge=data.knowledge, **_method_params(args),
    )
    timings.update(result.timings)
    _warn_unconverged(result.info)

    t = time.perf_counter()
    metrics = evaluate(images.labels, result.labels) if images.labels is not None else None
    timings["evaluate"] = round(time.perf_counter() - t, 4)
    clusters = result.clusters
    sizes = np.bincount(result.labels, minlength=args.k)
    if clusters is None:
        clusters = [{"cluster": c, "size": int(s)} for c, s in enumerate(sizes)]
    warnings = empty_cluster_warnings(sizes, images.features)
    for w in warnings:
        _warn(w)
    timings["total"] = round(time.perf_counter() - t0, 4)
    summary = {
        "kind": RESULT_KIND,
        "version": RESULT_VERSION,
        "kec_version": __version__,
        "method": m,
        "parameters": {"k": args.k, "seed": args.seed, "method": m, **result.params},
        "inputs": data.inputs,
        "timings": timings,
        "device": {"requested": args.device,
                   "used": result.params.get("device") or "cpu (numpy)",
                   "precision": "float32",
                   "ot_matmul": sorted(_matmul_dtypes(result.info))},
        "metrics": metrics,
        "clusters": clusters,
        "warnings": warnings,
        "info": result.info,
    }
    write_result(args.out, ids=images.ids, clusters=result.labels, labels=images.labels,
                 summary=summary)
    what = "items" if images.kind == "items" else "images"
    line = f"clustered {len(images)} {what} into {args.k} clusters with {m}"
    if metrics:
        line += (f": ACC {100 * metrics['acc']:.1f}  NMI {100 * metrics['nmi']:.1f}  "
                 f"ARI {100 * metrics['ari']:.1f}")
    print(f"{line}; wrote {args.out}/assignments.csv and summary.json "
          f"({timings['total']:.1f} s)")
    return 0
