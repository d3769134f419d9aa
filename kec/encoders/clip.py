"""open_clip models: loading, and the image and text encoders built on one loaded model.

``pretrained`` may be an open_clip tag (``"openai"``, ``"laion2b_s34b_b79k"``), a local
checkpoint file, or ``None`` for random weights (tests). A model name starting with
``hf-hub:`` loads model and weights from the Hugging Face hub; its ``pretrained`` must
be ``None``. On CUDA the weights are cast to fp16 unless told otherwise; on CPU fp32.

Precisions are open_clip's: ``fp16``/``bf16`` cast the matmul and convolution weights
(not the embeddings), ``pure_fp16``/``pure_bf16`` every weight, and ``amp``/``amp_bf16``
keep float32 weights and run under ``torch.autocast``. Image batches are cast to
:func:`input_dtype` of the precision, the dtype of the first layer they meet.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kec._io import sha256_file
from kec.encoders.base import BatchedTextEncoder, l2_normalize, resolve_device
from kec.encoders.templates import TemplateSet, resolve_templates
from kec.errors import KecError

if TYPE_CHECKING:  # a type only: keeps this module light to import
    from kec.encoders.checkpoint import EmbeddingCheckpoint

logger = logging.getLogger(__name__)

HF_HUB_PREFIX = "hf-hub:"
KIND = "open_clip"
RANDOM_WEIGHTS_SEED = 0


def normalize_pretrained(pretrained: str | None) -> str | None:
    """``None``, ``""`` and ``"none"`` (any case) all mean random weights: ``None``."""
    if pretrained is None:
        return None
    text = str(pretrained).strip()
    return None if text.lower() in ("", "none") else text


@dataclass
class ClipModel:
    """A loaded open_clip model with what is needed to use and describe it.

    Attributes
    ----------
    model : torch.nn.Module
        The CLIP model, in eval mode, on ``device``.
    preprocess : callable
        The evaluation image transform (PIL image -> tensor).
    tokenizer : callable
        open_clip tokenizer for ``name``.
    name, pretrained : str, str or None
        As passed to :func:`load_clip` (``pretrained`` ``None`` = random weights).
    device, precision : str
        Torch device and ``"fp16"`` / ``"fp32"`` / ...
    dim : int
        Length of the joint embedding.
    checkpoint_sha256 : str or None
        Content hash when ``pretrained`` is a local file.
    """

    model: Any
    preprocess: Any
    tokenizer: Any
    name: str
    pretrained: str | None
    device: str
    precision: str
    dim: int
    checkpoint_sha256: str | None = None

    @property
    def dtype(self) -> Any:
        """The dtype that image batches must have: that of the low-precision weights.

        Not the dtype of the first parameter: open_clip's ``fp16``/``bf16`` casts only the
        matmul and convolution weights, so embeddings such as ``class_embedding`` stay
        float32 while ``conv1`` is half.
        """
        return input_dtype(self.precision)

    def autocast(self) -> Any:
        """The autocast context for this precision (a no-op unless ``amp``/``amp_bf16``)."""
        return autocast_for(self.precision, self.device)

    def describe(self) -> dict[str, Any]:
        """Provenance of the model, shared by its image and text encoders."""
        desc: dict[str, Any] = {
            "kind": KIND,
            "model": self.name,
            "pretrained": self.pretrained,
            "dim": self.dim,
            "precision": self.precision,
        }
        if self.checkpoint_sha256:
            desc["checkpoint_sha256"] = self.checkpoint_sha256
        return desc


# open_clip precisions -> dtype of the weights that meet the input (and of the input).
_CAST_DTYPES = {"fp16": "float16", "pure_fp16": "float16", "bf16": "bfloat16",
                "pure_bf16": "bfloat16"}
# Precisions that keep float32 weights and run under torch.autocast.
_AUTOCAST_DTYPES = {"amp": "float16", "amp_bf16": "bfloat16", "amp_bfloat16": "bfloat16"}
PRECISIONS = ("fp32", "fp16", "bf16", "pure_fp16", "pure_bf16", "amp", "amp_bf16",
              "amp_bfloat16")


def input_dtype(precision: str) -> Any:
    """The torch dtype that inputs of a model loaded with ``precision`` must be cast to.

    ``fp16``/``pure_fp16`` give ``torch.float16``, ``bf16``/``pure_bf16``
    ``torch.bfloat16``; ``fp32`` and the autocast precisions (``amp``, ``amp_bf16``)
    keep ``torch.float32`` weights, so their inputs stay float32.
    """
    import torch

    return getattr(torch, _CAST_DTYPES.get(precision, "float32"))


def autocast_for(precision: str, device: str) -> Any:
    """``torch.autocast`` on ``device`` for ``amp``/``amp_bf16``; a null context otherwise."""
    import contextlib

    import torch

    name = _AUTOCAST_DTYPES.get(precision)
    if name is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=getattr(torch, name))


def _embedding_dim(model: Any, tokenizer: Any, device: str) -> int:
    dim = getattr(getattr(model, "visual", None), "output_dim", None)
    if isinstance(dim, int):
        return dim
    import torch

    with torch.inference_mode():  # pragma: no cover - models without visual.output_dim
        return int(model.encode_text(tokenizer(["a"]).to(device)).shape[-1])


def load_clip(
    name: str,
    pretrained: str | None = None,
    *,
    device: str | None = None,
    precision: str | None = None,
) -> ClipModel:
    """Load an open_clip model for inference.

    Parameters
    ----------
    name : str
        open_clip model name (see ``open_clip.list_models()``), e.g.
        ``"ViT-B-32-quickgelu"``, or ``"hf-hub:ORG/REPO"``.
    pretrained : str or None
        Pretrained tag, checkpoint file, or ``None``/``"none"`` for random weights.
    device : str or None
        Torch device; ``None`` picks CUDA when available, else CPU.
    precision : str or None
        open_clip precision; ``None`` gives ``"fp16"`` on CUDA and ``"fp32"`` elsewhere.

    Raises
    ------
    kec.errors.KecError
        Unknown model or tag, unreadable checkpoint, or weights that cannot be fetched.
    """
    try:
        import open_clip
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise KecError("open_clip is not installed: pip install open_clip_torch") from exc

    pretrained = normalize_pretrained(pretrained)
    device = resolve_device(device)
    if precision is None:
        precision = "fp16" if device.startswith("cuda") else "fp32"
        logger.info("precision not given; using %s on %s", precision, device)
    if precision not in PRECISIONS:
        raise KecError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if name.startswith(HF_HUB_PREFIX) and pretrained is not None:
        raise KecError(
            f"model {name!r} comes with its weights from the Hugging Face hub; "
            f"do not also give pretrained={pretrained!r} (use 'none')"
        )
    checkpoint_sha256 = None
    if pretrained is not None and Path(pretrained).is_file():
        logger.info("hashing checkpoint %s", pretrained)
        checkpoint_sha256 = sha256_file(pretrained)

    logger.info("loading open_clip %s (pretrained=%s) on %s/%s", name, pretrained, device,
                precision)
    import torch

    try:
        # Random weights come from a fixed seed, so a "none" model is the same model in
        # every process (image and text features of a test run match); the global RNG
        # state is left untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, device=device, precision=precision
            )
        tokenizer = open_clip.get_tokenizer(name)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        reason = str(exc)
        if len(reason) > 300:  # open_clip lists every known model
            reason = reason[:300] + "... (see open_clip.list_models())"
        raise KecError(
            f"cannot load open_clip model {name!r} with pretrained={pretrained!r}: {reason}"
        ) from exc
    if pretrained is None and not name.startswith(HF_HUB_PREFIX):
        logger.warning("open_clip model %s has random weights (pretrained=none)", name)
    model.eval()
    dim = _embedding_dim(model, tokenizer, device)
    return ClipModel(
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer,
        name=name,
        pretrained=pretrained,
        device=device,
        precision=precision,
        dim=dim,
        checkpoint_sha256=checkpoint_sha256,
    )


class ClipTextEncoder(BatchedTextEncoder):
    """Encode texts with an open_clip text tower, optionally with a template ensemble.

    Parameters
    ----------
    clip : ClipModel
        A loaded model (share one between image and text encoders).
    templates : str, sequence of str, TemplateSet or None
        Prompt templates (e.g. ``"tac"``); ``None`` encodes texts as they are.
    batch_size : int
        Prompts per forward pass.
    """

    def __init__(
        self,
        clip: ClipModel,
        *,
        templates: str | Sequence[str] | TemplateSet | None = None,
        batch_size: int = 256,
    ):
        self.clip = clip
        self.dim = clip.dim
        self.batch_size = int(batch_size)
        self.templates = resolve_templates(templates)

    def _encode_batch(self, prompts: list[str]) -> np.ndarray:
        import torch

        tokens = self.clip.tokenizer(prompts).to(self.clip.device)
        with torch.inference_mode(), self.clip.autocast():
            feats = self.clip.model.encode_text(tokens)
        return feats.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        """Model provenance plus the template set (``None`` for raw texts)."""
        desc = self.clip.describe()
        desc["templates"] = self.templates.describe() if self.templates else None
        return desc

    def __repr__(self) -> str:
        return f"ClipTextEncoder({self.clip.name!r}, pretrained={self.clip.pretrained!r})"


class ClipImageEncoder:
    """Encode images with an open_clip image tower.

    Parameters
    ----------
    clip : ClipModel
        A loaded model.
    batch_size : int
        Images per forward pass.
    num_workers : int
        DataLoader worker processes that decode and preprocess image files.
    """

    def __init__(self, clip: ClipModel, *, batch_size: int = 64, num_workers: int = 0):
        self.clip = clip
        self.dim = clip.dim
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)

    def text_encoder(
        self, templates: str | Sequence[str] | TemplateSet | None = "tac", batch_size: int = 256
    ) -> ClipTextEncoder:
        """The matching text encoder, sharing this loaded model."""
        return ClipTextEncoder(self.clip, templates=templates, batch_size=batch_size)

    def describe(self) -> dict[str, Any]:
        """Model provenance plus the image preprocessing."""
        desc = self.clip.describe()
        desc["preprocess"] = " ".join(repr(self.clip.preprocess).split())
        image_size = getattr(getattr(self.clip.model, "visual", None), "image_size", None)
        if image_size is not None:
            desc["image_size"] = list(image_size) if isinstance(image_size, tuple) else image_size
        return desc

    def encode_batch(self, batch: Any) -> np.ndarray:
        """Encode a preprocessed ``(b, 3, H, W)`` tensor: float32 ``(b, dim)`` unit rows.

        The batch is cast to the model's input dtype (``fp16``/``bf16`` weights need
        ``fp16``/``bf16`` inputs) and copied asynchronously when it is in pinned memory.
        """
        import torch

        with torch.inference_mode(), self.clip.autocast():
            x = batch.to(self.clip.device, dtype=self.clip.dtype, non_blocking=True)
            feats = self.clip.model.encode_image(x)
        return l2_normalize(feats.float().cpu().numpy())

    _forward = encode_batch  # old private name

    def encode(self, images: Sequence[Any], *, progress: bool = False) -> np.ndarray:
        """Encode in-memory PIL images into an ``(n, dim)`` float32 array, unit-norm rows."""
        import torch
        from tqdm.auto import tqdm

        out = np.empty((len(images), self.dim), dtype=np.float32)
        starts = range(0, len(images), self.batch_size)
        for start in tqdm(starts, desc="encoding images", disable=not progress, leave=False):
            chunk = images[start : start + self.batch_size]
            batch = torch.stack([self.clip.preprocess(im.convert("RGB")) for im in chunk])
            out[start : start + len(chunk)] = self.encode_batch(batch)
        return out

    def encode_files(
        self,
        paths: Sequence[str | Path],
        *,
        progress: bool = False,
        ids: Sequence[str] | None = None,
        checkpoint: EmbeddingCheckpoint | None = None,
        breaks: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, list[int], list[tuple[int, str]]]:
        """Encode image files; unreadable ones are skipped, logged and returned.

        Files are read and decoded by ``num_workers`` DataLoader processes (pinned
        memory on CUDA) while this process runs the model.

        Parameters
        ----------
        paths : sequence of path-like
            Image files.
        progress : bool
            Show a tqdm progress bar.
        ids : sequence of str, optional
            Stable id of each path, the checkpoint key (default: the path).
        checkpoint : EmbeddingCheckpoint, optional
            Rows saved by an earlier run are reused when the file's content hash still
            matches; new rows are saved to it as batches complete (also on Ctrl-C).
        breaks : sequence of int, optional
            Indices where a new batch starts (WebDataset shard boundaries).

        Returns
        -------
        features : numpy.ndarray
            ``(n_ok, dim)`` float32, unit-norm rows, in the order of ``paths``.
        kept : list of int
            Index in ``paths`` of each row of ``features``.
        failed : list of (int, str)
            Index and error message of every file that could not be read.
        """
        from kec.encoders.images import iterate_image_batches

        n = len(paths)
        if ids is not None and len(ids) != n:
            raise ValueError(f"{len(ids)} ids for {n} paths")
        keys = [str(i) for i in ids] if ids is not None else [str(p) for p in paths]
        resuming = checkpoint is not None and len(checkpoint) > 0
        known = checkpoint.known_hashes(keys) if resuming else None  # type: ignore[union-attr]
        out = np.empty((n, self.dim), dtype=np.float32)
        done = np.zeros(n, dtype=bool)
        failed: list[tuple[int, str]] = []
        try:
            for item in iterate_image_batches(
                paths,
                self.clip.preprocess,
                batch_size=self.batch_size,
                num_workers=self.num_workers,
                progress=progress,
                pin_memory=self.clip.device.startswith("cuda"),
                hashes=checkpoint is not None,
                known=known,
                breaks=breaks,
            ):
                for idx, msg in item.errors:
                    logger.warning("skipping unreadable image %s: %s", paths[idx], msg)
                failed.extend(item.errors)
                for idx, digest in item.cached:
                    row = checkpoint.get(keys[idx], digest) if checkpoint is not None else None
                    if row is None:  # pragma: no cover - known hashes come from the checkpoint
                        raise RuntimeError(f"checkpoint lost the row of {keys[idx]}")
                    out[idx] = row
                    done[idx] = True
                if item.batch is not None:
                    feats = self.encode_batch(item.batch)
                    out[item.indices] = feats
                    done[item.indices] = True
                    if checkpoint is not None:
                        checkpoint.add([keys[i] for i in item.indices], item.sha256, feats)
        finally:
            if checkpoint is not None:
                checkpoint.flush()
        kept = np.flatnonzero(done).tolist()
        feats = out if len(kept) == n else out[kept]
        return feats, kept, failed

    def __repr__(self) -> str:
        return f"ClipImageEncoder({self.clip.name!r}, pretrained={self.clip.pretrained!r})"
