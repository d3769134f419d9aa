"""Default encoder choices, in a module light enough for the CLI to import at start-up."""

from __future__ import annotations

DEFAULT_CLIP_MODEL = "ViT-B-32-quickgelu"
DEFAULT_CLIP_PRETRAINED = "openai"
