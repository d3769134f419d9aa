"""WebDataset tar shards: samples grouped by key, images read by offset, labels from cls/txt."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from kec.encoders.images import ImageSourceError, find_images
from kec.encoders.webdataset import (
    TarMember,
    expand_braces,
    read_tar_samples,
    split_key,
    tar_samples,
)


def _png(color, fmt="PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (24, 24), color).save(buf, format=fmt)
    return buf.getvalue()


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name, key, ext", [
    ("000123.jpg", "000123", "jpg"),
    ("a/b/000123.seg.PNG", "a/b/000123", "seg.png"),
    ("dir.v2/x.cls", "dir.v2/x", "cls"),
    ("noext", "noext", ""),
])
def test_split_key_follows_the_webdataset_rule(name, key, ext):
    assert split_key(name) == (key, ext)


def test_samples_are_grouped_by_key_with_an_image_and_a_label(tmp_path):
    red, blue = _png((200, 0, 0)), _png((0, 0, 200), "JPEG")
    tar = write_tar(tmp_path / "s.tar", [
        ("k1.png", red), ("k1.cls", b" 3\n"), ("k1.txt", b"a caption"),
        ("k2.txt", b"  a  blue\nthing "), ("k2.jpg", blue), ("k2.webp", b"ignored: jpg first"),
        ("k3.json", b"{}"), ("k3.cls", b"1"),                  # no image
        ("sub/k4.jpeg", red), ("sub/k4.cls", b"0"),
        ("k1.extra", b"x"),                                    # its key again, later
        ("._k5.png", red),                                     # hidden: skipped
    ])
    samples = tar_samples(tar)
    assert [s.key for s in samples] == ["k1", "k2", "k3", "sub/k4"]
    assert [s.label for s in samples] == ["3", "a blue thing", "1", "0"]  # cls before txt
    assert samples[0].image.read() == red and samples[1].image.read() == blue
    assert samples[1].image.name == "k2.jpg"
    with pytest.raises(OSError, match="sample has no jpg/jpeg/png/webp member"):
        samples[2].image.read()
    rows = list(read_tar_samples(tar, "s.tar"))
    assert [r[0] for r in rows] == ["s.tar/k1", "s.tar/k2", "s.tar/k3", "s.tar/sub/k4"]
    assert rows[1][2] == blue and rows[2][2] == b"" and "OSError: sample has no" in rows[2][3]


def test_a_truncated_tar_is_reported_per_sample(tmp_path):
    good = write_tar(tmp_path / "s.tar", [("k.png", _png((1, 2, 3)))])
    member = tar_samples(good)[0].image
    cut = TarMember(member.tar, member.name, member.offset, member.size + 10_000)
    with pytest.raises(OSError, match="truncated"):
        cut.read()


def test_find_images_takes_a_tar_a_pattern_or_a_folder_of_tars(tmp_path):
    for s in range(3):
        write_tar(tmp_path / "wds" / f"s-{s:03d}.tar",
                  [(f"{s}{i}.png", _png((40 * i, 10 * s, 0))) for i in range(2)]
                  + [(f"{s}{i}.cls", str(i).encode()) for i in range(2)])
    one = find_images(tmp_path / "wds" / "s-001.tar")
    assert one.origin == "webdataset" and one.ids == ["s-001.tar/10", "s-001.tar/11"]
    assert one.labels == ["0", "1"]
    pattern = find_images(str(tmp_path / "wds" / "s-{000..002}.tar"))
    folder = find_images(tmp_path / "wds")
    assert pattern.ids == folder.ids == [f"s-{s:03d}.tar/{s}{i}" for s in range(3)
                                         for i in range(2)]
    assert str(folder.paths[0]).endswith("s-000.tar#00.png")


def test_labels_are_dropped_unless_every_sample_has_one(tmp_path):
    write_tar(tmp_path / "a.tar", [("x.png", _png((1, 1, 1))), ("x.cls", b"1"),
                                   ("y.png", _png((2, 2, 2)))])
    assert find_images(tmp_path / "a.tar").labels is None


@pytest.mark.parametrize("setup, message", [
    ("pattern-gap", "do not exist"),
    ("mixed", "holds both image files and .tar shards"),
    ("gzip", "not an uncompressed tar"),
    ("empty", "no WebDataset samples"),
])
def test_bad_shard_sources_are_clear_errors(tmp_path, setup, message):
    write_tar(tmp_path / "d" / "s-000.tar", [("k.png", _png((9, 9, 9)))])
    source: object = tmp_path / "d"
    if setup == "pattern-gap":
        source = str(tmp_path / "d" / "s-{000..001}.tar")
    elif setup == "mixed":
        (tmp_path / "d" / "loose.png").write_bytes(_png((1, 2, 3)))
    elif setup == "gzip":
        source = tmp_path / "z.tar"
        with tarfile.open(source, "w:gz") as tf:
            tf.add(tmp_path / "d" / "s-000.tar", arcname="inner.png")
    elif setup == "empty":
        source = write_tar(tmp_path / "e.tar", [])
    with pytest.raises(ImageSourceError, match=message):
        find_images(source)


def test_expand_braces_keeps_padding_and_multiplies():
    assert expand_braces("s-{08..11}.tar") == ["s-08.tar", "s-09.tar", "s-10.tar", "s-11.tar"]
    assert expand_braces("{0..1}/{00..01}.tar") == ["0/00.tar", "0/01.tar", "1/00.tar",
                                                      "1/01.tar"]
    with pytest.raises(ImageSourceError, match="empty range"):
        expand_braces("s-{3..1}.tar")


def test_shards_embed_to_the_features_of_the_same_images_as_files(tmp_path, tiny_clip):
    """The tar reader hands the encoder the same bytes as the files: equal features."""
    from kec.encoders.factory import create_image_encoder
    from kec.encoders.images import embed_images

    colors = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (90, 90, 90), (250, 250, 0)]
    files = tmp_path / "files"
    members = []
    for i, c in enumerate(colors):
        data = _png(c, "JPEG" if i % 2 else "PNG")
        name = f"{i:03d}.{'jpg' if i % 2 else 'png'}"
        (files / "all").mkdir(parents=True, exist_ok=True)
        (files / "all" / name).write_bytes(data)
        members += [(name, data), (f"{i:03d}.cls", b"all")]
    # 4 + 1 samples, batches of 2: both sources make the batches [0 1] [2 3] [4] (a matrix
    # product's rounding depends on its row count)
    write_tar(tmp_path / "wds" / "s-000.tar", members[:8])
    write_tar(tmp_path / "wds" / "s-001.tar", [*members[8:], ("999.cls", b"all")])
    enc = create_image_encoder(tiny_clip, "none", device="cpu", batch_size=2)
    from_files = embed_images(find_images(files), enc)
    from_tars = embed_images(find_images(tmp_path / "wds"), enc)
    assert from_tars.ids == ["s-000.tar/000", "s-000.tar/001", "s-000.tar/002",
                             "s-000.tar/003", "s-001.tar/004"]
    assert from_tars.labels == from_files.labels == ["all"] * 5
    assert [s["id"] for s in from_tars.skipped] == ["s-001.tar/999"]
    np.testing.assert_array_equal(from_tars.features, from_files.features)


@pytest.mark.parametrize("n, size, breaks, expected", [
    (5, 2, None, [[0, 1], [2, 3], [4]]),
    (5, 2, [3], [[0, 1], [2], [3, 4]]),
    (6, 4, [0, 2, 2, 9], [[0, 1], [2, 3, 4, 5]]),
    (0, 3, [0], []),
])
def test_batches_restart_at_each_shard(n, size, breaks, expected):
    from kec.encoders.images import batch_ranges

    assert batch_ranges(n, size, breaks) == expected


def test_a_shard_starts_a_new_batch_as_a_ray_task_reading_it_does(tmp_path, tiny_clip,
                                                                  monkeypatch):
    from kec.encoders.clip import ClipImageEncoder
    from kec.encoders.factory import create_image_encoder
    from kec.encoders.images import embed_images

    for s in range(2):
        write_tar(tmp_path / f"s-{s}.tar", [(f"{s}{i}.png", _png((50 * i, 9, 9 * s)))
                                            for i in range(3)])
    sizes: list[int] = []
    real = ClipImageEncoder.encode_batch
    monkeypatch.setattr(ClipImageEncoder, "encode_batch",
                        lambda self, b: (sizes.append(len(b)), real(self, b))[1])
    enc = create_image_encoder(tiny_clip, "none", device="cpu", batch_size=2)
    assert len(embed_images(find_images(tmp_path), enc).ids) == 6
    assert sizes == [2, 1, 2, 1]
