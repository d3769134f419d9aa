"""Text collections to cluster: reading ``text[<TAB>label]`` lines, and resumable encoding.

A collection file holds one item per line. Lines end at ``\\n`` only (a ``\\r`` before
it is dropped, so Windows files read the same); form feeds, vertical tabs, the
information separators ``\\x1c``-``\\x1e``, U+0085, U+2028 and U+2029 stay inside the
line, where they count as white space. :meth:`str.splitlines` would split there and
shift every later id.

Long collections are encoded in fixed blocks of ``batch_size`` items from the start of
the file; each block's rows go to an :class:`~kec.encoders.checkpoint.EmbeddingCheckpoint`
keyed by the item's id and the SHA-256 of its text, so a killed run loses at most the
rows not yet flushed, and the rerun encodes the same blocks: its result equals an
uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kec._io import split_lines
from kec.errors import KecError
from kec.knowledge.labels import clean_label

if TYPE_CHECKING:  # types only
    from kec.encoders.checkpoint import EmbeddingCheckpoint

logger = logging.getLogger(__name__)

#: characters of the text kept in an item's id (``<line>:<text>``)
ID_TEXT_CHARS = 120


class CollectionError(KecError):
    """A text collection file cannot be read, or a line is malformed."""


@dataclass
class TextCollection:
    """The items of a text collection file.

    Attributes
    ----------
    ids : list of str
        ``<line number>:<text>`` (text cut at :data:`ID_TEXT_CHARS` characters).
    texts : list of str
        The item texts, white space collapsed.
    labels : list of str or None
        One per item when every line has ``<TAB>label``.
    location : str
        The file.
    """

    ids: list[str]
    texts: list[str]
    labels: list[str] | None
    location: str

    def __len__(self) -> int:
        return len(self.texts)


def _bad_tabs(path: Path, bad: list[tuple[int, int]]) -> CollectionError:
    n, fields = bad[0]
    more = f" ({len(bad)} such lines: {', '.join(str(b[0]) for b in bad[:5])}" \
           f"{', ...' if len(bad) > 5 else ''})" if len(bad) > 1 else ""
    return CollectionError(
        f"{path}:{n}: {fields} TAB-separated fields; a line is 'text' or 'text<TAB>label' "
        f"(replace the TABs inside the text or the label by spaces){more}")


def parse_collection(text: str, location: str | os.PathLike[str] = "<text>") -> TextCollection:
    """Parse the lines of a collection: ``text`` or ``text<TAB>label``; blank lines skipped.

    Raises
    ------
    CollectionError
        A line with more than one TAB or an empty label (the message names the line),
        no item at all, or labels on some lines only.
    """
    path = Path(location)
    ids: list[str] = []
    texts: list[str] = []
    labels: list[str] = []
    unlabelled = 0
    bad_tabs: list[tuple[int, int]] = []
    for n, line in enumerate(split_lines(text), start=1):
        fields = line.split("\t")
        item = " ".join(fields[0].split())
        if not item:
            continue
        if len(fields) > 2:
            bad_tabs.append((n, len(fields)))
            continue
        ids.append(f"{n}:{item[:ID_TEXT_CHARS]}")
        texts.append(item)
        if len(fields) == 2:
            label = clean_label(fields[1])
            if not label:
                raise CollectionError(f"{path}:{n}: empty label after the TAB")
            labels.append(label)
        else:
            unlabelled += 1
    if bad_tabs:
        raise _bad_tabs(path, bad_tabs)
    if not texts:
        raise CollectionError(f"{path} holds no items (one text per line)")
    if labels and unlabelled:
        raise CollectionError(f"{path}: {len(labels)} items have a label and {unlabelled} "
                              "do not; label every line ('text<TAB>label') or none")
    return TextCollection(ids=ids, texts=texts, labels=labels or None, location=str(path))


def read_collection(path: str | os.PathLike[str]) -> TextCollection:
    """Read a UTF-8 collection file (a byte-order mark is allowed); see :func:`parse_collection`.

    Raises
    ------
    CollectionError
        The file cannot be read, is not UTF-8, or breaks a rule of :func:`parse_collection`.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CollectionError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CollectionError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    return parse_collection(text, path)


def text_sha256(text: str) -> str:
    """The content hash that keys a text's checkpointed row."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encode_collection(
    encoder: Any,
    ids: Sequence[str],
    texts: Sequence[str],
    *,
    checkpoint: EmbeddingCheckpoint | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Encode ``texts`` in blocks of ``encoder.batch_size``, saving each block's rows.

    Block ``b`` holds items ``[b * B, (b + 1) * B)`` whatever was saved before, so a
    resumed run encodes the same blocks as an uninterrupted one and gets the same rows.
    A row saved in ``checkpoint`` under the item's id with the SHA-256 of the same text
    is reused; the other items of the block are encoded.

    Parameters
    ----------
    encoder : TextEncoder
        Has ``encode(texts)``, ``dim`` and ``batch_size``.
    ids, texts : sequence of str
        One id (the checkpoint key) per text.
    checkpoint : EmbeddingCheckpoint, optional
        Saved rows; new rows are added as blocks complete and flushed on the way out
        (also on Ctrl-C).
    progress : bool
        Show a tqdm progress bar (on stderr).

    Returns
    -------
    numpy.ndarray
        ``(n, dim)`` float32 rows in the order of ``texts``.
    """
    from tqdm.auto import tqdm

    if len(ids) != len(texts):
        raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
    n = len(texts)
    block = max(1, int(getattr(encoder, "batch_size", 256)))
    out = np.empty((n, encoder.dim), dtype=np.float32)
    reused = 0
    bar = tqdm(total=n, desc="encoding texts", unit="text", disable=not progress, leave=False)
    try:
        for start in range(0, n, block):
            stop = min(n, start + block)
            hashes = [text_sha256(t) for t in texts[start:stop]]
            todo = []
            for k, (i, h) in enumerate(zip(ids[start:stop], hashes, strict=True)):
                row = checkpoint.get(i, h) if checkpoint is not None else None
                if row is None:
                    todo.append(k)
                else:
                    out[start + k] = row
            reused += stop - start - len(todo)
            if todo:
                feats = encoder.encode([texts[start + k] for k in todo])
                out[[start + k for k in todo]] = feats
                if checkpoint is not None:
                    checkpoint.add([ids[start + k] for k in todo], [hashes[k] for k in todo],
                                   feats)
            bar.update(stop - start)
    finally:
        bar.close()
        if checkpoint is not None:
            checkpoint.flush()
    if reused:
        logger.info("reused %d of %d rows from %s", reused, n, checkpoint.folder)
    return out
