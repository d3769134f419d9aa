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
from pathlib import Path
from typing import Any

from kec._io import check_output_path
from kec.cli._common import seed_arg
from kec.cli.scaffold import n_init_arg, overcluster_arg
from kec.cluster.registry import (
    CLUSTERERS,
    INPUTS,
    Param,
    method_names,
    method_spec,
    unused_inputs,
)
from kec.errors import KecError

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cluster",
        help="cluster image or text-item features (kmeans, tac, kec, cae, kec+cae)",
        description="Cluster image features (or a text collection's items), optionally "
                    "guided by nouns, captions or a knowledge file, and write "
                    "assignments.csv and summary.json.",
    )
    p.add_argument("images", type=Path, help="image feature file (kec embed images), or "
                   "a text collection's (kec embed collection)")
    p.add_argument("--k", type=int, required=True, help="number of clusters")
    p.add_argument("--method", choices=method_names(), default="kmeans",
                   help="clustering method (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="result folder to write")
    p.add_argument("--knowledge", type=Path, default=None,
                   help="knowledge file (kec knowledge build); needed by kec and kec+cae; "
                        "for cae without --captions, its captions are the caption corpus")
    p.add_argument("--nouns", type=Path, default=None,
                   help="noun feature file from the features' encoder; needed by tac and cae")
    p.add_argument("--captions", type=Path, default=None,
                   help="caption feature file from the features' encoder (cae, kec+cae)")
    p.add_argument("--text-encoder", default=None,
                   help="encoder for the knowledge texts (default: the features' own text "
                        "encoder, e.g. clip:MODEL:PRETRAINED or minilm)")
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
    p.add_argument("--distributed", action="store_true",
                   help="one clustering over the processes torchrun starts: each reads its "
                        "block of rows, sums are all-reduced (gloo on CPU, NCCL on GPU), "
                        "rank 0 writes --out; kmeans, cae, kec, kec+cae "
                        "(README 'Beyond one machine')")
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
            finite = math.isfinite(value) or (value == math.inf and "inf" in param.rule)
            if not finite or value < low or (strict and value == low):
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


def _warn(msg: str) -> None:
    print(f"kec: warning: {msg}", file=sys.stderr)


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
    if getattr(args, "distributed", False):
        from kec.cli import _distributed

        _distributed.check(args)
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
    spec = method_spec(m)
    for name in spec.requires:
        if getattr(args, name) is None:
            raise KecError(f"--method {m} needs {INPUTS[name]['flag']} (make it with "
                           f"'{INPUTS[name]['made_by']}')")
    for name in unused_inputs(m, [i for i in INPUTS if getattr(args, i) is not None]):
        _warn(f"--{name} is not used by --method {m}")


def cmd_cluster(args: argparse.Namespace) -> int:
    """Check every flag, then one library call (:func:`kec.cluster_run.run_clustering`),
    its result folder written and one line printed."""
    from kec.cli import _distributed
    from kec.cluster.backend import method_device
    from kec.cluster_run import run_clustering

    _check_args(args)
    with _distributed.group(args, method_device(args.device)) as rows:
        run = run_clustering(
            args.images, k=args.k, method=args.method, knowledge=args.knowledge,
            nouns=args.nouns, captions=args.captions, text_encoder=args.text_encoder,
            keep_flagged=args.keep_flagged, cache_dir=args.cache_dir,
            cache=not args.no_cache, device=args.device, seed=args.seed,
            params=_method_params(args), phrasing="cli", rows=rows)
        if rows is not None and rows.rank != 0:  # rank 0 writes the result folder
            return 0
    for note in (*run.notes, *run.warnings):
        _warn(note)
    run.write(args.out)
    print(run.line(args.out))
    return 0
