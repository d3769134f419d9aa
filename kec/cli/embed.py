"""``kec embed images | texts``: encode an image folder or a text list into a feature file."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kec.encoders.defaults import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED
from kec.encoders.images import default_num_workers
from kec.encoders.templates import list_template_sets
from kec.errors import KecError

# numpy, torch, open_clip and the feature-file code are imported in the commands, so
# ``kec --help`` stays fast.

logger = logging.getLogger(__name__)


class EmbeddingInterrupted(KecError):
    """Ctrl-C during ``kec embed images``: says what was saved and how to resume."""

    exit_code = 130


def check_output_path(out: Path) -> None:
    """Fail before any work when ``out`` cannot be a feature file (a folder, under a file)."""
    if out.is_dir():
        raise KecError(f"--out {out} is a folder; give a file name, e.g. "
                       f"{out / 'images.features.safetensors'}")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise KecError(f"--out {out}: {parent} is a file, not a folder")
            break


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
    im.add_argument("--workers", type=int, default=None,
                    help="image decoding processes; 0 decodes in the main process "
                         f"(default: one per spare core, at most 32: {default_num_workers()} "
                         "here)")
    im.add_argument("--no-resume", action="store_true",
                    help="ignore rows saved by an interrupted run (OUT.partial) and start over")
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

    co = es.add_parser(
        "collection",
        help="encode a text collection (one item per line, optional TAB label) to cluster",
        description="Encode a collection of short texts (support tickets, titles, "
                    "abstracts...) as items to cluster with kec cluster, like image "
                    "features. Each line is one item; 'text<TAB>label' gives it a label "
                    "(then ACC/NMI/ARI are reported). Blank lines are skipped.")
    co.add_argument("texts", type=Path, help="UTF-8 text file, one item per line")
    co.add_argument("--encoder", default="minilm",
                    help="text encoder: minilm (offline, default) | sentence-transformers:NAME "
                         "| clip:MODEL:PRETRAINED")
    co.add_argument("--out", type=Path, required=True, help="feature file to write")
    _add_runtime_args(co, 256)
    co.set_defaults(func=cmd_collection)


def cmd_images(args: argparse.Namespace) -> int:
    from kec.encoders.checkpoint import EmbeddingCheckpoint, checkpoint_dir_for
    from kec.encoders.factory import create_image_encoder
    from kec.encoders.images import embed_images, find_images
    from kec.features import save_features

    if args.source is not None and args.file_list is not None:
        raise KecError("give an image folder or --file-list, not both")
    if args.source is None and args.file_list is None:
        raise KecError("give an image folder (or a list file with --file-list)")
    if args.batch_size < 1:
        raise KecError(f"--batch-size must be >= 1, got {args.batch_size}")
    workers = default_num_workers() if args.workers is None else args.workers
    if workers < 0:
        raise KecError(f"--workers must be >= 0, got {workers}")
    check_output_path(args.out)
    source = find_images(args.source, file_list=args.file_list)
    encoder = create_image_encoder(
        args.model, args.pretrained, device=args.device, precision=args.precision,
        batch_size=args.batch_size, num_workers=workers,
    )
    folder = checkpoint_dir_for(args.out)
    checkpoint = EmbeddingCheckpoint(folder, encoder.describe(), resume=not args.no_resume)
    if checkpoint.resumed:
        print(f"resuming: {checkpoint.resumed} image feature(s) saved in {folder} by an "
              "earlier run are reused where the file is unchanged", file=sys.stderr)
    try:
        emb = embed_images(source, encoder, progress=not args.quiet, checkpoint=checkpoint)
    except KeyboardInterrupt:
        raise EmbeddingInterrupted(
            f"interrupted; {len(checkpoint)} image feature(s) are saved in {folder}: run the "
            "same command to resume (unchanged files are not encoded again)"
        ) from None
    except KecError:
        if len(checkpoint) == 0:
            checkpoint.clear()
        raise
    save_features(
        args.out, emb.features, ids=emb.ids, kind="image", encoder=encoder.describe(),
        labels=emb.labels, extra={"source": source.describe(), "skipped": emb.skipped},
    )
    checkpoint.clear()
    print(f"wrote {len(emb.ids)} image features (d={emb.features.shape[1]}) to {args.out}"
          + (f"; skipped {len(emb.skipped)} unreadable file(s)" if emb.skipped else ""))
    for item in emb.skipped:
        print(f"  skipped {item['path']}: {item['error']}")
    return 0


def _text_spec(args: argparse.Namespace) -> tuple[str, dict | None]:
    """The encoder spec to use, and the image encoder description from ``--like``."""
    from kec.encoders.clip import normalize_pretrained
    from kec.encoders.factory import spec_from_description
    from kec.features import encoder_differences, load_features

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
    from kec.encoders.factory import create_text_encoder
    from kec.features import encoder_differences, save_features
    from kec.vocab import read_lines

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


def read_collection(path: Path) -> tuple[list[str], list[str], list[str] | None]:
    """Items of a text collection: ``(ids, texts, labels or None)``.

    One item per non-blank line, ``text`` or ``text<TAB>label``; either every item has a
    label or none. An item's id is ``<line number>:<text>`` (text cut at 120 characters),
    so that reports and ``assignments.csv`` show what was clustered.
    """
    from kec.knowledge.labels import clean_label

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KecError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise KecError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    ids: list[str] = []
    texts: list[str] = []
    labels: list[str] = []
    unlabelled = 0
    for n, line in enumerate(text.splitlines(), start=1):
        item, sep, label = line.partition("\t")
        item = " ".join(item.split())
        if not item:
            continue
        ids.append(f"{n}:{item[:120]}")
        texts.append(item)
        if sep:
            label = clean_label(label)
            if not label:
                raise KecError(f"{path}:{n}: empty label after the TAB")
            labels.append(label)
        else:
            unlabelled += 1
    if not texts:
        raise KecError(f"{path} holds no items (one text per line)")
    if labels and unlabelled:
        raise KecError(f"{path}: {len(labels)} items have a label and {unlabelled} do not; "
                       "label every line ('text<TAB>label') or none")
    return ids, texts, labels or None


def cmd_collection(args: argparse.Namespace) -> int:
    from kec.encoders.factory import create_text_encoder
    from kec.features import save_features

    if args.batch_size < 1:
        raise KecError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_output_path(args.out)
    ids, texts, labels = read_collection(args.texts)
    encoder = create_text_encoder(args.encoder, device=args.device,
                                  batch_size=args.batch_size)
    feats = encoder.encode(texts, progress=not args.quiet)
    save_features(args.out, feats, ids=ids, kind="items", encoder=encoder.describe(),
                  labels=labels, extra={"source": str(args.texts)})
    print(f"wrote {len(ids)} item features (d={feats.shape[1]}) to {args.out}"
          + (f", {len(set(labels))} labels" if labels else ""))
    return 0
