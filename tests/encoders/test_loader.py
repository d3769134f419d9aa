"""The DataLoader feed: order and ids, workers, non-regular files, resumable checkpoints."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kec.encoders import (
    CheckpointError,
    ClipImageEncoder,
    ClipModel,
    EmbeddingCheckpoint,
    NotARegularFileError,
    checkpoint_dir_for,
    embed_images,
    images_from_file_list,
    images_from_folder,
    iterate_image_batches,
    read_regular_file,
)

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")


class _TinyClip(torch.nn.Module):
    """Mean colour and a few pixels -> 8 dims: different images give different rows."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(3 + 12, 8)

    def encode_image(self, x):
        return self.proj(torch.cat([x.mean(dim=(2, 3)), x[:, :, 0, :4].flatten(1)], dim=1))


class CountingEncoder(ClipImageEncoder):
    """Counts encoded images; raises ``KeyboardInterrupt`` on forward pass ``stop_at``."""

    def __init__(self, batch_size: int = 2, num_workers: int = 0, stop_at: int | None = None):
        import torchvision.transforms.functional as F

        clip = ClipModel(model=_TinyClip().eval(), preprocess=F.to_tensor, tokenizer=None,
                         name="tiny", pretrained=None, device="cpu", precision="fp32", dim=8)
        super().__init__(clip, batch_size=batch_size, num_workers=num_workers)
        self.encoded = 0
        self.calls = 0
        self.stop_at = stop_at

    def encode_batch(self, batch):
        self.calls += 1
        if self.stop_at is not None and self.calls == self.stop_at:
            raise KeyboardInterrupt
        self.encoded += len(batch)
        return super().encode_batch(batch)


def _folder(root: Path, n: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(n)
    for i in range(n):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).save(sub / f"{i}.png")
    return root


@pytest.fixture()
def folder(tmp_path) -> Path:
    return _folder(tmp_path / "imgs", 9)


# -- order, workers ---------------------------------------------------------------------------


def test_workers_keep_order_and_rows(folder):
    src = images_from_folder(folder)
    one = embed_images(src, CountingEncoder(batch_size=2, num_workers=0))
    two = embed_images(src, CountingEncoder(batch_size=4, num_workers=2))
    assert one.ids == two.ids == src.ids
    np.testing.assert_allclose(one.features, two.features, atol=1e-6)
    assert len({tuple(np.round(r, 5)) for r in one.features}) == len(src)  # rows differ


def test_batches_come_back_in_path_order_with_errors_in_place(folder):
    src = images_from_folder(folder)
    paths = list(src.paths)
    paths.insert(3, folder / "missing.png")
    seen: list[int] = []
    import torchvision.transforms.functional as F

    for b in iterate_image_batches(paths, F.to_tensor, batch_size=4, num_workers=2):
        seen.extend(sorted(b.indices + [i for i, _ in b.errors]))
        assert b.batch is None or b.batch.shape[0] == len(b.indices)
    assert seen == list(range(len(paths)))


def test_bad_loader_arguments():
    with pytest.raises(ValueError, match="batch size"):
        next(iterate_image_batches(["x"], lambda im: im, batch_size=0))
    with pytest.raises(ValueError, match="workers"):
        next(iterate_image_batches(["x"], lambda im: im, num_workers=-1))


# -- anything that is not a regular file ------------------------------------------------------


@needs_fifo
@pytest.mark.timeout(30)  # a FIFO opened for reading would block forever
def test_fifo_named_like_an_image_is_skipped_with_a_warning_not_waited_on(folder, caplog):
    os.mkfifo(folder / "a" / "bad.jpg")
    os.symlink(folder / "a" / "bad.jpg", folder / "b" / "link.jpg")
    (folder / "b" / "dir.png").mkdir()
    src = images_from_folder(folder)
    assert "a/bad.jpg" not in src.ids and "b/link.jpg" not in src.ids
    assert "bad.jpg: not a regular file (FIFO)" in caplog.text
    assert len(src) == 9


@needs_fifo
@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers", [0, 2])
def test_fifo_in_a_list_file_is_reported_not_opened_for_reading(folder, workers):
    fifo = folder / "bad.jpg"
    os.mkfifo(fifo)
    lst = folder / "list.txt"
    lst.write_text(f"a/1.png\nbad.jpg\nb/0.png\n{folder}\n")
    emb = embed_images(images_from_file_list(lst), CountingEncoder(num_workers=workers))
    assert emb.ids == ["a/1.png", "b/0.png"]
    errors = {s["id"]: s["error"] for s in emb.skipped}
    assert "not a regular file (FIFO)" in errors["bad.jpg"]
    assert "not a regular file (directory)" in errors[str(folder)]


@needs_fifo
@pytest.mark.timeout(10)
def test_read_regular_file_refuses_fifos_without_blocking(tmp_path):
    fifo = tmp_path / "f.jpg"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFileError, match="FIFO"):
        read_regular_file(fifo)
    with pytest.raises(NotARegularFileError, match="directory"):
        read_regular_file(tmp_path)
    (tmp_path / "ok.bin").write_bytes(b"\x00\x01")
    assert read_regular_file(tmp_path / "ok.bin") == b"\x00\x01"
    with pytest.raises(OSError, match="too large"):
        read_regular_file(tmp_path / "ok.bin", max_bytes=1)


# -- resumable embedding ----------------------------------------------------------------------


def _run(src, tmp_path, *, stop_at=None, batch_size=2, flush_every=1, fingerprint=None):
    enc = CountingEncoder(batch_size=batch_size, stop_at=stop_at)
    ckpt = EmbeddingCheckpoint(checkpoint_dir_for(tmp_path / "out.safetensors"),
                               fingerprint or {"model": "tiny"}, flush_every=flush_every)
    return enc, ckpt, embed_images(src, enc, checkpoint=ckpt)


def test_interrupted_run_resumes_without_encoding_done_images_again(folder, tmp_path):
    src = images_from_folder(folder)
    fresh = embed_images(src, CountingEncoder())
    with pytest.raises(KeyboardInterrupt):
        _run(src, tmp_path, stop_at=3, flush_every=100)  # rows pending at Ctrl-C are flushed
    enc, ckpt, emb = _run(src, tmp_path)
    assert ckpt.resumed == 4  # two batches of two before the interrupt
    assert enc.encoded == 9 - 4
    assert emb.ids == fresh.ids
    np.testing.assert_allclose(emb.features, fresh.features, atol=1e-6)


def test_a_changed_file_is_encoded_again(folder, tmp_path):
    from PIL import Image

    src = images_from_folder(folder)
    _run(src, tmp_path)
    Image.new("RGB", (8, 6), (255, 0, 0)).save(folder / "a" / "1.png")
    enc, ckpt, emb = _run(src, tmp_path)
    assert ckpt.resumed == 9 and enc.encoded == 1
    fresh = embed_images(src, CountingEncoder())
    np.testing.assert_allclose(emb.features, fresh.features, atol=1e-6)


def test_another_encoder_or_a_damaged_chunk_is_not_reused(folder, tmp_path, caplog):
    src = images_from_folder(folder)
    _, ckpt, _ = _run(src, tmp_path, flush_every=4)
    chunks = sorted(ckpt.folder.glob("chunk-*"))
    assert len(chunks) == 3  # 4 + 4 + 1 rows
    chunks[0].write_bytes(b"garbage")
    enc, ckpt, _ = _run(src, tmp_path)
    assert ckpt.resumed == 5 and enc.encoded == 4
    assert "damaged checkpoint chunk" in caplog.text
    enc, ckpt, _ = _run(src, tmp_path, fingerprint={"model": "other"})
    assert ckpt.resumed == 0 and enc.encoded == 9
    assert "another encoder" in caplog.text


def test_resume_false_and_clear(folder, tmp_path):
    src = images_from_folder(folder)
    _, ckpt, _ = _run(src, tmp_path)
    again = EmbeddingCheckpoint(ckpt.folder, {"model": "tiny"}, resume=False)
    assert again.resumed == 0 and len(again) == 0
    again.clear()
    assert not ckpt.folder.exists()


def test_checkpoint_never_deletes_files_it_did_not_write(tmp_path):
    folder = tmp_path / "out.safetensors.partial"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    with pytest.raises(CheckpointError, match=r"thesis\.tex"):
        EmbeddingCheckpoint(folder, {"model": "tiny"})
    assert (folder / "thesis.tex").read_text() == "precious"
    (tmp_path / "x.partial").write_text("a file")
    with pytest.raises(CheckpointError, match="not a folder"):
        EmbeddingCheckpoint(tmp_path / "x.partial", {})


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stop_at=st.integers(1, 6), batch_size=st.integers(1, 4), flush_every=st.integers(1, 7))
def test_resumed_result_equals_an_uninterrupted_run(tmp_path_factory, stop_at, batch_size,
                                                    flush_every):
    tmp = tmp_path_factory.mktemp("resume")
    src = images_from_folder(_folder(tmp / "imgs", 7))
    fresh = embed_images(src, CountingEncoder(batch_size=3))
    with contextlib.suppress(KeyboardInterrupt):
        _run(src, tmp, stop_at=stop_at, batch_size=batch_size, flush_every=flush_every)
    enc, ckpt, emb = _run(src, tmp, batch_size=batch_size)
    assert enc.encoded + ckpt.resumed == 7
    assert ckpt.resumed == min(7, batch_size * (stop_at - 1))
    assert emb.ids == fresh.ids
    np.testing.assert_allclose(emb.features, fresh.features, atol=1e-6)
