"""Undo history for :mod:`core.editing`: cropped, bit-packed slice diffs in a byte-bounded stack.

An :class:`UndoEntry` is one user action (one brush drag, one slice tool, one "accept AI mask"). It holds one
:class:`SliceDiff` per touched slice: the half-open bounding box of the changed pixels and the old and new pixels
inside it, packed 8 per byte (``np.packbits``) and zlib-compressed when that is worth it. Memory therefore scales
with the area an edit changed, not with the volume.

:class:`UndoHistory` is the pair of undo / redo stacks. It evicts the oldest entries once the history holds more
than ``max_bytes``, but keeps the newest ``min_steps`` entries as long as they fit in ``hard_max_bytes``; the
newest entry is never evicted (the last action can always be undone).
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from core.editing._brush import diff_bbox

#: Packed payloads at least this large are zlib-compressed (level 1) when that makes them smaller.
COMPRESS_FROM_BYTES = 4096
#: Book-keeping bytes charged per entry and per slice diff (Python objects), on top of the pixel payloads.
ENTRY_OVERHEAD_BYTES = 256
DIFF_OVERHEAD_BYTES = 160

_revision_ids = itertools.count(1)


def new_revision() -> int:
    """A process-wide unique revision id (used for entries and per-slice content revisions)."""
    return next(_revision_ids)


@dataclass(frozen=True)
class PackedBits:
    """A 2-D 0/1 array of shape ``(rows, cols)`` stored as packed bits, optionally zlib-compressed."""

    rows: int
    cols: int
    data: bytes
    compressed: bool

    @classmethod
    def pack(cls, array2d: np.ndarray) -> "PackedBits":
        """Pack a 2-D array whose nonzero entries mean 1."""
        rows, cols = array2d.shape
        raw = np.packbits(array2d != 0, axis=None).tobytes()
        if len(raw) >= COMPRESS_FROM_BYTES:
            small = zlib.compress(raw, 1)
            if len(small) < len(raw):
                return cls(int(rows), int(cols), small, True)
        return cls(int(rows), int(cols), raw, False)

    def unpack(self) -> np.ndarray:
        """The ``(rows, cols)`` uint8 0/1 array."""
        raw = zlib.decompress(self.data) if self.compressed else self.data
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=self.rows * self.cols)
        return bits.reshape(self.rows, self.cols)

    @property
    def nbytes(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Region:
    """What changed: slice ``slice_index``, rows ``[row0, row1)`` and columns ``[col0, col1)`` (half-open)."""

    slice_index: int
    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def index(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices for indexing a 2-D slice array."""
        return slice(self.row0, self.row1), slice(self.col0, self.col1)


@dataclass(frozen=True)
class SliceDiff:
    """Old and new pixels of ``slice_index`` inside the half-open box ``[row0:row1, col0:col1]``.

    ``old_revision`` / ``new_revision`` are the slice's content revisions before and after the edit (used to
    tell which slices differ from the saved state).
    """

    slice_index: int
    row0: int
    row1: int
    col0: int
    col1: int
    old: PackedBits
    new: PackedBits
    old_revision: int
    new_revision: int

    @property
    def nbytes(self) -> int:
        return self.old.nbytes + self.new.nbytes + DIFF_OVERHEAD_BYTES

    @property
    def region(self) -> Region:
        return Region(self.slice_index, self.row0, self.row1, self.col0, self.col1)


def make_slice_diff(i: int, old: np.ndarray, new: np.ndarray, row_offset: int, col_offset: int,
                    old_revision: int) -> Optional[SliceDiff]:
    """Cropped diff of slice ``i`` between ``old`` and ``new``: equal-shape 2-D uint8 0/1 arrays that sit at
    ``(row_offset, col_offset)`` on the slice. ``None`` when they are equal. The new content gets a fresh
    revision."""
    box = diff_bbox(old, new)
    if box is None:
        return None
    r0, r1, c0, c1 = box
    return SliceDiff(i, r0 + row_offset, r1 + row_offset, c0 + col_offset, c1 + col_offset,
                     PackedBits.pack(old[r0:r1, c0:c1]), PackedBits.pack(new[r0:r1, c0:c1]),
                     int(old_revision), new_revision())


@dataclass
class UndoEntry:
    """One undoable action.

    ``revision`` identifies the editor state right after this action; ``review_changes`` maps a slice to the
    ``(before, after)`` review states the action set automatically (undo restores ``before`` only if the state
    is still ``after``).
    """

    label: str
    diffs: list[SliceDiff]
    revision: int
    review_changes: dict[int, tuple[str, str]] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return ENTRY_OVERHEAD_BYTES + len(self.label) + sum(d.nbytes for d in self.diffs)

    @property
    def slices(self) -> list[int]:
        return [d.slice_index for d in self.diffs]


class UndoHistory:
    """Undo and redo stacks of :class:`UndoEntry`, bounded by bytes.

    ``revision`` is the id of the current state: the newest undo entry's ``revision``, or ``base_revision``
    (the state below the oldest kept entry) when nothing is left to undo.
    """

    def __init__(self, max_bytes: int, min_steps: int, hard_max_bytes: Optional[int] = None):
        if max_bytes <= 0:
            raise ValueError(f"max_undo_bytes must be positive, got {max_bytes}")
        if min_steps < 0:
            raise ValueError(f"min_undo_steps must be >= 0, got {min_steps}")
        self.max_bytes = int(max_bytes)
        self.min_steps = int(min_steps)
        self.hard_max_bytes = int(hard_max_bytes) if hard_max_bytes is not None else 2 * self.max_bytes
        self._undo: list[UndoEntry] = []
        self._redo: list[UndoEntry] = []
        self._undo_bytes = 0
        self._redo_bytes = 0
        self.base_revision = new_revision()

    # ----------------------------------------------------------------------------------------------- queries
    @property
    def revision(self) -> int:
        return self._undo[-1].revision if self._undo else self.base_revision

    @property
    def nbytes(self) -> int:
        return self._undo_bytes + self._redo_bytes

    @property
    def undo_steps(self) -> int:
        return len(self._undo)

    @property
    def redo_steps(self) -> int:
        return len(self._redo)

    def peek_undo(self) -> Optional[UndoEntry]:
        return self._undo[-1] if self._undo else None

    def peek_redo(self) -> Optional[UndoEntry]:
        return self._redo[-1] if self._redo else None

    # ------------------------------------------------------------------------------------------------ changes
    def push(self, entry: UndoEntry) -> None:
        """Record a new action: clears the redo stack, then evicts old entries beyond the byte bounds."""
        self._redo.clear()
        self._redo_bytes = 0
        self._undo.append(entry)
        self._undo_bytes += entry.nbytes
        self._evict()

    def pop_undo(self) -> Optional[UndoEntry]:
        """Move the newest undo entry onto the redo stack and return it (``None`` when empty)."""
        if not self._undo:
            return None
        entry = self._undo.pop()
        self._undo_bytes -= entry.nbytes
        self._redo.append(entry)
        self._redo_bytes += entry.nbytes
        return entry

    def pop_redo(self) -> Optional[UndoEntry]:
        """Move the newest redo entry back onto the undo stack and return it (``None`` when empty)."""
        if not self._redo:
            return None
        entry = self._redo.pop()
        self._redo_bytes -= entry.nbytes
        self._undo.append(entry)
        self._undo_bytes += entry.nbytes
        return entry

    def _evict(self) -> None:
        # Oldest first: over the soft bound, drop entries beyond the newest ``min_steps``; over the hard bound,
        # drop anything but the newest entry.
        drop = 0
        total = self._undo_bytes
        n = len(self._undo)
        while n - drop > 1:
            over_soft = total > self.max_bytes and n - drop > self.min_steps
            over_hard = total > self.hard_max_bytes
            if not (over_soft or over_hard):
                break
            total -= self._undo[drop].nbytes
            drop += 1
        if drop:
            self.base_revision = self._undo[drop - 1].revision
            del self._undo[:drop]
            self._undo_bytes = total
