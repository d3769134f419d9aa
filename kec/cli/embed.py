"""``kec embed images | texts``: encode an image folder or a text list into a feature file."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kec.encoders import (
    create_image_encoder,
    create_text_encoder,
    embed_images,
    find_images,
    list_template_sets,
    spec_from_description,
)
from kec.encoders.clip import normalize_pretrained
from kec.encoders.factory import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED
from kec.errors import KecError
from kec.features import encoder_differences, load_features, save_features
from kec.vocab import read_lines

logger = logging.getLogger(__name__)


def _add_runtime_args(p: argparse.ArgumentParser, batch_size: int) -> None:
    p.add_argument("--device", default=None,
                   help="torch device (default: cuda with fp16 when available, else cpu)")
    p.add_argument("--precision", default=None,
                   help="open_clip precision, e.g. fp32, fp16, bf16 (default: by device)")
    p.add_argument("--batch-size", type=int, default=batch_size,
                   help="items per forward pass (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="encode images or texts into a feature file")
    es = p.add_subparsers(dest="embed_command", metavar="WHAT", required=True)

    im = es.add_parser("images", help="encode an image folder or list with open_clip")
    im.add_argument("source", nargs="?", type=Path,
                    help="image folder (class sub-folders give labels) or list file")
    im.add_argument("--file-list", type=Path, default=None,
                    help="text file with one image path (optionally TAB label) per line")
    im.add_argument("--model", default=DEFAULT_CLIP_MODEL,
                    help="open_clip model name, or hf-hub:ORG/REPO (default: %(default)s)")
    im.add_argument("--pretrained", default=DEFAULT_CLIP_PRETRAINED,
                    help="open_clip tag, checkpoint file, or 'none' for random weights "
                         "(default: %(default)s)")
    im.add_argument("--out", type=Path, required=True, help="feature file to write")
    im.add_argument("--workers", type=int, default=0,
                    help="image decoding processes (default: %(default)s)")
    _add_runtime_args(im, 64)
    im.set_defaults(func=cmd_images)

    tx = es.add_parser("texts", help="encode a text list with the image features' encoder")
    tx.add_argument("texts", type=Path, help="text file, one text (e.g. noun) per line")
    tx.add_argument("--like", type=Path, default=None,
                    help="image feature file whose encoder (model, weights) to use")
    tx.add_argument("--model", default=None, help="open_clip model (instead of --like)")
    tx.add_argument("--pretrained", default=None,
                    help="open_clip weights with --model (tag, file, or 'none')")
    tx.add_argument("--encoder", default=None,
                    help="any text encoder spec instead: minilm | sentence-transformers:NAME "
                         "| clip:MODEL:PRETRAINED")
    tx.add_argument("--templates", default="tac",
                    help=f"prompt templates: {' | '.join(list_template_sets())} | FILE "
                         "(default: %(default)s)")
    tx.add_argument("--out", type=Path, required=True, help="feature file to write")
    _add_runtime_args(tx, 256)
    tx.set_defaults(func=cmd_texts)


def cmd_images(args: argparse.Namespace) -> int:
    if args.source is not None and args.file_list is not None:
        raise KecError("give an image folder or --file-list, not both")
    if args.source is None and args.file_list is None:
        raise KecError("give an image folder (or a list file with --file-list)")
    source = find_images(args.source, file_list=args.file_list)
    encoder = create_image_encoder(
        args.model, args.pretrained, device=args.device, precision=args.precision,
        batch_size=args.batch_size, num_workers=args.workers,
    )
    emb = embed_images(source, encoder, progress=not args.quiet)
    save_features(
        args.out, emb.features, ids=emb.ids, kind="image", encoder=encoder.describe(),
        labels=emb.labels, extra={"source": source.describe(), "skipped": emb.skipped},
    )
    print(f"wrote {len(emb.ids)} image features (d={emb.features.shape[1]}) to {args.out}"
          + (f"; skipped {len(emb.skipped)} unreadable file(s)" if emb.skipped else ""))
    for item in emb.skipped:
        print(f"  skipped {item['path']}: {item['error']}")
    return 0


def _text_spec(args: argparse.Namespace) -> tuple[str, dict | None]:
    """The encoder spec to use, and the image encoder description from ``--like``."""
    chosen = [name for name in ("like", "model", "encoder") if getattr(args, name)]
    if len(chosen) > 1 and "encoder" in chosen:
        raise KecError("--encoder cannot be combined with --like or --model")
    if args.pretrained is not None and not args.model:
        raise KecError("--pretrained needs --model")
    if args.like:
        like = load_features(args.like, kind="image").encoder
        spec = spec_from_description(like)
        if args.model:
            wanted = {"kind": "open_clip", "model": args.model,
                      "pretrained": normalize_pretrained(args.pretrained)
                      if args.pretrained is not None else like.get("pretrained")}
            diffs = encoder_differences(like, wanted)
            if diffs:
                raise KecError(f"--model/--pretrained conflict with the encoder of {args.like} "
                               f"({'; '.join(diffs)}); drop them or drop --like")
        return spec, like
    if args.model:
        if args.pretrained is None:
            raise KecError("--model needs --pretrained (a tag, a checkpoint file, or 'none')")
        return f"clip:{args.model}:{normalize_pretrained(args.pretrained) or 'none'}", None
    if args.encoder:
        return args.encoder, None
    raise KecError("say which encoder: --like IMAGE_FEATURES (recommended), "
                   "--model/--pretrained, or --encoder")


def cmd_texts(args: argparse.Namespace) -> int:
    spec, like = _text_spec(args)
    texts = read_lines(args.texts)
    if not texts:
        raise KecError(f"{args.texts} holds no text")
    encoder = create_text_encoder(spec, device=args.device, batch_size=args.batch_size,
                                  templates=args.templates, precision=args.precision)
    description = encoder.describe()
    if like is not None:
        diffs = encoder_differences(like, description)
        if like.get("dim") is not None and like.get("dim") != encoder.dim:
            diffs.append(f"dimension {like.get('dim')} != {encoder.dim}")
        if diffs:  # pragma: no cover - spec_from_description rebuilds the same encoder
            raise KecError(f"text encoder does not match {args.like}: {'; '.join(diffs)}")
    feats = encoder.encode(texts, progress=not args.quiet)
    extra = {"source": str(args.texts)}
    if args.like:
        extra["like"] = str(args.like)
    save_features(args.out, feats, ids=texts, kind="text", encoder=description, extra=extra)
    print(f"wrote {len(texts)} text features (d={feats.shape[1]}) to {args.out}")
    return 0
