"""Every precision path of the open_clip towers, on CPU with random weights.

The CUDA crash ``Input type (torch.cuda.FloatTensor) and weight type
(torch.cuda.HalfTensor) should be the same`` came from casting image batches to the dtype
of the model's *first* parameter, which open_clip's ``fp16``/``bf16`` leave in float32.
``bf16`` runs on CPU and takes exactly that cast, so these tests catch it without a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from kec.encoders import create_image_encoder, input_dtype, load_clip
from kec.encoders.clip import PRECISIONS, ClipImageEncoder, ClipTextEncoder
from kec.errors import KecError

MODEL = "ViT-S-32"
# float32 reference vs low precision: cosine of the same image's two embeddings
MIN_COSINE = {"fp32": 0.99999, "bf16": 0.97, "pure_bf16": 0.95, "amp_bf16": 0.97,
              "fp16": 0.995, "pure_fp16": 0.99, "amp": 0.995}

# what the image tower's first layer computes in (autocast for amp*)
COMPUTE_DTYPE = {"bf16": torch.bfloat16, "pure_bf16": torch.bfloat16,
                 "amp_bf16": torch.bfloat16, "fp16": torch.float16, "pure_fp16": torch.float16,
                 "amp": torch.float16}


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
            for _ in range(3)]


def _load(precision: str, model: str) -> ClipImageEncoder:
    try:
        return create_image_encoder(model, "none", device="cpu", precision=precision,
                                    batch_size=2)
    except (KecError, RuntimeError) as exc:  # pragma: no cover - depends on the CPU build
        pytest.skip(f"{precision} cannot be loaded on this CPU: {exc}")


def _encode_or_skip(fn, precision: str):
    try:
        return fn()
    except RuntimeError as exc:
        if "not implemented for" in str(exc) and "Half" in str(exc):  # pragma: no cover
            pytest.skip(f"{precision}: this CPU build lacks a half kernel ({exc})")
        raise


@pytest.fixture(scope="module")
def reference(tiny_clip) -> tuple[np.ndarray, np.ndarray]:
    enc = _load("fp32", tiny_clip)
    return enc.encode(_images()), enc.text_encoder(None).encode(["a dog", "a red truck"])


@pytest.mark.parametrize("precision", ["bf16", "pure_bf16", "amp_bf16", "fp16", "pure_fp16",
                                       "amp"])
def test_image_and_text_towers_run_at_every_precision(precision, reference, tiny_clip):
    enc = _load(precision, tiny_clip)
    assert enc.describe()["precision"] == precision
    seen: list[torch.dtype] = []
    enc.clip.model.visual.conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    img = _encode_or_skip(lambda: enc.encode(_images()), precision)
    assert seen == [COMPUTE_DTYPE[precision]] * 2  # two batches of at most 2 images
    txt = _encode_or_skip(lambda: enc.text_encoder(None).encode(["a dog", "a red truck"]),
                          precision)
    for got, want in zip((img, txt), reference, strict=True):
        assert got.dtype == np.float32 and np.isfinite(got).all()
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        cosines = np.sum(got * want, axis=1)
        assert cosines.min() > MIN_COSINE[precision], cosines


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16", "pure_bf16", "amp_bf16"])
def test_input_dtype_is_the_dtype_of_the_weights_the_input_meets(precision, tiny_clip):
    clip = load_clip(tiny_clip, None, device="cpu", precision=precision)
    assert clip.dtype == clip.model.visual.conv1.weight.dtype == input_dtype(precision)
    if precision in ("bf16", "fp16"):  # the bug: open_clip leaves the first parameter fp32
        assert next(clip.model.parameters()).dtype == torch.float32


def test_files_path_casts_too(tmp_path):
    """The DataLoader path (the one ``kec embed images`` takes) at bf16, on ViT-S-32."""
    enc = _load("bf16", MODEL)
    paths = []
    for i, im in enumerate(_images()):
        paths.append(tmp_path / f"{i}.jpg")
        im.save(paths[-1], quality=95)
    feats, kept, failed = enc.encode_files(paths)
    assert feats.shape == (3, 384) and kept == [0, 1, 2] and not failed
    assert np.isfinite(feats).all()


def test_text_encoder_is_a_clip_text_encoder_sharing_the_model(tiny_clip):
    enc = _load("bf16", tiny_clip)
    txt = enc.text_encoder("tac")
    assert isinstance(txt, ClipTextEncoder) and txt.clip is enc.clip
    assert txt.describe()["precision"] == "bf16"


def test_unknown_precision_is_a_clear_error(tiny_clip):
    assert "bf16" in PRECISIONS
    with pytest.raises(KecError, match="unknown precision 'fp8'"):
        load_clip(tiny_clip, None, device="cpu", precision="fp8")
