"""``kec bench DATASET --root DIR``: reproduce the papers' tables with every method.

Every argument, the dataset name, its split and the output folder are checked before any
work starts and before anything is created. Exit codes: 0 every run succeeded (and, for
``wordnet-glosses``, every target was met); 1 a method run failed; 5
(:data:`EXIT_TARGET_MISSED`) ``wordnet-glosses`` ran but a target was not met (unless
``--no-check-targets``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kec.cli._common import positive_int, seeds_arg
from kec.errors import InputNotFoundError, KecError

#: ``kec bench wordnet-glosses``: the benchmark ran, but at least one target was not met.
EXIT_TARGET_MISSED = 5


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def register(sub: argparse._SubParsersAction) -> None:
    from kec.cli._common import backend_names
    from kec.cluster.registry import method_names
    from kec.encoders.defaults import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED

    p = sub.add_parser(
        "bench", help="run every method on a dataset of the papers, beside their numbers",
        description="Embed a dataset (features cached), select nouns, build knowledge "
                    "(cached), run each method with each seed, and write summary.md / "
                    "summary.csv with ACC/NMI/ARI beside the published numbers.")
    p.add_argument("dataset", nargs="?", help="dataset name (see --list)")
    p.add_argument("--list", action="store_true",
                   help="list the datasets and what each needs, then exit")
    p.add_argument("--root", type=Path, help="where the dataset lives (or is downloaded to)")
    p.add_argument("--split", default=None, help="split (default: the one the papers use); "
                   "join several with '+'")
    p.add_argument("--download", action="store_true",
                   help="let torchvision download a missing dataset")
    p.add_argument("--limit-per-class", type=positive_int, default=None,
                   help="use at most this many images per class (quick runs)")
    p.add_argument("--out", type=Path, default=Path("bench"), help="output and cache folder")
    p.add_argument("--model", default=DEFAULT_CLIP_MODEL, help="open_clip model")
    p.add_argument("--pretrained", default=DEFAULT_CLIP_PRETRAINED,
                   help="open_clip weights: tag, checkpoint file, or 'none' (random)")
    p.add_argument("--methods", type=_names, default=",".join(method_names()),
                   help="comma-separated methods")
    p.add_argument("--seeds", type=seeds_arg, default=None,
                   help="comma-separated seeds, each in [0, 2**32 - 1] (default: 0,1,2; "
                        "0,1,2,3,4 for the efficacy benchmarks)")
    p.add_argument("--vocab", default="auto",
                   help="nouns: auto (WordNet if installed and a GPU encodes it, else the "
                        "class names) | wordnet | classes | FILE")
    p.add_argument("--over-clusters", type=positive_int, default=None,
                   help="scaffold over-clusters (default: the registry's value for the "
                        "full split, else N/300)")
    k = p.add_mutually_exclusive_group()
    k.add_argument("--knowledge", type=Path, default=None,
                   help="use this knowledge file instead of building one")
    k.add_argument("--skip-knowledge", action="store_true",
                   help="build no knowledge: kec and kec+cae are reported as skipped")
    p.add_argument("--captions", type=Path, default=None,
                   help="caption corpus for cae (default: the knowledge's descriptions "
                        "and attributes)")
    p.add_argument("--backend", default="llamacpp", choices=backend_names(),
                   help="LLM backend for the knowledge (llamacpp = embedded SmolLM2)")
    p.add_argument("--llm-model", default=None, help="model of the backend")
    p.add_argument("--base-url", default=None, help="openai/langchain endpoint")
    p.add_argument("--api-key-env", default=None,
                   help="environment variable holding the API key (never written)")
    p.add_argument("--text-encoder", default="clip",
                   help="text encoder that pairs similar concepts in the knowledge build: "
                        "clip (the benchmarked model's text tower) | minilm | any "
                        "kec.encoders spec")
    p.add_argument("--device", default=None,
                   help="auto | cpu | cuda: where encoders and the clustering math run "
                        "(default: auto = cuda when a GPU is visible)")
    p.add_argument("--batch-size", type=positive_int, default=64,
                   help="images per encoder batch")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    e = p.add_argument_group(
        "efficacy benchmarks (DATASET = wordnet-glosses: WordNet glosses; foldoc: FOLDOC "
        "definitions; offline, no --root)")
    e.add_argument("--quick", action="store_true",
                   help="reduced size: wordnet-glosses 50 items per class and 4,000 "
                        "nouns; foldoc 40 items per class")
    e.add_argument("--per-class", type=positive_int, default=None,
                   help="items per category, >= 5 (default: wordnet-glosses 100, foldoc "
                        "50; halved-ish with --quick)")
    e.add_argument("--vocab-limit", type=positive_int, default=None,
                   help="random sample of this many WordNet nouns (default: all, or 4000 "
                        "with --quick)")
    e.add_argument("--regimes", type=_names, default=None,
                   help="comma-separated (default: all): wordnet-glosses clean, nuisance; "
                        "foldoc natural")
    e.add_argument("--knowledge-kinds", type=_names, default="reference,embedded,wrong,random",
                   help="comma-separated: reference (hand-written), embedded (built by "
                        "the embedded LLM), wrong (the other benchmark's reference), random "
                        "(random WordNet nouns)")
    e.add_argument("--rebuild-knowledge", action="store_true",
                   help="build the embedded LLM's knowledge from this run's scaffold "
                        "instead of using the file kec ships (LLM answers are cached)")
    e.add_argument("--encoder", default="minilm",
                   help="text encoder of the items and knowledge")
    e.add_argument("--no-check-targets", action="store_true",
                   help=f"exit 0 when the benchmark ran but a target was not met (by "
                        f"default that exits {EXIT_TARGET_MISSED})")
    p.set_defaults(func=cmd_bench)


def cmd_list() -> int:
    from kec.datasets import available_datasets

    for name, e in sorted(available_datasets().items()):
        split = e["default_split"]
        print(f"{name:14s} {e['title']} — {e['num_classes']} classes, "
              f"{e['images'].get(split, '?')} images ({split})")
        print(f"{'':14s} needs: {e['needs']}")
    from kec.bench.efficacy_data import DATASETS

    for name, spec in DATASETS.items():
        print(f"{name:14s} {spec.title} (efficacy of knowledge)")
        print(f"{'':14s} needs: {spec.needs}")
    return 0


def _given_or(value: Any, default: Any) -> Any:
    return default if value is None else value


def efficacy_exit_code(record: dict[str, Any], *, check_targets: bool = True) -> int:
    """The exit code of a finished efficacy run (``wordnet-glosses``, ``foldoc``).

    1 when a method run failed; else :data:`EXIT_TARGET_MISSED` when ``check_targets``
    and a target of ``record["targets"]`` has ``met`` false; else 0.
    """
    if any(r.get("status") == "failed" for r in record.get("results", [])):
        return 1
    missed = [t for t in record.get("targets", []) if not t["met"]]
    return EXIT_TARGET_MISSED if missed and check_targets else 0


def cmd_efficacy(args: argparse.Namespace) -> int:
    from kec.bench.efficacy import SEEDS, EfficacyConfig, run_efficacy
    from kec.bench.efficacy_data import efficacy_dataset

    spec = efficacy_dataset(args.dataset)
    size = spec.quick if args.quick else spec.full
    config = EfficacyConfig(
        out=args.out, dataset=spec.name,
        per_class=_given_or(args.per_class, size["per_class"]),
        vocab_limit=_given_or(args.vocab_limit, size["vocab_limit"]),
        seeds=tuple(_given_or(args.seeds, SEEDS)),
        regimes=tuple(args.regimes) if args.regimes else None, methods=tuple(args.methods),
        knowledge=tuple(args.knowledge_kinds), encoder=args.encoder,
        rebuild_knowledge=args.rebuild_knowledge, backend=args.backend,
        device=args.device or "auto", progress=not args.quiet)
    config.validate()
    from kec._io import check_output_path

    check_output_path(args.out, kind="dir")
    record = run_efficacy(config)
    print((args.out / "summary.md").read_text("utf-8"))
    missed = [t for t in record["targets"] if not t["met"]]
    print(f"wrote {args.out}/summary.md, results.csv, bench.json "
          f"({record['timings']['total']:.1f} s); targets met: "
          f"{len(record['targets']) - len(missed)}/{len(record['targets'])}")
    code = efficacy_exit_code(record, check_targets=not args.no_check_targets)
    if code == EXIT_TARGET_MISSED:
        import sys

        print(f"kec: {len(missed)} target(s) not met (exit {EXIT_TARGET_MISSED}; "
              "--no-check-targets exits 0)", file=sys.stderr)
    return code


def _check_dataset_args(args: argparse.Namespace) -> None:
    """Dataset name, split, caption file and output folder, before anything is created."""
    from kec._io import check_output_path
    from kec.datasets.registry import dataset_info

    if not args.dataset or args.root is None:
        raise KecError("give a DATASET and --root (or --list to see the datasets)")
    entry = dataset_info(args.dataset)  # an unknown name fails here, before the work
    for part in args.split.split("+") if args.split else ():
        if part not in entry["splits"]:
            raise KecError(f"{entry['title']} has no split {part!r}; choose from "
                           f"{', '.join(entry['splits'])}")
    if args.captions is not None and not args.captions.is_file():
        raise InputNotFoundError(f"--captions {args.captions}: no such file")
    check_output_path(args.out, kind="dir")


def cmd_bench(args: argparse.Namespace) -> int:
    if args.list:
        return cmd_list()
    from kec.bench.efficacy_data import DATASETS

    if args.dataset and args.dataset.replace("_", "-") in DATASETS:
        return cmd_efficacy(args)
    _check_dataset_args(args)
    from kec.bench.harness import BenchConfig, run_bench

    options = {"model": args.llm_model, "base_url": args.base_url,
               "api_key_env": args.api_key_env}
    config = BenchConfig(
        dataset=args.dataset, root=args.root, split=args.split, out=args.out,
        model=args.model, pretrained=args.pretrained, methods=tuple(args.methods),
        seeds=tuple(_given_or(args.seeds, (0, 1, 2))), download=args.download,
        limit_per_class=args.limit_per_class, vocab=args.vocab, knowledge=args.knowledge,
        skip_knowledge=args.skip_knowledge, backend=args.backend,
        backend_options={k: v for k, v in options.items() if v is not None},
        text_encoder=args.text_encoder, captions=args.captions,
        over_clusters=args.over_clusters,
        device=None if args.device in (None, "auto") else args.device,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    record = run_bench(config)
    print((args.out / "summary.md").read_text("utf-8"))
    failed = [r for r in record["results"] if r["status"] == "failed"]
    print(f"wrote {args.out}/summary.md, summary.csv, results.csv, bench.json "
          f"({record['timings']['total']:.1f} s)")
    return 1 if failed else 0
