"""Image embedding throughput on real JPEG decoding: DataLoader workers 0 vs N.

Generates photo-like JPEGs (ImageNet's typical 500x375) with PIL in a temporary folder,
then measures, each configuration in a fresh process (so peak memory is its own):

- ``decode``: reading + JPEG decoding + CLIP preprocessing only (the DataLoader feed);
- ``embed``: the whole ``ClipImageEncoder.encode_files`` path (feed + model).

for ``--workers 0`` (decoding in the main process: the obvious alternative) against
``--workers N`` (decoding in N worker processes while the main one runs the model).

Run::

    .venv/bin/python benchmarks/bench_embed.py                # CPU, small
    .venv/bin/python benchmarks/bench_embed.py --decode-images 1024 --embed-images 256

On a GPU, ``gpu_embed_check(n_images, device)`` is the prepared check that
``benchmarks/gpu_check.py`` calls: ViT-B-32, random weights, the default fp16 precision,
real JPEG decoding; it returns images/s and peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODEL = "ViT-B-32"


def make_jpegs(folder: Path, n: int, *, size: tuple[int, int] = (500, 375), unique: int = 64,
               seed: int = 0, quality: int = 90) -> list[Path]:
    """Write ``n`` photo-like JPEGs (smooth structure plus sensor-like noise).

    ``unique`` distinct images are generated; the rest are byte copies under other names
    (decoding cost is the same, generation stays fast for large ``n``).
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    blobs: list[bytes] = []
    w, h = size
    for _ in range(min(unique, n)):
        coarse = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        im = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
        arr = np.asarray(im, dtype=np.int16) + rng.normal(0, 12, (h, w, 3)).astype(np.int16)
        im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        path = folder / f"{len(blobs):07d}.jpg"
        im.save(path, quality=quality)
        blobs.append(path.read_bytes())
    paths = [folder / f"{i:07d}.jpg" for i in range(n)]
    for i in range(len(blobs), n):
        paths[i].write_bytes(blobs[i % len(blobs)])
    return paths


def _peak_rss_mib() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest child, MiB (Linux: KiB)."""
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    return own, kids


def _one(mode: str, folder: str, workers: int, batch_size: int, device: str,
         precision: str | None, threads: int | None = None) -> dict[str, Any]:
    """One configuration, in this process: images/s and peak memory.

    ``threads`` sets torch's intra-op threads of this process (default: torch's own).
    """
    import torch

    from kec.encoders import create_image_encoder, iterate_image_batches

    if threads:
        torch.set_num_threads(threads)
    paths = sorted(Path(folder).glob("*.jpg"))
    enc = create_image_encoder(MODEL, "none", device=device, precision=precision,
                               batch_size=batch_size, num_workers=workers)
    start = time.perf_counter()
    if mode == "decode":
        n = 0
        for item in iterate_image_batches(paths, enc.clip.preprocess, batch_size=batch_size,
                                          num_workers=workers):
            n += len(item.indices)
    else:
        feats, kept, _ = enc.encode_files(paths)
        n = len(kept)
        assert feats.shape[0] == n
    wall = time.perf_counter() - start
    own, kids = _peak_rss_mib()
    out = {"mode": mode, "workers": workers, "threads": torch.get_num_threads(), "images": n,
           "wall_s": round(wall, 3),
           "images_per_s": round(n / wall, 1), "peak_rss_mib": round(own, 1),
           "peak_worker_rss_mib": round(kids, 1), "device": device,
           "precision": enc.clip.precision}
    if device.startswith("cuda"):
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _in_fresh_process(**kwargs: Any) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", json.dumps(kwargs)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def gpu_embed_check(n_images: int = 20_000, device: str = "cuda", *, batch_size: int = 256,
                    workers: int | None = None, model: str = MODEL) -> dict[str, Any]:
    """The CUDA embedding path at its default precision, on real JPEG decoding.

    Loads ``model`` with random weights (nothing is downloaded) at the default precision
    (fp16 on CUDA: the path that crashed), writes ``n_images`` 500x375 JPEGs to a
    temporary folder, and runs ``ClipImageEncoder.encode_files`` over them with
    ``workers`` decoding processes (default: one per spare core, at most 32).

    Returns
    -------
    dict
        ``images_per_s`` (end to end, decoding included), ``model_images_per_s`` (the
        model alone on one pre-decoded batch), ``peak_gpu_gib``, ``wall_s``, ``precision``,
        ``workers``, ``batch_size``, ``device_name``, ``n_images``.
    """
    import numpy as np
    import torch

    from kec.encoders import create_image_encoder, default_num_workers

    workers = default_num_workers() if workers is None else workers
    tmp = Path(tempfile.mkdtemp(prefix="kec-gpu-embed-"))
    try:
        paths = make_jpegs(tmp, n_images, unique=min(256, n_images))
        enc = create_image_encoder(model, "none", device=device, batch_size=batch_size,
                                   num_workers=workers)
        dev = torch.device(device)
        # model alone: one pre-decoded batch, warmed up
        from PIL import Image

        with Image.open(paths[0]) as im:
            x = enc.clip.preprocess(im.convert("RGB"))
        batch = x.unsqueeze(0).repeat(batch_size, 1, 1, 1).pin_memory()
        enc.encode_batch(batch)
        torch.cuda.synchronize(dev)
        t = time.perf_counter()
        reps = 10
        for _ in range(reps):
            enc.encode_batch(batch)
        torch.cuda.synchronize(dev)
        model_rate = reps * batch_size / (time.perf_counter() - t)

        torch.cuda.reset_peak_memory_stats(dev)
        t = time.perf_counter()
        feats, kept, failed = enc.encode_files(paths)
        torch.cuda.synchronize(dev)
        wall = time.perf_counter() - t
        if failed or not np.isfinite(feats).all():
            raise RuntimeError(f"{len(failed)} images failed or non-finite features")
        return {
            "n_images": len(kept), "images_per_s": round(len(kept) / wall, 1),
            "model_images_per_s": round(model_rate, 1),
            "peak_gpu_gib": round(torch.cuda.max_memory_allocated(dev) / 2**30, 3),
            "wall_s": round(wall, 2), "precision": enc.clip.precision, "model": model,
            "workers": workers, "batch_size": batch_size,
            "device_name": torch.cuda.get_device_name(dev),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--decode-images", type=int, default=512)
    p.add_argument("--embed-images", type=int, default=96)
    p.add_argument("--workers", type=int, default=2, help="the N of 0 vs N")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default=None)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(_one(**json.loads(args.one))))
        return

    with tempfile.TemporaryDirectory(prefix="kec-bench-embed-") as tmp:
        t = time.perf_counter()
        n = max(args.decode_images, args.embed_images)
        make_jpegs(Path(tmp) / "all", n)
        size = sum(p.stat().st_size for p in (Path(tmp) / "all").glob("*.jpg")) / n
        print(f"{n} JPEGs 500x375 (mean {size / 1024:.0f} KiB) written in "
              f"{time.perf_counter() - t:.1f} s; {os.cpu_count()} CPU cores; model {MODEL} "
              f"(random weights) on {args.device}")
        rows = []
        for mode, count in (("decode", args.decode_images), ("embed", args.embed_images)):
            sub = Path(tmp) / mode
            sub.mkdir()
            for i in range(count):
                os.link(Path(tmp) / "all" / f"{i:07d}.jpg", sub / f"{i:07d}.jpg")
            configs = [(0, None), (args.workers, None)]
            if mode == "decode":  # decoding in the main process, without torch's threads
                configs.insert(1, (0, 1))
            for workers, threads in configs:
                rows.append(_in_fresh_process(mode=mode, folder=str(sub), workers=workers,
                                              batch_size=args.batch_size, device=args.device,
                                              precision=args.precision, threads=threads))
        print(f"{'mode':7} {'workers':>7} {'threads':>7} {'images':>6} {'time s':>7} "
              f"{'images/s':>9} {'peak RSS MiB':>12} {'peak worker MiB':>15}")
        for r in rows:
            print(f"{r['mode']:7} {r['workers']:>7} {r['threads']:>7} {r['images']:>6} "
                  f"{r['wall_s']:>7.2f} {r['images_per_s']:>9.1f} {r['peak_rss_mib']:>12.0f} "
                  f"{r['peak_worker_rss_mib']:>15.0f}")
        for mode in ("decode", "embed"):
            mine = [r for r in rows if r["mode"] == mode]
            base, best = mine[0], mine[-1]
            print(f"{mode}: workers {best['workers']} vs 0: "
                  f"{best['images_per_s'] / base['images_per_s']:.2f}x images/s")


if __name__ == "__main__":
    main()
