"""``kec.build_knowledge``: the one way to build a knowledge document, from labels or
label groups, with an LLM backend. ``kec knowledge build`` calls it.

It makes the backend and (when needed) the text encoder from their names, checks the
prompt templates before loading any model, and reads and writes the same LLM answer
cache as the command line (``default_cache_dir()``: ``$KEC_CACHE_DIR`` or
``~/.cache/kec``), unless ``cache=False``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from kec.errors import KecError


def read_label_file(path: str | os.PathLike[str]) -> list[str]:
    """The labels of ``kec knowledge build --labels FILE``: one label per line, or, for a
    text collection (``text<TAB>label`` lines, as ``kec embed collection`` reads), its
    distinct labels in first-seen order.

    Raises
    ------
    KecError
        The file cannot be read, a collection line is malformed, or a collection has
        lines without a label.
    """
    from kec.knowledge.labels import read_labels, unique_labels

    if not is_collection_file(path):
        return read_labels(path)  # an unreadable file: its own one-line error
    from kec.encoders.collection import read_collection

    labels = read_collection(path).labels  # a line without a label is refused there
    return unique_labels(labels or [])


def is_collection_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` reads as a text collection (a ``text<TAB>label`` line), not a plain
    label list: ``kec knowledge build --labels`` then builds knowledge for text items."""
    from pathlib import Path

    try:
        text = Path(path).read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return False
    return any("\t" in ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))


def build_knowledge(
    labels: Sequence[str] | None = None,
    *,
    groups: Sequence[Sequence[str]] | None = None,
    backend: str = "llamacpp",
    backend_options: Mapping[str, Any] | None = None,
    text_encoder: Any = "minilm",
    params: Any = None,
    temperature: float = 0.0,
    max_tokens: int = 384,
    seed: int = 0,
    template_dir: str | os.PathLike[str] | None = None,
    max_repairs: int = 2,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    source: str | None = None,
    progress: bool | None = False,
    kind: str = "images",
) -> dict[str, Any]:
    """Build a knowledge document (KEC's concepts, attributes, pairs; docs/methods.md §2)
    from ``labels`` or ``groups`` with an LLM.

    Parameters
    ----------
    labels : sequence of str, optional
        Labels to group (by WordNet and text similarity) and condense.
    groups : sequence of sequence of str, optional
        Label groups, condensed as given (``kec scaffold``'s groups); exactly one of
        ``labels`` and ``groups``.
    backend : str
        LLM backend name (``kec.backends.backend_names()``); ``"llamacpp"``: the
        embedded SmolLM2, offline.
    backend_options : mapping, optional
        The backend's options (``model``, ``base_url``, ``api_key_env``,
        ``concurrency``, ``timeout``, ``max_retries``, ``structured_output``); ``None``
        values fall back to the backend's defaults. ``seed`` is added.
    text_encoder : str, object or None
        Groups labels and pairs concepts: a spec (``"minilm"``) or an object with
        ``encode``; made only when needed.
    params : BuildParams or mapping, optional
        :class:`kec.llm.builder.BuildParams` (or its fields as a dict).
    temperature, max_tokens, seed
        LLM sampling (``temperature=0``: greedy, reproducible).
    template_dir : path, optional
        Prompt templates overriding the built-in ones.
    max_repairs : int
        Repair round-trips for an answer that breaks its schema.
    cache : bool
        Read and write the LLM answer cache (``False``: neither).
    cache_dir : path, optional
        The cache folder; ``None``: the command line's default
        (:func:`kec.backends.cache.default_cache_dir`).
    source : str, optional
        Recorded in ``labels.source`` (default ``"list"``, or ``"groups"``).
    progress : bool or None
        Progress bars (``None``: when stderr is a terminal).
    kind : {"images", "items"}
        What the knowledge will ground: images, or the items of a text collection; picks
        the prompt set (:data:`kec.prompts.PROMPT_SETS`: how things look in photos, or
        what texts are about) and is recorded in ``provenance.kind``.

    Returns
    -------
    dict
        The knowledge document, valid against its schema (write it with
        :func:`kec.knowledge.document.save_knowledge`).

    Raises
    ------
    KecError
        Neither or both of ``labels`` and ``groups``, a bad parameter, a broken prompt
        template (all before any model is loaded), or a backend error.
    """
    from kec.backends import create_backend
    from kec.backends.base import SamplingParams
    from kec.backends.cache import default_cache_dir
    from kec.llm.builder import BuildParams, KnowledgeBuilder
    from kec.prompts import load_prompt, prompt_ids

    if (labels is None) == (groups is None):
        raise KecError("give labels=... or groups=..., one of them")
    if params is None:
        params = BuildParams()
    elif isinstance(params, Mapping):
        params = BuildParams(**params)
    params.validate()
    if max_tokens < 1:
        raise KecError(f"max_tokens must be >= 1, got {max_tokens}")
    sampling = SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
    for pid in prompt_ids(kind).values():  # fail on a bad template or kind before any model
        load_prompt(pid, template_dir)
    needs_encoder = groups is None or (params.max_pairs_per_concept > 0
                                       and params.n_pair_attributes > 0)
    encoder = text_encoder if needs_encoder else None
    if isinstance(encoder, str):
        from kec.encoders import create_text_encoder

        encoder = create_text_encoder(encoder)
    folder = (cache_dir if cache_dir is not None else default_cache_dir()) if cache else None
    options = {**dict(backend_options or {}), "seed": seed}
    with create_backend(backend, **options) as llm:
        builder = KnowledgeBuilder(llm, encoder, cache_dir=folder, sampling=sampling,
                                   params=params, template_dir=template_dir,
                                   max_repairs=max_repairs, progress=progress, kind=kind)
        return builder.build(labels=labels, groups=groups,
                             source=source or ("list" if groups is None else "groups"))


__all__ = ["build_knowledge", "is_collection_file", "read_label_file"]
