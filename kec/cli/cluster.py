"""``kec cluster``: cluster image features with kmeans, tac, kec, cae or kec+cae.

Writes ``OUT/assignments.csv`` (``id,cluster[,label]``) and ``OUT/summary.json``
(inputs with hashes, parameters, per-stage timings, metrics when the images carry
labels, and per-cluster names, concepts and attributes for the knowledge methods).
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from kec import __version__
from kec._io import check_output_path
from kec.cli._common import seed_arg
from kec.cli.scaffold import describe_file, n_init_arg, overcluster_arg
from kec.cluster.registry import CLUSTERERS, Param, method_names, method_spec
from kec.errors import KecError

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
    g = p.add_argument_group(
        "method parameters", "Each flag is a parameter declared in kec.cluster.registry; "
        "a flag the method does not take is warned about, and one the chosen --fusion "
        "ignores is an error.")
    g.add_argument("--overclusters", type=overcluster_arg, default="auto",
                   help="over-clusters for text selection: number or rule 'n/300' | '3k' "
                        "(default: %(default)s)")
    for name, (param, users) in declared_flags().items():
        g.add_argument(param.flag, dest=name, default=None, **_flag_kwargs(param, users))
    g.add_argument("--ot-cache-gib", type=float, default=None,
                   help="memory for cached OT kernel blocks in GiB (default: 4)")
    g.add_argument("--fusion", choices=("guarded", "sum", "concat", "kec"), default=None,
                   help="kec, kec+cae: 'guarded' (default) trusts the knowledge only "
                        "where the data corroborates it: in the raw features' own clusters, "
                        "or in what is left once those are projected out as a nuisance "
                        "(docs/methods.md §4.3); "
                        "kec: 'concat' = KEC's [x ; kappa]; kec+cae: 'sum'/'concat' = CAE's "
                        "adaptive fusion, 'kec' = [x ; c + a]; cae: 'sum' (default) or "
                        "'concat'")
    p.set_defaults(func=cmd_cluster)


#: Declared parameters whose flags ``kec cluster`` spells itself (``--overclusters``,
#: ``--fusion``, ``--clusterer``, ``--n-init``, ``--seed``, ``--device``).
SPELLED_HERE = ("n_overclusters", "rule", "fusion", "fusion_mode", "clusterer")


def declared_flags() -> dict[str, tuple[Param, tuple[str, ...]]]:
    """Every declared parameter with a flag that is derived from its declaration: name ->
    (its :class:`~kec.cluster.registry.Param`, the methods that take it)."""
    out: dict[str, tuple[Param, tuple[str, ...]]] = {}
    for method in method_names():
        for name, param in method_spec(method).params.items():
            if param.flag is None or name in SPELLED_HERE:
                continue
            first, users = out.get(name, (param, ()))
            out[name] = (first, (*users, method))
    return out


def _plain(doc: str) -> str:
    """A declaration's reStructuredText doc as plain ``--help`` text."""
    doc = re.sub(r":\w+:`~?([^`]+)`", lambda m: m.group(1).rsplit(".", 1)[-1], doc)
    return doc.replace("``", "").replace("\\", "").replace("%", "%%")


def _flag_kwargs(param: Param, users: tuple[str, ...]) -> dict[str, Any]:
    """``add_argument`` keywords of a declared parameter's flag: its type or choices from
    the declaration's rule, its help from the doc, its default stated."""
    kinds = {r[0] if isinstance(r, tuple) else r for r in param.rule}
    default = param.default
    if isinstance(default, bool):  # said as the flag, not as a Python literal
        default = param.flag if default else "--no-" + str(param.flag)[2:]
    help_ = f"{', '.join(users)}: {_plain(param.doc)}" + (
        f" (default: {default})" if default is not None else "")
    if "boolean" in kinds:
        return {"action": argparse.BooleanOptionalAction, "help": help_}
    if "options" in kinds:
        choices = next(r[1] for r in param.rule if isinstance(r, tuple))
        return {"choices": choices, "help": help_}
    return {"type": int if "int" in kinds else float, "help": help_}


def _check_flag_values(args: argparse.Namespace) -> None:
    """Every declared flag given is checked against its declaration, whatever the
    method: a number must be finite and within its bound."""
    from kec.cluster.params import ParameterError, constraints_of

    for name, (param, _) in declared_flags().items():
        value = getattr(args, name, None)
        if value is None:
            continue
        interval = next((r for r in param.rule if isinstance(r, tuple)
                         and r[0] == "real"), None)
        if interval is not None:
            low, closed = interval[1], interval[3]
            strict = closed in ("neither", "right")
            if not math.isfinite(value) or value < low or (strict and value == low):
                raise KecError(f"{param.flag} must be a finite number "
                               f"{'>' if strict else '>='} {low:g}, got {value}")
        from sklearn.utils._param_validation import (
            InvalidParameterError,
            validate_parameter_constraints,
        )
        try:
            validate_parameter_constraints({name: constraints_of(param)}, {name: value},
                                           caller_name="kec cluster")
        except InvalidParameterError as exc:
            raise ParameterError(f"{param.flag} must be"
                                 + str(exc).split(" must be", 1)[-1]) from None


def method_device(choice: str) -> str | None:
    """``--device`` to the methods' ``device`` (see :func:`kec.cluster.backend.method_device`)."""
    from kec.cluster.backend import method_device as resolve

    return resolve(choice)


def _warn(msg: str) -> None:
    print(f"kec: warning: {msg}", file=sys.stderr)


def _load_text(path: Path, images: Any, what: str) -> Any:
    from kec.features import check_compatible, load_features

    feats = load_features(path, kind="text")
    check_compatible(images, feats)
    logger.info("%s: %d x %d from %s", what, len(feats), feats.dim, path)
    return feats


def _method_params(args: argparse.Namespace, device: str | None = None) -> dict[str, Any]:
    """The keyword arguments of the method's function from the flags: those given, the
    rest at their declared defaults (:func:`kec.cluster.params.method_params`)."""
    m = args.method
    spec = method_spec(m)
    params: dict[str, Any] = {"clusterer": args.clusterer, "random_state": args.seed,
                              "device": device}
    if args.clusterer == "kmeans":
        params["clusterer_params"] = {"n_init": args.n_init}
    if "rule" in spec.params:
        key = "n_overclusters" if isinstance(args.overclusters, int) else "rule"
        params[key] = args.overclusters
    params.update({name: getattr(args, name) for name in declared_flags()
                   if name in spec.params and getattr(args, name, None) is not None})
    if args.ot_cache_gib is not None and "ot_params" in spec.params:
        params["ot_params"] = {"cache_bytes": int(args.ot_cache_gib * 2**30)}
    allowed = {"cae": ("sum", "concat"), "kec": ("guarded", "concat"),
               "kec+cae": ("guarded", "sum", "concat", "kec")}
    if args.fusion is not None and args.fusion not in allowed.get(m, ()):
        raise KecError(f"--fusion {args.fusion} is not available for --method {m}"
                       + (f" (choose {', '.join(allowed[m])})" if m in allowed else ""))
    if args.fusion is not None and m == "kec+cae":
        params["fusion"] = {"guarded": "guarded", "kec": "kec"}.get(args.fusion, "adaptive")
        if args.fusion in ("sum", "concat"):
            params["fusion_mode"] = args.fusion
    elif args.fusion is not None:
        params["fusion"] = args.fusion
    return params


def _check_args(args: argparse.Namespace) -> None:
    """Every check that needs no file read, before any work."""
    m = args.method
    check_output_path(args.out, "dir")
    if args.k < 1:
        raise KecError(f"--k must be >= 1, got {args.k}")
    if args.ot_cache_gib is not None and not (math.isfinite(args.ot_cache_gib)
                                              and args.ot_cache_gib >= 0):
        raise KecError(f"--ot-cache-gib must be a finite number >= 0, got {args.ot_cache_gib}")
    _check_flag_values(args)
    for name, (param, _) in declared_flags().items():
        if getattr(args, name, None) is not None and name not in method_spec(m).params:
            _warn(f"{param.flag} is not used by --method {m}")
    from kec.cluster.params import method_params

    method_params(m, _method_params(args), caller="kec cluster", phrasing="cli")
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
    """The feature files read, then :func:`kec.cluster.inputs.prepare_inputs`: the one
    path from inputs to a method's arrays (the estimators and ``kec bench`` take it too)."""
    from kec.cluster.inputs import prepare_inputs
    from kec.features import load_features
    from kec.vocab import cache_dir

    m = args.method
    t = time.perf_counter()
    images = load_features(args.images, kind="image")
    if args.k > len(images):
        raise KecError(f"--k {args.k} is larger than the number of images ({len(images)}) "
                       f"in {args.images}")
    inputs: dict[str, Any] = {"features": describe_file(args.images, images)}
    nouns = captions = None
    if args.nouns is not None and m in USES_NOUNS:
        nouns = _load_text(args.nouns, images, "nouns")
        inputs["nouns"] = describe_file(args.nouns, nouns)
    if args.captions is not None and m in USES_CAPTIONS:
        captions = _load_text(args.captions, images, "captions")
        inputs["captions"] = describe_file(args.captions, captions)
    timings["load"] = round(time.perf_counter() - t, 4)
    knowledge = args.knowledge if m in (*USES_KNOWLEDGE, "cae") else None
    prepared = prepare_inputs(
        images, m, knowledge=knowledge, nouns=nouns, captions=captions,
        text_encoder=args.text_encoder, lint="keep" if args.keep_flagged else True,
        cache=None if args.no_cache else cache_dir(args.cache_dir), phrasing="cli")
    if prepared.lint and prepared.lint["dropped"]:
        logger.info("dropped %d knowledge item(s) flagged by lint (see summary.json; "
                    "--keep-flagged keeps them)", len(prepared.lint["dropped"]))
    inputs.update(prepared.described)
    timings.update(prepared.timings)
    return SimpleNamespace(images=images, prepared=prepared, inputs=inputs)


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
    result = run_method(m, data.prepared.features, args.k, **data.prepared.method_inputs(),
                        **_method_params(args, method_device(args.device)))
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
