"""``kec knowledge build | validate | lint | show | merge | diff``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kec._io import check_output_path
from kec.cli._common import LLM_CACHE_HELP, backend_names
from kec.errors import BuildFailuresError, InvalidKnowledgeError, KecError
from kec.knowledge.document import (
    diff_knowledge,
    dumps_knowledge,
    load_knowledge,
    merge_knowledge,
    read_knowledge_json,
    record_line,
    save_knowledge,
    summarize,
    validation_errors,
)
from kec.knowledge.labels import read_groups

# kec.backends, the builder and the prompts are imported in cmd_build, so that
# ``kec --help``, ``knowledge validate`` and ``knowledge show`` stay fast.

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("knowledge", help="build, check and compare knowledge files")
    ks = p.add_subparsers(dest="knowledge_command", metavar="ACTION", required=True)

    b = ks.add_parser("build", help="condense labels into concepts, attributes and pairs",
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = b.add_mutually_exclusive_group(required=True)
    src.add_argument("--labels", type=Path,
                     help="text file, one label per line; or a text collection "
                          "(text<TAB>label lines): its distinct labels")
    src.add_argument("--groups", type=Path,
                     help="JSON label groups (from `kec scaffold`), condensed as given")
    b.add_argument("--out", type=Path, required=True, help="knowledge file to write")
    b.add_argument("--kind", choices=["images", "items"], default=None,
                   help="what the knowledge will ground: images (prompts ask how things "
                        "look in photos) or a text collection's items (what texts are "
                        "about); default: items when --labels is a text collection "
                        "(text<TAB>label lines), else images")
    b.add_argument("--backend", default="llamacpp", choices=backend_names(),
                   help="LLM backend (llamacpp = embedded SmolLM2, offline)")
    b.add_argument("--model", default=None,
                   help="model for the backend (default: the backend's registry default)")
    b.add_argument("--base-url", action="append", default=None, metavar="URL",
                   help="openai/langchain: endpoint URL; openai: repeat it to spread the "
                        "requests over replicas of one model (least load first, a failing "
                        "replica leaves the rotation)")
    b.add_argument("--base-url-file", type=Path, default=None, metavar="FILE",
                   help="openai: more endpoint URLs, one per line (# comments allowed)")
    b.add_argument("--api-key-env", default=None,
                   help="openai/langchain: environment variable holding the API key "
                        "(default OPENAI_API_KEY); the key is never written anywhere")
    b.add_argument("--concurrency", type=int, default=None,
                   help="openai: requests in flight; ray-llamacpp, ray-vllm: engine actors")
    b.add_argument("--timeout", type=float, default=None, help="openai: seconds per request")
    b.add_argument("--max-retries", type=int, default=None,
                   help="openai: transport retries (429/5xx/timeouts) with backoff")
    b.add_argument("--structured-output", default=None,
                   choices=["auto", "json_schema", "json_object", "none"],
                   help="openai: structured-output form (auto detects what the server takes)")
    b.add_argument("--text-encoder", default="minilm",
                   help="groups labels and pairs concepts: minilm | "
                        "sentence-transformers:NAME | clip:MODEL:PRETRAINED")
    b.add_argument("--temperature", type=float, default=0.0,
                   help="LLM sampling temperature (0 = greedy, reproducible)")
    b.add_argument("--max-tokens", type=int, default=384,
                   help="most tokens in one LLM answer")
    b.add_argument("--seed", type=int, default=0, help="LLM sampling seed")
    b.add_argument("--n-attributes", type=int, default=2, help="lambda_1 per concept")
    b.add_argument("--n-pair-attributes", type=int, default=1, help="lambda_2 per pair")
    b.add_argument("--group-threshold", type=float, default=0.8,
                   help="cosine above which two labels join one concept")
    b.add_argument("--grouping", default="auto", choices=["auto", "wordnet", "similarity"],
                   help="how labels that name the same kind of thing are found: WordNet "
                        "links + text similarity (auto: WordNet when installed) or text "
                        "similarity only; recorded in provenance.grouping")
    b.add_argument("--sibling-hops", type=int, default=4,
                   help="WordNet: join labels of the same kind (sparrow/finch/robin: "
                        "bird), searching a label's kind this many hypernym steps up "
                        "(0 = never)")
    b.add_argument("--pair-mass", type=float, default=0.8,
                   help="beta: cumulative softmax mass of each concept's pairs")
    b.add_argument("--pair-temperature", type=float, default=0.05,
                   help="softmax temperature over a concept's similarities when picking "
                        "its pairs")
    b.add_argument("--max-pairs", type=int, default=3, help="pairs per concept at most")
    b.add_argument("--n-captions", type=int, default=3,
                   help="photo captions (for --kind items: example texts) per concept "
                        "(a caption corpus for `cae`; 0 = none)")
    b.add_argument("--max-repairs", type=int, default=2,
                   help="repair round-trips for an answer that breaks its schema")
    b.add_argument("--template-dir", type=Path, default=None,
                   help="directory of prompt templates overriding the built-in ones")
    b.add_argument("--cache-dir", type=Path, default=None,
                   help=LLM_CACHE_HELP)
    b.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.add_argument("--allow-failures", action="store_true",
                   help="exit 0 even when some LLM calls failed (default: exit 3)")
    b.set_defaults(func=cmd_build)

    v = ks.add_parser("validate", help="check files against the schema and semantic rules")
    v.add_argument("files", nargs="+", type=Path,
                   help="knowledge files to check")
    v.set_defaults(func=cmd_validate)

    lt = ks.add_parser(
        "lint", help="flag placeholder, copied and non-discriminative knowledge items",
        description="Score every concept and attribute in a text encoder's space and flag "
                    "placeholders and copies (one-letter answers, prompt words, the "
                    "concept's own name), attributes no closer to their concept than to "
                    "another, and pair attributes that do not separate their pair. "
                    "Exit status: 0 nothing flagged, 1 something flagged, 2 error (a file "
                    "that is not JSON or not a valid knowledge file included).")
    lt.add_argument("file", type=Path, help="knowledge file to lint")
    lt.add_argument("--encoder", default="minilm",
                    help="text encoder: minilm | sentence-transformers:NAME | "
                         "clip:MODEL:PRETRAINED | none (text checks only)")
    lt.add_argument("--margin", type=float, default=0.0,
                    help="least (own - best other) similarity of a concept attribute")
    lt.add_argument("--pair-margin", type=float, default=0.02,
                    help="least separation (sim to a - sim to b) of a pair attribute")
    lt.add_argument("--json", action="store_true", help="print the report as JSON")
    lt.add_argument("--all", action="store_true", help="list every item, not only flagged")
    lt.set_defaults(func=cmd_lint)

    s = ks.add_parser("show", help="print a knowledge file as text")
    s.add_argument("file", type=Path, help="knowledge file to print")
    s.add_argument("--json", action="store_true", help="print canonical JSON instead")
    s.add_argument("--max", type=int, default=None, help="show at most this many concepts")
    s.set_defaults(func=cmd_show)

    m = ks.add_parser("merge", help="union of knowledge files")
    m.add_argument("files", nargs="+", type=Path, help="knowledge files to merge")
    m.add_argument("--out", type=Path, required=True, help="merged knowledge file to write")
    m.set_defaults(func=cmd_merge)

    d = ks.add_parser("diff", help="compare two knowledge files (exit 1 when they differ, "
                                   "2 when one is not a valid knowledge file)")
    d.add_argument("a", type=Path, help="first knowledge file")
    d.add_argument("b", type=Path, help="second knowledge file")
    d.add_argument("--provenance", action="store_true",
                   help="also compare backend, prompts, sampling and parameters")
    d.set_defaults(func=cmd_diff)


def cmd_build(args: argparse.Namespace) -> int:
    from kec.llm.build import build_knowledge, is_collection_file, read_label_file
    from kec.llm.builder import BuildParams

    check_output_path(args.out, "file")
    base_url = _base_url_option(args)
    if args.labels is not None:
        labels, groups, source = read_label_file(args.labels), None, str(args.labels)
    else:
        labels, groups, source = None, read_groups(args.groups), f"groups:{args.groups}"
    kind = args.kind or ("items" if args.labels is not None and is_collection_file(args.labels)
                         else "images")
    params = BuildParams(
        n_attributes=args.n_attributes,
        n_pair_attributes=args.n_pair_attributes,
        group_threshold=args.group_threshold,
        grouping=args.grouping,
        sibling_hops=args.sibling_hops,
        pair_mass=args.pair_mass,
        pair_temperature=args.pair_temperature,
        max_pairs_per_concept=args.max_pairs,
        n_captions=args.n_captions,
    )
    if args.max_tokens < 1:
        raise KecError("--max-tokens must be >= 1")
    doc = build_knowledge(
        labels, groups=groups, backend=args.backend,
        backend_options={"model": args.model, "base_url": base_url,
                         "api_key_env": args.api_key_env, "concurrency": args.concurrency,
                         "timeout": args.timeout, "max_retries": args.max_retries,
                         "structured_output": args.structured_output},
        text_encoder=args.text_encoder, params=params, temperature=args.temperature,
        max_tokens=args.max_tokens, seed=args.seed, template_dir=args.template_dir,
        max_repairs=args.max_repairs, cache=not args.no_cache, cache_dir=args.cache_dir,
        source=source, progress=False if args.quiet else None, kind=kind)
    save_knowledge(doc, args.out)
    _report_build(doc, args)
    return 0


def _report_build(doc: dict, args: argparse.Namespace) -> None:
    """The summary line and one short line per failed or filled-in item (raw answers
    stay in the file's provenance); exit 3 only for requests that got no answer."""
    from kec.llm.answers import NAME_NOT_DRAWN

    usage = doc["provenance"]["usage"]
    failures = doc["provenance"]["failures"]
    fallbacks = doc["provenance"].get("fallbacks") or []
    sources = {}
    for f in fallbacks:
        sources[f.get("fallback", "none")] = sources.get(f.get("fallback", "none"), 0) + 1
    detail = ", ".join(f"{n} {src}" for src, n in sorted(sources.items()))
    print(
        f"wrote {args.out}: {len(doc['concepts'])} concepts, {len(doc['pairs'])} pairs; "
        f"LLM calls {usage['calls']} (+{usage['cached_calls']} cached, "
        f"{usage['repairs']} repairs, {usage.get('failed_calls', 0)} failed requests), "
        f"tokens {usage['prompt_tokens']}+{usage['completion_tokens']}; "
        f"fallbacks {len(fallbacks)}" + (f" ({detail})" if detail else "")
        + f"; failures {len(failures)}",
        file=sys.stderr,
    )
    for f in fallbacks:
        print(f"  {record_line(f, 'fallback')}", file=sys.stderr)
    for f in failures:
        print(f"  {record_line(f, 'failed')}", file=sys.stderr)
    invalid = [f for f in fallbacks if f.get("reason") != NAME_NOT_DRAWN]
    if invalid:
        print(f"  {len(invalid)} item(s) got only invalid answers and were filled honestly "
              "(see provenance.fallbacks); a re-run asks for them again with new seeds",
              file=sys.stderr)
    if failures and not args.allow_failures:
        raise BuildFailuresError(f"{len(failures)} LLM answer(s) failed: their requests got "
                                 f"no answer, so {args.out} is incomplete (those items fell "
                                 "back); re-run to retry them, or pass --allow-failures to "
                                 "accept it")


def _base_url_option(args: argparse.Namespace) -> str | list[str] | None:
    """``--base-url`` (repeatable) and ``--base-url-file`` as the backend's ``base_url``:
    one URL, a list of replicas (openai only), or ``None``."""
    from kec.backends.replica_pool import check_urls, read_url_file

    urls = list(args.base_url or [])
    if args.base_url_file is not None:
        urls += read_url_file(args.base_url_file)
    urls = check_urls(urls)
    if len(urls) > 1 and args.backend != "openai":
        raise KecError(f"{len(urls)} endpoint URLs given: only --backend openai takes a pool "
                       "of replicas")
    return urls[0] if len(urls) == 1 else urls or None


def cmd_validate(args: argparse.Namespace) -> int:
    bad = 0
    for path in args.files:
        try:
            doc = read_knowledge_json(path)
        except InvalidKnowledgeError as exc:
            print(exc, file=sys.stderr)
            bad += 1
            continue
        errors = validation_errors(doc)
        for jp, msg in errors:
            print(f"{path}: {jp}: {msg}", file=sys.stderr)
        if errors:
            bad += 1
        else:
            print(f"{path}: valid ({len(doc['concepts'])} concepts, {len(doc['pairs'])} pairs)")
    return 1 if bad else 0


class _UnusableInput(KecError):
    """A knowledge file given to a command whose exit 1 means something else (lint:
    flagged, diff: different): an input error, exit 2."""


def _load_input(path: Path) -> dict:
    try:
        return load_knowledge(path)
    except InvalidKnowledgeError as exc:
        raise _UnusableInput(str(exc)) from None


def cmd_lint(args: argparse.Namespace) -> int:
    import json

    from kec.knowledge.lint import lint_knowledge

    doc = _load_input(args.file)
    encode = None
    if args.encoder.lower() != "none" and doc["concepts"]:  # nothing to embed: no encoder
        from kec.encoders import create_text_encoder

        encode = create_text_encoder(args.encoder).encode
    report = lint_knowledge(doc, encode, margin=args.margin, pair_margin=args.pair_margin)
    if args.json:
        print(json.dumps({"file": str(args.file), "encoder": args.encoder,
                          **report.to_dict()}, indent=2, ensure_ascii=False))
    else:
        print(report.format(verbose=args.all))
    return 0 if report.clean else 1


def cmd_show(args: argparse.Namespace) -> int:
    doc = load_knowledge(args.file)
    print(dumps_knowledge(doc) if args.json else summarize(doc, args.max), end="" if args.json
          else "\n")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    check_output_path(args.out, "file")
    docs = [load_knowledge(p) for p in args.files]
    merged = merge_knowledge(docs, [str(p) for p in args.files])
    save_knowledge(merged, args.out)
    print(f"wrote {args.out}: {len(merged['concepts'])} concepts, {len(merged['pairs'])} pairs",
          file=sys.stderr)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    lines = diff_knowledge(_load_input(args.a), _load_input(args.b), args.provenance)
    for line in lines:
        print(line)
    return 1 if lines else 0


