"""Image and text encoders (open_clip, sentence-transformers) with one factory per concern.

>>> enc = create_text_encoder()                     # offline all-MiniLM-L6-v2
>>> enc.encode(["a cat", "a truck"]).shape
(2, 384)
>>> img = create_image_encoder("ViT-B-32-quickgelu", "openai")  # doctest: +SKIP
>>> txt = img.text_encoder(templates="tac")                      # same loaded model
"""

from kec.encoders.base import TextEncoder, l2_normalize, resolve_device
from kec.encoders.clip import ClipImageEncoder, ClipModel, ClipTextEncoder, load_clip
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
    embed_images,
    find_images,
    images_from_file_list,
    images_from_folder,
)
from kec.encoders.sbert import SentenceTransformerTextEncoder, embedded_minilm_path
from kec.encoders.templates import TemplateError, TemplateSet, list_template_sets, resolve_templates

__all__ = [
    "ClipImageEncoder",
    "ClipModel",
    "ClipTextEncoder",
    "EncoderSpecError",
    "ImageEmbeddings",
    "ImageSource",
    "ImageSourceError",
    "SentenceTransformerTextEncoder",
    "TemplateError",
    "TemplateSet",
    "TextEncoder",
    "create_image_encoder",
    "create_text_encoder",
    "embed_images",
    "embedded_minilm_path",
    "find_images",
    "images_from_file_list",
    "images_from_folder",
    "l2_normalize",
    "list_template_sets",
    "load_clip",
    "parse_text_encoder_spec",
    "resolve_device",
    "resolve_templates",
    "spec_from_description",
]
