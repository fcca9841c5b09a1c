"""``MaskEditor``: the one owner of an editable heart mask and of its undo history.

The mask is a ``(n_slices, rows, cols)`` C-contiguous ``uint8`` array of 0/1 indexed ``[slice, row, col]``
(see :mod:`core.types`). Views and jobs only ever get read-only views (:attr:`MaskEditor.mask`,
:meth:`MaskEditor.slice_mask`) or copies (:meth:`MaskEditor.copy_mask`); every change goes through a method here
and is undoable:

* painting: :meth:`~MaskEditor.begin_stroke` / :meth:`~MaskEditor.stroke_to` / :meth:`~MaskEditor.end_stroke`;
  one drag is one undo step ("Brush stroke" / "Eraser stroke"); stamps are interpolated between mouse events.
  Brush coordinates are pixel-centred (see :mod:`core.editing._brush`).
* slice tools: :meth:`~MaskEditor.set_slices` (e.g. accept the AI mask), :meth:`~MaskEditor.clear_slice`,
  :meth:`~MaskEditor.fill_holes`, :meth:`~MaskEditor.keep_largest_region`, :meth:`~MaskEditor.copy_slice`;
  each one undo step. Slice numbers in the labels the editor makes are 1-based, as shown to the user.
* correction tools: :meth:`~MaskEditor.interpolate_slices` (fill between key slices, see
  :mod:`core.editing._interpolate`), :meth:`~MaskEditor.begin_limited_stroke` (threshold-limited brush,
  :mod:`core.editing._threshold`), :meth:`~MaskEditor.smooth_mask`, :meth:`~MaskEditor.remove_small_islands`,
  :meth:`~MaskEditor.keep_largest_3d_region` (3-D clean-up, :mod:`core.editing._cleanup`); each one undo step.

Undo entries are cropped diffs (see :mod:`core.editing._history`), so a brush stroke costs bytes in proportion to
the area it changed. Every mutating method returns the :class:`Region` (or list of regions) that changed so
views redraw only that.

Review states (:data:`REVIEW_STATES`) are per slice. Setting one by hand (:meth:`~MaskEditor.set_review_state`)
is *not* an undo step. A brush stroke or slice tool that changes a slice marks it ``"corrected"`` unless it is
``"flagged"``; that automatic change *is* part of the edit's undo step (undo restores the earlier state if the
slice still shows the one the edit set). ``set_slices`` leaves review states alone unless asked
(``review_state=``).

Not thread-safe: use from the GUI thread only; hand jobs a :meth:`~MaskEditor.copy_mask`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from core.editing._brush import check_radius, line_points
from core.editing._cleanup import CleanupMixin
from core.editing._history import PackedBits, Region, SliceDiff, UndoEntry, UndoHistory, make_slice_diff, new_revision
from core.editing._interpolate import InterpolateMixin
from core.editing._journal import JournalMixin
from core.editing._plane_stroke import PlaneStroke, check_plane
from core.editing._review import REVIEW_STATES, ReviewStatesMixin
from core.editing._slice_tools import SliceToolsMixin
from core.editing._stroke import Stroke
from core.editing._threshold import ThresholdMixin
from core.editing._tools import as_binary

__all__ = ["REVIEW_STATES", "Region", "MaskEditor", "line_points"]


class MaskEditor(SliceToolsMixin, InterpolateMixin, ThresholdMixin, CleanupMixin, ReviewStatesMixin,
                 JournalMixin):
    """Owns a ``(n_slices, rows, cols)`` uint8 0/1 mask, its undo history, review states and saved-state tracking.

    ``initial`` (same shape; any dtype, nonzero means 1) is copied; without it the mask starts empty. The undo
    history is kept below ``max_undo_bytes`` except that the newest ``min_undo_steps`` entries are kept as long
    as they fit in ``hard_max_undo_bytes`` (default twice ``max_undo_bytes``); the newest entry is always kept.
    """

    def __init__(self, shape: tuple[int, int, int], initial: Optional[np.ndarray] = None, *,
                 max_undo_bytes: int = 256 * 2**20, min_undo_steps: int = 100,
                 hard_max_undo_bytes: Optional[int] = None):
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or min(shape) <= 0:
            raise ValueError(f"MaskEditor needs a (n_slices, rows, cols) shape with positive sizes, got {shape}")
        self._shape: tuple[int, int, int] = shape  # type: ignore[assignment]
        if initial is None:
            self._mask = np.zeros(shape, dtype=np.uint8)
        else:
            initial = np.asarray(initial)
            if initial.shape != shape:
                raise ValueError(f"initial mask shape {initial.shape} differs from the editor's {shape}")
            self._mask = np.ascontiguousarray(initial != 0, dtype=np.uint8)
        self._view = self._mask.view()
        self._view.flags.writeable = False
        self._history = UndoHistory(max_undo_bytes, min_undo_steps, hard_max_undo_bytes)
        n = shape[0]
        self._slice_rev = np.zeros(n, dtype=np.int64)
        self._saved_slice_rev = self._slice_rev.copy()
        self._saved_revision = self._history.revision
        self._review = ["not_reviewed"] * n
        self._saved_review = list(self._review)
        self._area = np.full(n, -1, dtype=np.int64)
        self._stroke: Optional[Stroke] = None
        self._plane_stroke: Optional[PlaneStroke] = None  # a drag in a coronal / sagittal plane
        self._journal_cache: dict[int, tuple[int, str]] = {}  # slice -> (content revision, journal text)

    # ------------------------------------------------------------------------------------------- the mask
    @property
    def shape(self) -> tuple[int, int, int]:
        return self._shape

    @property
    def n_slices(self) -> int:
        return self._shape[0]

    @property
    def mask(self) -> np.ndarray:
        """Read-only live view of the working mask, ``(n_slices, rows, cols)`` uint8 0/1 (it changes with edits)."""
        return self._view

    def slice_mask(self, i: int) -> np.ndarray:
        """Read-only live view of slice ``i``, ``(rows, cols)`` uint8 0/1."""
        return self._view[self._check_index(i)]

    def copy_mask(self) -> np.ndarray:
        """A writable copy of the whole working mask (what jobs and writers get)."""
        return self._mask.copy()

    def area_px(self, i: int) -> int:
        """Number of mask pixels on slice ``i``."""
        i = self._check_index(i)
        if self._area[i] < 0:
            self._area[i] = int(np.count_nonzero(self._mask[i]))
        return int(self._area[i])

    def areas_px(self) -> np.ndarray:
        """Number of mask pixels on every slice, ``(n_slices,)`` int64 (counted only where a slice changed)."""
        for i in np.flatnonzero(self._area < 0):
            self.area_px(int(i))
        return self._area.copy()

    def total_voxels(self) -> int:
        """Number of mask voxels in the volume (multiply by ``Volume.voxel_volume_ml()`` for millilitres)."""
        return int(self.areas_px().sum())

    # --------------------------------------------------------------------------------------------- painting
    @property
    def stroke_active(self) -> bool:
        return self._stroke is not None or self._plane_stroke is not None

    def begin_stroke(self, slice_index: int, *, erase: bool, radius: float) -> None:
        """Start a drag on ``slice_index`` (painting 1s, or 0s with ``erase``) with a disc brush of ``radius`` px.

        A stroke still open is committed first.
        """
        i = self._check_index(slice_index)
        radius = check_radius(radius)
        self._finish_stroke()
        self._stroke = Stroke(i, bool(erase), radius, self._mask[i].copy())

    def stroke_to(self, row: float, col: float) -> Optional[Region]:
        """Stamp the brush at ``(row, col)`` (pixel-centred, sub-pixel, may be off the slice) and along the
        segment from the previous point, stamps at most ``radius/2`` apart so fast drags leave no gaps.

        Returns the bounding box stamped by this call (clipped to the slice), or ``None`` if nothing was stamped.
        """
        s = self._stroke
        if s is None:
            raise RuntimeError("stroke_to() called without begin_stroke()")
        bbox = s.stamp_to(self._mask[s.slice_index], row, col)
        if bbox is None:
            return None
        self._area[s.slice_index] = -1
        return Region(s.slice_index, *bbox)

    def end_stroke(self) -> Optional[Region]:
        """Finish the drag: one undo entry ("Brush stroke" / "Eraser stroke") holding the pixels it changed.

        Returns the bounding box of the changed pixels, or ``None`` (and no entry) when nothing changed.
        """
        return self._finish_stroke()

    # -------------------------------------------------------------------------- painting in another plane
    def begin_plane_stroke(self, plane: str, index: int, *, erase: bool, radius: float) -> None:
        """Start a drag in ``plane`` (``"axial"``, ``"coronal"``, ``"sagittal"``) at ``index`` (the slice, the
        row or the column of the volume; see :mod:`core.editing._plane_stroke` for the plane's 2-D axes). Points
        go to :meth:`plane_stroke_to` in the plane's pixel units; :meth:`end_stroke` commits it as one undo step
        with one cropped diff per axial slice changed, each of them marked ``"corrected"`` (unless flagged)."""
        plane, index = check_plane(plane, index, self._shape)
        radius = check_radius(radius)
        self._finish_stroke()
        self._plane_stroke = PlaneStroke.start(self._mask, plane, index, bool(erase), radius)

    def plane_stroke_to(self, row: float, col: float) -> list[Region]:
        """Stamp the plane stroke at plane position ``(row, col)`` (pixel-centred), interpolated from the previous
        point like :meth:`stroke_to`. Returns the axial regions stamped by this call (empty: nothing)."""
        p = self._plane_stroke
        if p is None:
            raise RuntimeError("plane_stroke_to() called without begin_plane_stroke()")
        regions = p.stamp_to(self._mask, row, col)
        for r in regions:
            self._area[r.slice_index] = -1
        return regions

    def _finish_plane_stroke(self) -> list[Region]:
        p = self._plane_stroke
        self._plane_stroke = None
        if p is None or not p.touched:
            return []
        diffs = [d for i, old, new, r_off, c_off in p.slice_changes(self._mask)
                 if (d := self._make_diff(i, old, new, r_off, c_off)) is not None]
        if diffs:
            self._record(p.label, diffs, auto_correct=True)
        for i in p.touched_slices():
            self._area[i] = -1
        return [d.region for d in diffs]

    def cancel_stroke(self) -> Optional[Region]:
        """Abandon the open drag (e.g. Escape): restore the slice as it was, record nothing."""
        if self._plane_stroke is not None:
            p, self._plane_stroke = self._plane_stroke, None
            regions = p.restore(self._mask)
            for r in regions:
                self._area[r.slice_index] = -1
            return regions[0] if len(regions) == 1 else None
        s = self._stroke
        self._stroke = None
        if s is None or s.bbox is None:
            return None
        r0, r1, c0, c1 = s.bbox
        self._mask[s.slice_index, r0:r1, c0:c1] = s.snapshot[r0:r1, c0:c1]
        self._area[s.slice_index] = -1
        return Region(s.slice_index, r0, r1, c0, c1)

    def _finish_stroke(self) -> Optional[Region]:
        self._finish_plane_stroke()
        s = self._stroke
        self._stroke = None
        if s is None or s.bbox is None:
            return None
        r0, r1, c0, c1 = s.bbox
        diff = self._make_diff(s.slice_index, s.snapshot[r0:r1, c0:c1], self._mask[s.slice_index, r0:r1, c0:c1],
                               r0, c0)
        if diff is None:
            return None
        self._record(s.label, [diff], auto_correct=True)
        return diff.region

    # ---------------------------------------------------------------------------------------------- history
    def undo(self) -> list[Region]:
        """Undo the newest step (an open stroke is committed first); returns the regions it restored."""
        self._finish_stroke()
        entry = self._history.pop_undo()
        if entry is None:
            return []
        for d in entry.diffs:
            self._write(d, d.old, d.old_revision)
        for i, (before, after) in entry.review_changes.items():
            if self._review[i] == after:
                self._review[i] = before
        return [d.region for d in entry.diffs]

    def redo(self) -> list[Region]:
        """Redo the newest undone step; returns the regions it changed."""
        self._finish_stroke()
        entry = self._history.pop_redo()
        if entry is None:
            return []
        for d in entry.diffs:
            self._write(d, d.new, d.new_revision)
        for i, (before, after) in entry.review_changes.items():
            if self._review[i] == before:
                self._review[i] = after
        return [d.region for d in entry.diffs]

    @property
    def can_undo(self) -> bool:
        return self._history.undo_steps > 0 or (self._stroke is not None and self._stroke.touched) \
            or (self._plane_stroke is not None and self._plane_stroke.touched)

    @property
    def can_redo(self) -> bool:
        return self._history.redo_steps > 0

    @property
    def undo_label(self) -> Optional[str]:
        """Label of the step :meth:`undo` would undo (e.g. "Brush stroke"), or ``None``."""
        if self._stroke is not None and self._stroke.touched:
            return self._stroke.label
        if self._plane_stroke is not None and self._plane_stroke.touched:
            return self._plane_stroke.label
        entry = self._history.peek_undo()
        return entry.label if entry else None

    @property
    def redo_label(self) -> Optional[str]:
        entry = self._history.peek_redo()
        return entry.label if entry else None

    @property
    def undo_steps(self) -> int:
        return self._history.undo_steps

    @property
    def redo_steps(self) -> int:
        return self._history.redo_steps

    @property
    def undo_bytes(self) -> int:
        """Bytes held by the undo and redo stacks (pixel payloads plus a fixed per-entry overhead)."""
        return self._history.nbytes

    # ------------------------------------------------------------------------------------- saved / unsaved
    @property
    def revision(self) -> int:
        """Id of the current mask state: equal ids mean equal masks (undo returns to an earlier id)."""
        return self._history.revision

    @property
    def mask_modified(self) -> bool:
        """The mask differs from the state at the last :meth:`mark_saved` (or construction)."""
        if self._stroke is not None and self._stroke.touched \
                or self._plane_stroke is not None and self._plane_stroke.touched:
            return True
        return self._history.revision != self._saved_revision

    @property
    def modified(self) -> bool:
        """The mask or any review state differs from the last :meth:`mark_saved` state."""
        return self.mask_modified or self._review != self._saved_review

    def mark_saved(self) -> None:
        """Declare the current state saved (commits an open stroke first)."""
        self._finish_stroke()
        self._saved_revision = self._history.revision
        self._saved_slice_rev = self._slice_rev.copy()
        self._saved_review = list(self._review)

    @property
    def changed_slices(self) -> set[int]:
        """Slices whose mask was edited since the last :meth:`mark_saved` (undone edits do not count)."""
        changed = {int(i) for i in np.flatnonzero(self._slice_rev != self._saved_slice_rev)}
        if self._stroke is not None and self._stroke.touched:
            changed.add(self._stroke.slice_index)
        if self._plane_stroke is not None:
            changed |= self._plane_stroke.touched_slices()
        return changed

    # ---------------------------------------------------------------------------------------------- helpers
    def _check_index(self, i) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"slice index must be an int, got {i!r}")
        i = int(i)
        if not 0 <= i < self.n_slices:
            raise IndexError(f"slice {i} is out of range 0..{self.n_slices - 1}")
        return i

    def _make_diff(self, i: int, old: np.ndarray, new: np.ndarray, r_off: int, c_off: int) -> Optional[SliceDiff]:
        return make_slice_diff(i, old, as_binary(new), r_off, c_off, int(self._slice_rev[i]))

    def _apply_new(self, label: str, diffs: Sequence[SliceDiff], *, auto_correct: bool,
                   review: Optional[dict[int, str]] = None) -> list[Region]:
        """Write the new pixels of fresh ``diffs`` into the mask and record them as one step."""
        for d in diffs:
            self._write(d, d.new, d.new_revision)
        if diffs:
            self._record(label, list(diffs), auto_correct=auto_correct, review=review)
        elif review:
            for i, state in review.items():
                self._review[i] = state
        return [d.region for d in diffs]

    def _record(self, label: str, diffs: list[SliceDiff], *, auto_correct: bool,
                review: Optional[dict[int, str]] = None) -> None:
        """Push one undo entry for ``diffs`` (already applied to the mask) and update review states."""
        changes: dict[int, tuple[str, str]] = {}
        targets = dict(review or {})
        if auto_correct:
            for d in diffs:
                if self._review[d.slice_index] != "flagged":
                    targets[d.slice_index] = "corrected"
        for i, state in targets.items():
            if self._review[i] != state:
                changes[i] = (self._review[i], state)
                self._review[i] = state
        for d in diffs:
            self._slice_rev[d.slice_index] = d.new_revision
            self._area[d.slice_index] = -1
        self._history.push(UndoEntry(label, diffs, new_revision(), changes))

    def _write(self, d: SliceDiff, pixels: PackedBits, slice_revision: int) -> None:
        self._mask[d.slice_index, d.row0:d.row1, d.col0:d.col1] = pixels.unpack()
        self._slice_rev[d.slice_index] = slice_revision
        self._area[d.slice_index] = -1
