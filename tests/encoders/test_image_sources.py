"""Image folders and list files, and batch decoding that survives corrupt files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kec.encoders.base import l2_normalize
from kec.encoders.clip import ClipImageEncoder, ClipModel
from kec.encoders.images import (
    ImageSourceError,
    embed_images,
    find_images,
    images_from_file_list,
    images_from_folder,
)
from kec.errors import KecError


def test_class_folders_give_sorted_ids_and_labels(class_folder):
    src = images_from_folder(class_folder)
    assert src.ids == ["cat/0.png", "cat/1.png", "cat/2.png",
                       "dog/0.png", "dog/1.png", "dog/2.png", "dog/broken.png"]
    assert src.labels == ["cat"] * 3 + ["dog"] * 4
    assert all(p.is_file() for p in src.paths)
    assert src.describe()["labelled"] is True


def test_nested_class_folders_use_the_first_level(tmp_path, png):
    png(tmp_path / "a" / "deep" / "x.png", (1, 2, 3))
    png(tmp_path / "b" / "y.jpg", (1, 2, 3))
    src = images_from_folder(tmp_path)
    assert src.ids == ["a/deep/x.png", "b/y.jpg"]
    assert src.labels == ["a", "b"]


def test_flat_or_mixed_folder_has_no_labels(tmp_path, png):
    png(tmp_path / "x.png", (0, 0, 0))
    png(tmp_path / "y.PNG", (0, 0, 0))
    assert images_from_folder(tmp_path).labels is None
    png(tmp_path / "sub" / "z.png", (0, 0, 0))
    src = images_from_folder(tmp_path)
    assert src.labels is None and len(src) == 3


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(ImageSourceError, match="no images found"):
        images_from_folder(tmp_path / "empty")
    with pytest.raises(KecError, match="does not exist"):
        find_images(tmp_path / "nope")


def test_file_list_relative_paths_labels_and_comments(tmp_path, png):
    png(tmp_path / "imgs" / "a.png", (0, 0, 0))
    lst = tmp_path / "list.txt"
    lst.write_text(f"# header\nimgs/a.png\tcat\n\n{tmp_path / 'imgs' / 'b.png'}\tdog\n")
    src = images_from_file_list(lst)
    assert src.ids == ["imgs/a.png", str(tmp_path / "imgs" / "b.png")]
    assert src.paths[0] == tmp_path / "imgs" / "a.png"
    assert src.labels == ["cat", "dog"]
    assert src.origin == "file-list"
    # a file given as the source is read as a list too
    assert find_images(lst).ids == src.ids


def test_file_list_with_partial_labels_drops_them_and_empty_list_fails(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("a.png\tcat\nb.png\n")
    assert images_from_file_list(lst).labels is None
    lst.write_text("# nothing\n\n")
    with pytest.raises(ImageSourceError, match="lists no image"):
        images_from_file_list(lst)


class _TinyClip(torch.nn.Module):
    """Stands in for a CLIP model: mean colour -> linear map to 4 dims."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 4)

    def encode_image(self, x):
        return self.proj(x.mean(dim=(2, 3)))


def _tiny_encoder(batch_size=2):
    import torchvision.transforms.functional as F

    model = _TinyClip().eval()
    clip = ClipModel(model=model, preprocess=F.to_tensor, tokenizer=None, name="tiny",
                     pretrained=None, device="cpu", precision="fp32", dim=4)
    return ClipImageEncoder(clip, batch_size=batch_size)


def test_corrupt_and_missing_files_are_skipped_and_reported(class_folder, caplog):
    enc = _tiny_encoder(batch_size=2)
    src = images_from_folder(class_folder)
    src.paths.append(class_folder / "gone.png")
    src.ids.append("gone.png")
    src.labels.append("dog")
    emb = embed_images(src, enc)
    assert emb.features.shape == (6, 4)
    assert emb.ids == src.ids[:6]
    assert emb.labels == ["cat"] * 3 + ["dog"] * 3
    assert [s["id"] for s in emb.skipped] == ["dog/broken.png", "gone.png"]
    assert "UnidentifiedImageError" in emb.skipped[0]["error"]
    assert "broken.png" in caplog.text
    # same rows as encoding the readable images in memory, batch size irrelevant
    from PIL import Image

    ims = [Image.open(p) for p in src.paths[:6]]
    other_batching = ClipImageEncoder(enc.clip, batch_size=5)
    np.testing.assert_allclose(other_batching.encode(ims), emb.features, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(emb.features, axis=1), 1.0, atol=1e-5)


def test_no_readable_image_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"junk")
    (tmp_path / "b.jpg").write_bytes(b"")
    with pytest.raises(ImageSourceError, match="none of the 2 images"):
        embed_images(images_from_folder(tmp_path), _tiny_encoder())


def test_l2_normalize_keeps_zero_rows():
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
