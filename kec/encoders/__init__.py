"""Image and text encoders (open_clip, sentence-transformers) with one factory per concern.

Names are imported on first use, so ``import kec.encoders`` loads neither numpy nor torch.
The text-encoder protocol is :class:`kec.encoders.base.TextEncoder`.

>>> enc = create_text_encoder()                     # offline all-MiniLM-L6-v2
>>> enc.encode(["a cat", "a truck"]).shape
(2, 384)
>>> img = create_image_encoder("ViT-B-32-quickgelu", "openai")  # doctest: +SKIP
>>> txt = img.text_encoder(templates="tac")                      # same loaded model
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> submodule that defines it
_WHERE = {
    "TextEncoder": "base", "l2_normalize": "base", "resolve_device": "base",
    "CheckpointError": "checkpoint", "EmbeddingCheckpoint": "checkpoint",
    "checkpoint_dir_for": "checkpoint",
    "ClipImageEncoder": "clip", "ClipModel": "clip", "ClipTextEncoder": "clip",
    "autocast_for": "clip", "input_dtype": "clip", "load_clip": "clip",
    "DEFAULT_CLIP_MODEL": "defaults", "DEFAULT_CLIP_PRETRAINED": "defaults",
    "EncoderSpecError": "factory", "create_image_encoder": "factory",
    "create_text_encoder": "factory", "parse_text_encoder_spec": "factory",
    "spec_from_description": "factory",
    "ImageEmbeddings": "images", "ImageSource": "images", "ImageSourceError": "images",
    "NotARegularFileError": "images", "default_num_workers": "images",
    "embed_images": "images", "find_images": "images", "find_tar_shards": "images",
    "images_from_file_list": "images",
    "images_from_folder": "images", "iterate_image_batches": "images",
    "read_regular_file": "images",
    "SentenceTransformerTextEncoder": "sbert", "embedded_minilm_path": "sbert",
    "CollectionError": "collection", "TextCollection": "collection",
    "encode_collection": "collection", "read_collection": "collection",
    "TarMember": "webdataset", "images_from_tars": "webdataset",
    "tar_samples": "webdataset",
    "RayEngineError": "ray_engine", "embed_collection_ray": "ray_engine",
    "embed_images_ray": "ray_engine",
    "TemplateError": "templates", "TemplateSet": "templates",
    "list_template_sets": "templates", "resolve_templates": "templates",
}

__all__ = [
    "DEFAULT_CLIP_MODEL",
    "DEFAULT_CLIP_PRETRAINED",
    "CheckpointError",
    "ClipImageEncoder",
    "ClipModel",
    "ClipTextEncoder",
    "CollectionError",
    "EmbeddingCheckpoint",
    "EncoderSpecError",
    "ImageEmbeddings",
    "ImageSource",
    "ImageSourceError",
    "NotARegularFileError",
    "RayEngineError",
    "SentenceTransformerTextEncoder",
    "TarMember",
    "TemplateError",
    "TemplateSet",
    "TextCollection",
    "TextEncoder",
    "autocast_for",
    "checkpoint_dir_for",
    "create_image_encoder",
    "create_text_encoder",
    "default_num_workers",
    "embed_collection_ray",
    "embed_images",
    "embed_images_ray",
    "embedded_minilm_path",
    "encode_collection",
    "find_images",
    "find_tar_shards",
    "images_from_file_list",
    "images_from_folder",
    "images_from_tars",
    "input_dtype",
    "iterate_image_batches",
    "l2_normalize",
    "list_template_sets",
    "load_clip",
    "parse_text_encoder_spec",
    "read_collection",
    "read_regular_file",
    "resolve_device",
    "resolve_templates",
    "spec_from_description",
    "tar_samples",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static analysers see the real names
    from kec.encoders.base import TextEncoder, l2_normalize, resolve_device
    from kec.encoders.checkpoint import (
        CheckpointError,
        EmbeddingCheckpoint,
        checkpoint_dir_for,
    )
    from kec.encoders.clip import (
        ClipImageEncoder,
        ClipModel,
        ClipTextEncoder,
        autocast_for,
        input_dtype,
        load_clip,
    )
    from kec.encoders.collection import (
        CollectionError,
        TextCollection,
        encode_collection,
        read_collection,
    )
    from kec.encoders.defaults import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED
    from kec.encoders.factory import (
        EncoderSpecError,
        create_image_encoder,
        create_text_encoder,
        parse_text_encoder_spec,
        spec_from_description,
    )
    from kec.encoders.images import (
        ImageEmbeddings,
        ImageSource,
        ImageSourceError,
        NotARegularFileError,
        default_num_workers,
        embed_images,
        find_images,
        find_tar_shards,
        images_from_file_list,
        images_from_folder,
        iterate_image_batches,
        read_regular_file,
    )
    from kec.encoders.ray_engine import (
        RayEngineError,
        embed_collection_ray,
        embed_images_ray,
    )
    from kec.encoders.sbert import SentenceTransformerTextEncoder, embedded_minilm_path
    from kec.encoders.templates import (
        TemplateError,
        TemplateSet,
        list_template_sets,
        resolve_templates,
    )
    from kec.encoders.webdataset import TarMember, images_from_tars, tar_samples
