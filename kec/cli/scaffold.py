"""``kec scaffold``: over-cluster image features, pick nouns, write label groups.

The groups file feeds ``kec knowledge build --groups groups.json``, which condenses each
group into one concept (docs/methods.md §1 steps 1–3 and §2.2).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kec._io import write_json
from kec.cluster.registry import method_spec
from kec.cluster_run import describe_file
from kec.errors import KecError

logger = logging.getLogger(__name__)


def overcluster_arg(value: str) -> int | str:
    """``--overclusters``: an integer, or a rule such as ``n/300`` or ``3k``."""
    value = value.strip()
    return int(value) if value.isdigit() else value


def n_init_arg(value: str) -> int | str:
    """``--n-init``: an integer >= 1 or ``auto``."""
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return n


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scaffold",
        help="over-cluster images (or text items) and select nouns: label groups for "
             "'kec knowledge build'",
        description="Over-cluster the image features (spherical k-means), give every noun "
                    "to its best centre and keep each centre's top nouns (TAC), merge "
                    "similar over-clusters (KEC), and write the label groups as JSON.",
    )
    p.add_argument("images", type=Path, help="image feature file (kec embed images), or "
                   "a text collection's (kec embed collection)")
    p.add_argument("nouns", type=Path, help="noun feature file from the same encoder "
                                            "(kec embed texts NOUNS --like IMAGES)")
    p.add_argument("--out", type=Path, required=True, help="groups JSON to write")
    p.add_argument("--overclusters", type=overcluster_arg, default="auto",
                   help="number of over-clusters, or a rule: 'n/300' = round(N/300) (TAC, "
                        "KEC), '3k' = 3 x --n-classes, 'auto' = the larger of N/300 and "
                        "3 x --n-classes (without it: of N/300 and min(30, N/10)) "
                        "(default: %(default)s)")
    p.add_argument("--n-classes", type=int, default=None,
                   help="number of classes, for the '3k' and 'auto' rules")
    p.add_argument("--top-k", type=int, default=5,
                   help="nouns kept per over-cluster (default: %(default)s)")
    p.add_argument("--temperature", type=float,
                   default=method_spec("tac").defaults["selection_temperature"],
                   help="softmax temperature ranking a centre's nouns (default: %(default)s)")
    p.add_argument("--alpha", type=float, default=0.8,
                   help="weight of visual vs text similarity when merging (default: "
                        "%(default)s)")
    p.add_argument("--beta", type=float, default=0.8,
                   help="merge over-clusters whose similarity exceeds this (default: "
                        "%(default)s)")
    p.add_argument("--no-merge", action="store_true",
                   help="one group per over-cluster (TAC) instead of merged components")
    p.add_argument("--n-init", type=n_init_arg, default="auto",
                   help="k-means restarts: an integer or 'auto' (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the over-clustering k-means runs: auto = cuda when a GPU is "
                        "visible, else the CPU (numpy)")
    p.set_defaults(func=cmd_scaffold)


def cmd_scaffold(args: argparse.Namespace) -> int:
    from kec.cluster.scaffold import build_groups
    from kec.features import check_compatible, load_features

    images = load_features(args.images, kind="image")
    nouns = load_features(args.nouns, kind="text")
    check_compatible(images, nouns)
    rule = args.overclusters
    doc = build_groups(
        images.features, nouns.features, nouns.ids,
        n_overclusters=rule if isinstance(rule, int) else None,
        rule=rule if isinstance(rule, str) else "auto",
        n_classes=args.n_classes, top_k=args.top_k, temperature=args.temperature,
        merge=not args.no_merge, alpha=args.alpha, beta=args.beta, random_state=args.seed,
        kmeans_params={"n_init": args.n_init, **_device(args.device)},
    )
    if not doc["groups"]:
        raise KecError("no over-cluster kept any noun; check that the nouns were encoded "
                       f"with the {images.noun}' encoder")
    doc["source"].update(images=describe_file(args.images, images),
                         nouns=describe_file(args.nouns, nouns))
    write_json(args.out, doc)
    stats = doc["stats"]
    print(f"wrote {stats['n_groups']} label groups ({stats['n_selected_nouns']} nouns from "
          f"{doc['params']['n_overclusters']} over-clusters of {len(images)} {images.noun}) to "
          f"{args.out}")
    return 0


def _device(choice: str) -> dict[str, str]:
    from kec.cluster.backend import method_device

    device = method_device(choice)
    return {"device": device} if device else {}
