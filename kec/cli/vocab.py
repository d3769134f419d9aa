"""``kec vocab wordnet | captions``: write a vocabulary as a text file, one item per line."""

from __future__ import annotations

import argparse
from pathlib import Path

from kec.errors import KecError
from kec.vocab import DEBIAN_WORDNET, cache_dir, load_captions, wordnet_nouns, write_lines


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vocab", help="write WordNet nouns or a caption corpus as a text file")
    vs = p.add_subparsers(dest="vocab_command", metavar="SOURCE", required=True)

    wn = vs.add_parser("wordnet", help="all WordNet noun lemma names, offline")
    wn.add_argument("--out", type=Path, required=True, help="text file to write")
    wn.add_argument("--source", type=Path, default=None,
                    help=f"WordNet database folder (default: NLTK's data, else {DEBIAN_WORDNET})")
    wn.add_argument("--cache-dir", type=Path, default=None,
                    help=f"kec cache for the built NLTK corpus (default {cache_dir()})")
    wn.add_argument("--lowercase", action="store_true",
                    help="merge case variants (CLIP's tokenizer lowercases anyway)")
    wn.set_defaults(func=cmd_wordnet)

    cp = vs.add_parser("captions", help="clean a caption corpus (strip, drop empty, dedupe)")
    cp.add_argument("captions", type=Path, help="text file, one caption per line")
    cp.add_argument("--out", type=Path, required=True, help="text file to write")
    cp.set_defaults(func=cmd_captions)


def cmd_wordnet(args: argparse.Namespace) -> int:
    nouns = wordnet_nouns(cache=args.cache_dir, source=args.source, lowercase=args.lowercase)
    write_lines(args.out, nouns)
    print(f"wrote {len(nouns)} WordNet nouns to {args.out}")
    return 0


def cmd_captions(args: argparse.Namespace) -> int:
    captions = load_captions(args.captions)
    if not captions:
        raise KecError(f"{args.captions} holds no caption")
    write_lines(args.out, captions)
    print(f"wrote {len(captions)} captions to {args.out}")
    return 0
