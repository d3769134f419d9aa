"""``kec embed images | texts``: encode an image folder or a text list into a feature file."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def check_output_path(out: Path, *, sharded: bool = False) -> None:
    """Fail before any work when ``out`` cannot be written: a feature file (not a folder,
    not under a file, in a writable folder), or with ``sharded`` a folder that is new,
    empty or an earlier sharded set."""
    from kec._io import check_output_path as check_writable
    from kec._io import probe_writable

    if sharded:
        from kec.feature_shards import check_shard_folder

        check_shard_folder(out)
        probe_writable(out)  # the set is written beside it, then swapped in
        return
    if out.is_dir():
        raise KecError(f"--out {out} is a folder; give a file name, e.g. "
                       f"{out / 'images.features.safetensors'}")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise KecError(f"--out {out}: {parent} is a file, not a folder")
            break
    check_writable(out, "file")
    probe_writable(out)


def _add_runtime_args(p: argparse.ArgumentParser, batch_size: int) -> None:
    p.add_argument("--device", default=None,
                   help="torch device (default: cuda with fp16 when available, else cpu)")
    p.add_argument("--precision", default=None,
                   help="open_clip precision, e.g. fp32, fp16, bf16 (default: by device)")
    p.add_argument("--batch-size", type=int, default=batch_size,
                   help="items per forward pass (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_scale_args(p: argparse.ArgumentParser, workers_help: str) -> None:
    """Options of the commands that encode many items: engine, shards, checkpoint."""
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process (default); ray: Ray Data over an actor pool "
                        "of encoders, one per GPU (on CPU: --workers), writing a sharded "
                        "feature set; needs pip install 'kec[ray]'")
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="with --engine ray: the Ray cluster to use (e.g. auto, "
                        "ray://HOST:10001; default: a local instance)")
    p.add_argument("--workers", type=int, default=None, help=workers_help)
    p.add_argument("--shard-rows", type=int, default=None, metavar="N",
                   help="write a sharded feature set: --out is a folder of shard files of "
                        "N rows plus index.json (default with --engine ray: 65536)")
    p.add_argument("--checkpoint-rows", type=int, default=4096, metavar="N",
                   help="local engine: save completed rows in OUT.partial every N rows (and "
                        "every 60 s), so an interrupted run resumes; 0 = no checkpoint "
                        "(default: %(default)s)")
    p.add_argument("--no-resume", action="store_true",
                   help="ignore rows saved by an interrupted run (OUT.partial) and start over")


def _check_scale_args(args: argparse.Namespace) -> None:
    """Refuse bad numbers and option mixes before any work."""
    for name, low in (("batch_size", 1), ("shard_rows", 1), ("checkpoint_rows", 0)):
        value = getattr(args, name)
        if value is not None and value < low:
            raise KecError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")
    if args.workers is not None and args.workers < (1 if args.engine == "ray" else 0):
        raise KecError(f"--workers must be >= {1 if args.engine == 'ray' else 0}, got "
                       f"{args.workers}")
    if args.ray_address is not None and args.engine != "ray":
        raise KecError("--ray-address needs --engine ray")
    check_output_path(args.out, sharded=_sharded(args))


def _sharded(args: argparse.Namespace) -> bool:
    return args.engine == "ray" or args.shard_rows is not None


def _open_checkpoint(args: argparse.Namespace, fingerprint: dict, what: str) -> Any:
    """The checkpoint of a local run (``None`` with ``--checkpoint-rows 0``)."""
    from kec.encoders.checkpoint import EmbeddingCheckpoint, checkpoint_dir_for

    if args.checkpoint_rows == 0:
        return None
    folder = checkpoint_dir_for(args.out)
    checkpoint = EmbeddingCheckpoint(folder, fingerprint, flush_every=args.checkpoint_rows,
                                     resume=not args.no_resume)
    if checkpoint.resumed:
        print(f"resuming: {checkpoint.resumed} {what} feature(s) saved in {folder} by an "
              f"earlier run are reused where the {'file' if what == 'image' else 'line'} "
              "is unchanged", file=sys.stderr)
    return checkpoint


@contextlib.contextmanager
def _resumable(checkpoint: Any, what: str) -> Iterator[None]:
    """Ctrl-C says what was saved and how to resume; a failure before the first saved row
    leaves no checkpoint folder behind."""
    try:
        yield
    except KeyboardInterrupt:
        if checkpoint is None:
            raise
        raise EmbeddingInterrupted(
            f"interrupted; {len(checkpoint)} {what} feature(s) are saved in "
            f"{checkpoint.folder}: run the same command to resume (unchanged "
            f"{'files' if what == 'image' else 'lines'} are not encoded again)"
        ) from None
    except KecError:
        if checkpoint is not None and len(checkpoint) == 0:
            checkpoint.clear()
        raise


def _save(args: argparse.Namespace, feats: Any, **kwargs: Any) -> str:
    """Write a feature file, or a sharded set with ``--shard-rows``; say which."""
    if args.shard_rows is not None:
        from kec.feature_shards import save_feature_shards

        save_feature_shards(args.out, feats, shard_rows=args.shard_rows, **kwargs)
        shards = -(-len(feats) // args.shard_rows)
        return f"{args.out} ({shards} shard(s) of at most {args.shard_rows} rows)"
    from kec.features import save_features

    save_features(args.out, feats, **kwargs)
    return str(args.out)


def _print_ray_result(result: Any, what: str) -> None:
    print(f"wrote {result.n} {what} features (d={result.dim}) to {result.folder} "
          f"({result.shards} shard(s), {result.workers} Ray worker(s))"
          + (f"; skipped {len(result.skipped)} unreadable item(s)" if result.skipped else ""))
    for item in result.skipped:
        print(f"  skipped {item['id']}: {item['error']}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="encode images or texts into a feature file")
    es = p.add_subparsers(dest="embed_command", metavar="WHAT", required=True)

    im = es.add_parser("images", help="encode an image folder, list or WebDataset shards "
                                      "with open_clip")
    im.add_argument("source", nargs="?", type=Path,
                    help="image folder (class sub-folders give labels), list file, or "
                         "WebDataset shards: a .tar file, a folder of .tar files or a "
                         "pattern such as 'shards/s-{000..099}.tar'")
    im.add_argument("--file-list", type=Path, default=None,
                    help="text file with one image path (optionally TAB label) per line")
    im.add_argument("--model", default=DEFAULT_CLIP_MODEL,
                    help="open_clip model name, or hf-hub:ORG/REPO (default: %(default)s)")
    im.add_argument("--pretrained", default=DEFAULT_CLIP_PRETRAINED,
                    help="open_clip tag, checkpoint file, or 'none' for random weights "
                         "(default: %(default)s)")
    im.add_argument("--out", type=Path, required=True,
                    help="feature file to write (a folder with --engine ray or --shard-rows)")
    _add_scale_args(im, "local engine: image decoding processes, 0 decodes in the main "
                        "process; --engine ray: encoder actors (default: local, one per "
                        f"spare core, at most 32: {default_num_workers()} here; ray, one "
                        "per GPU, else 1)")
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
                    "(then ACC/NMI/ARI are reported). Blank lines are skipped; lines end at "
                    "\\n only (\\r\\n is fine); a line with a second TAB is refused.")
    co.add_argument("texts", type=Path, help="UTF-8 text file, one item per line")
    co.add_argument("--encoder", default="minilm",
                    help="text encoder: minilm (offline, default) | sentence-transformers:NAME "
                         "| clip:MODEL:PRETRAINED")
    co.add_argument("--out", type=Path, required=True,
                    help="feature file to write (a folder with --engine ray or --shard-rows)")
    _add_scale_args(co, "--engine ray: encoder actors (default: one per GPU, else 1)")
    _add_runtime_args(co, 256)
    co.set_defaults(func=cmd_collection)


def cmd_images(args: argparse.Namespace) -> int:
    from kec.encoders.images import find_images

    if args.source is not None and args.file_list is not None:
        raise KecError("give an image folder or --file-list, not both")
    if args.source is None and args.file_list is None:
        raise KecError("give an image folder (or a list file with --file-list)")
    _check_scale_args(args)
    if args.engine == "ray":
        return _images_on_ray(args)
    return _images_local(args, find_images(args.source, file_list=args.file_list))


def _images_on_ray(args: argparse.Namespace) -> int:
    from kec.encoders.images import find_images, find_tar_shards
    from kec.encoders.ray_engine import embed_images_ray

    # WebDataset shards go to Ray unread: one task reads one shard start to end
    shards = find_tar_shards(args.source) if args.source is not None else None
    if shards is not None:
        source: Any = shards
        described = {"origin": "webdataset", "location": str(args.source),
                     "shards": len(shards[0])}
    else:
        source = find_images(args.source, file_list=args.file_list)
        described = source.describe()
    result = embed_images_ray(
        source, args.out, model=args.model, pretrained=args.pretrained,
        workers=args.workers, device=args.device, precision=args.precision,
        batch_size=args.batch_size, shard_rows=args.shard_rows, address=args.ray_address,
        quiet=args.quiet, extra={"source": described, "engine": "ray"})
    _print_ray_result(result, "image")
    return 0


def _images_local(args: argparse.Namespace, source: Any) -> int:
    from kec.encoders.factory import create_image_encoder
    from kec.encoders.images import embed_images

    workers = default_num_workers() if args.workers is None else args.workers
    encoder = create_image_encoder(
        args.model, args.pretrained, device=args.device, precision=args.precision,
        batch_size=args.batch_size, num_workers=workers,
    )
    checkpoint = _open_checkpoint(args, encoder.describe(), "image")
    with _resumable(checkpoint, "image"):
        emb = embed_images(source, encoder, progress=not args.quiet, checkpoint=checkpoint)
    where = _save(args, emb.features, ids=emb.ids, kind="image", encoder=encoder.describe(),
                  labels=emb.labels, extra={"source": source.describe(),
                                            "skipped": emb.skipped})
    if checkpoint is not None:
        checkpoint.clear()
    print(f"wrote {len(emb.ids)} image features (d={emb.features.shape[1]}) to {where}"
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
    check_output_path(args.out)
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


def cmd_collection(args: argparse.Namespace) -> int:
    from kec.encoders.collection import read_collection

    if args.workers is not None and args.engine != "ray":
        raise KecError("--workers is for --engine ray (the local engine encodes in this "
                       "process, on every core)")
    _check_scale_args(args)
    items = read_collection(args.texts)
    extra = {"source": str(args.texts)}
    if args.engine == "ray":
        from kec.encoders.ray_engine import embed_collection_ray

        result = embed_collection_ray(
            items.ids, items.texts, items.labels, args.out, encoder=args.encoder,
            workers=args.workers, device=args.device, batch_size=args.batch_size,
            shard_rows=args.shard_rows, address=args.ray_address, quiet=args.quiet,
            extra={**extra, "engine": "ray"})
        _print_ray_result(result, "item")
        return 0
    return _collection_local(args, items, extra)


def _collection_local(args: argparse.Namespace, items: Any, extra: dict) -> int:
    from kec.encoders.collection import encode_collection
    from kec.encoders.factory import create_text_encoder

    encoder = create_text_encoder(args.encoder, device=args.device,
                                  batch_size=args.batch_size)
    checkpoint = _open_checkpoint(args, encoder.describe(), "item")
    with _resumable(checkpoint, "item"):
        feats = encode_collection(encoder, items.ids, items.texts, checkpoint=checkpoint,
                                  progress=not args.quiet)
    where = _save(args, feats, ids=items.ids, kind="items", encoder=encoder.describe(),
                  labels=items.labels, extra=extra)
    if checkpoint is not None:
        checkpoint.clear()
    print(f"wrote {len(items)} item features (d={feats.shape[1]}) to {where}"
          + (f", {len(set(items.labels))} labels" if items.labels else ""))
    return 0


def read_collection(path: Path) -> tuple[list[str], list[str], list[str] | None]:
    """``(ids, texts, labels)`` of a collection file; see
    :func:`kec.encoders.collection.read_collection`."""
    from kec.encoders.collection import read_collection as read

    items = read(path)
    return items.ids, items.texts, items.labels
