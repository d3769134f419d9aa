"""What every kec encoder provides, and small helpers shared by the implementations."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from kec.protocols import DescribedTextEncoder

logger = logging.getLogger(__name__)


#: The text-encoder protocol, defined once in :mod:`kec.protocols` (``dim`` and
#: ``describe()`` included); re-exported here for the encoders.
TextEncoder = DescribedTextEncoder


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Return ``x`` as float32 with every row scaled to unit L2 norm (zero rows stay zero).

    Parameters
    ----------
    x : numpy.ndarray
        Array of shape ``(n, d)``.
    eps : float
        Norms below ``eps`` are treated as ``eps`` (avoids division by zero).
    """
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32, copy=False)


def batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Yield consecutive slices of ``items`` of at most ``size`` elements."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def resolve_device(device: str | None = None) -> str:
    """Pick the torch device: ``device`` if given, else ``"cuda"`` when available, else CPU.

    Parameters
    ----------
    device : str or None
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ... or ``None`` for automatic.
    """
    if device:
        return str(device)
    import torch

    chosen = "cuda" if torch.cuda.is_available() else "cpu"
    logger.info("device not given; using %s", chosen)
    return chosen


def check_texts(texts: Sequence[str]) -> list[str]:
    """Validate the input of :meth:`TextEncoder.encode` and return it as a list."""
    if isinstance(texts, str):
        raise TypeError("encode() takes a sequence of strings, not a single string")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, expected str")
    return out


class BatchedTextEncoder:
    """Shared ``encode`` logic: batching, prompt-template ensembles, progress, normalisation.

    Subclasses implement :meth:`_encode_batch` (prompts in, one raw vector per prompt out)
    and set ``dim``, ``batch_size`` and ``templates``.
    """

    dim: int
    batch_size: int
    templates: Any  # kec.encoders.templates.TemplateSet | None

    def _encode_batch(self, prompts: list[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def with_templates(self, templates: Any) -> BatchedTextEncoder:
        """A copy sharing the loaded model, with other prompt templates.

        Parameters
        ----------
        templates : str, sequence of str, TemplateSet or None
            As accepted by :func:`kec.encoders.templates.resolve_templates`.
        """
        from kec.encoders.templates import resolve_templates

        clone = copy.copy(self)
        clone.templates = resolve_templates(templates)
        return clone

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Encode ``texts`` into an ``(n, dim)`` float32 array with unit-norm rows.

        With a template set, each text is put into every template, the prompt embeddings
        are normalised, averaged and the mean renormalised.

        Parameters
        ----------
        texts : sequence of str
            The texts; an empty sequence gives an array of shape ``(0, dim)``.
        progress : bool
            Show a tqdm progress bar (on stderr).
        """
        items = check_texts(texts)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        if not items:
            return out
        n_templates = len(self.templates.templates) if self.templates is not None else 1
        per_batch = max(1, self.batch_size // n_templates)
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(items), desc="encoding texts", unit="text", disable=not progress,
            leave=False,
        )
        try:
            for start in range(0, len(items), per_batch):
                chunk = items[start : start + per_batch]
                if self.templates is None:
                    emb = l2_normalize(self._encode_batch(chunk))
                else:
                    prompts = [p for t in chunk for p in self.templates.fill(t)]
                    emb = l2_normalize(self._encode_batch(prompts))
                    emb = emb.reshape(len(chunk), n_templates, self.dim).mean(axis=1)
                    emb = l2_normalize(emb)
                out[start : start + len(chunk)] = emb
                bar.update(len(chunk))
        finally:
            bar.close()
        return out
