"""Text encoders: the offline MiniLM, spec parsing, template ensembles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kec.encoders import (
    EncoderSpecError,
    TextEncoder,
    create_text_encoder,
    parse_text_encoder_spec,
    spec_from_description,
)


@pytest.fixture(scope="module")
def minilm():
    return create_text_encoder(None, device="cpu")


def test_minilm_puts_similar_words_closer(minilm):
    x = minilm.encode(["cat", "kitten", "truck"])
    assert x.shape == (3, 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert x[0] @ x[1] > x[0] @ x[2] + 0.1


def test_minilm_interface_empty_input_and_provenance(minilm):
    assert isinstance(minilm, TextEncoder)
    assert minilm.dim == 384
    empty = minilm.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    desc = minilm.describe()
    assert json.loads(json.dumps(desc)) == desc
    assert desc == {"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2",
                    "pretrained": None, "dim": 384, "templates": None}
    with pytest.raises(TypeError):
        minilm.encode("cat")


def test_template_ensemble_is_the_renormalised_mean_of_prompt_embeddings(minilm):
    templates = ["a photo of a {}.", "a drawing of a {}."]
    ens = minilm.with_templates(templates)
    assert ens.model is minilm.model  # the loaded model is shared, not reloaded
    got = ens.encode(["cat", "truck"])
    raw = minilm.encode(["a photo of a cat.", "a drawing of a cat.",
                         "a photo of a truck.", "a drawing of a truck."]).reshape(2, 2, -1)
    want = raw.mean(axis=1)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert ens.describe()["templates"] == {"name": "custom", "templates": templates}
    # batches smaller than one text's prompts still work, results unchanged
    small = ens.with_templates(templates)
    small.batch_size = 1
    np.testing.assert_allclose(small.encode(["cat", "truck"]), got, atol=1e-5)


@pytest.mark.parametrize(
    "spec, expected",
    [
        (None, ("minilm", "all-MiniLM-L6-v2", None)),
        ("minilm", ("minilm", "all-MiniLM-L6-v2", None)),
        ("sentence-transformers:/models/mpnet", ("sentence-transformers", "/models/mpnet", None)),
        ("clip:ViT-B-32-quickgelu:openai", ("open_clip", "ViT-B-32-quickgelu", "openai")),
        ("clip:ViT-B-32:none", ("open_clip", "ViT-B-32", None)),
        ("clip:ViT-B-32:/ckpt/c:1.pt", ("open_clip", "ViT-B-32", "/ckpt/c:1.pt")),
        ("clip:hf-hub:timm/ViT-B-16-SigLIP", ("open_clip", "hf-hub:timm/ViT-B-16-SigLIP", None)),
    ],
)
def test_parse_text_encoder_spec(spec, expected):
    parsed = parse_text_encoder_spec(spec)
    assert (parsed["kind"], parsed["model"], parsed["pretrained"]) == expected


@pytest.mark.parametrize("spec", ["clip:ViT-B-32", "word2vec:x", "clip:", "nonsense"])
def test_bad_specs_are_clear_errors(spec):
    with pytest.raises(EncoderSpecError):
        parse_text_encoder_spec(spec)
    with pytest.raises(ValueError):  # an API caller's `except ValueError` works too
        parse_text_encoder_spec(spec)


def test_a_huge_spec_is_quoted_short():
    with pytest.raises(EncoderSpecError) as err:
        parse_text_encoder_spec("w2v:" + "x" * 100_000)
    assert len(str(err.value)) < 700 and "100,004 characters" in str(err.value)


@pytest.mark.parametrize(
    "desc, spec",
    [
        ({"kind": "open_clip", "model": "ViT-B-32-quickgelu", "pretrained": "openai"},
         "clip:ViT-B-32-quickgelu:openai"),
        ({"kind": "open_clip", "model": "ViT-B-32", "pretrained": None}, "clip:ViT-B-32:none"),
        ({"kind": "open_clip", "model": "hf-hub:org/m", "pretrained": None}, "clip:hf-hub:org/m"),
        ({"kind": "sentence-transformers", "model": "all-MiniLM-L6-v2"}, "minilm"),
    ],
)
def test_spec_from_description_round_trips(desc, spec):
    assert spec_from_description(desc) == spec
    parsed = parse_text_encoder_spec(spec)
    assert parsed["model"] == desc["model"]
    assert parsed["pretrained"] == desc.get("pretrained")
