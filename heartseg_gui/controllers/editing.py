"""The controller's editing intents: strokes, slice tools, undo / redo and review states.

:class:`EditingIntents` is the part of :class:`~heartseg_gui.controllers.controller.Controller` that applies what
the views ask for through the session's :class:`core.editing.MaskEditor` (the one owner of the mask) and
announces the changed :class:`core.editing.Region` so views repaint only that.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from core.editing import REVIEW_STATES, intensity_limit, range_around
from heartseg_gui.views.planes import AXIAL, stack_rows

#: the review states by name (core.editing declares them, in this order)
NOT_REVIEWED, ACCEPTED, CORRECTED, FLAGGED = REVIEW_STATES


class EditingIntents:
    """Mixed into the controller (a QObject with its signals); needs ``session``, ``current_slice`` and
    ``flush_held_batches`` (:class:`~heartseg_gui.controllers.model_jobs.ModelJobs`)."""

    _stroking = False
    _stroke_plane = None   # "coronal" / "sagittal" while a drag in that plane is open (None: axial)
    #: the threshold-limited brush's ``(low, high)`` in the volume's units, or None for a plain brush
    threshold_range: Optional[tuple[float, float]] = None
    #: the pixel under the cursor ``(row, col)`` on the current slice, ``(-1, -1)`` when off the image
    hover_pixel: tuple[int, int] = (-1, -1)
    #: the plane the user last clicked, painted or scrolled in ("axial", "coronal", "sagittal"; set by the plane
    #: viewer, "axial" in the axial-only layout): Fill between slices works along its axis
    active_plane: str = AXIAL

    @property
    def stroke_in_progress(self) -> bool:
        """A brush or eraser drag is open (prediction batches wait for its end: ModelJobs)."""
        return self._stroking

    @property
    def editor(self):
        return None if self.session is None else self.session.editor

    # --- threshold-limited brush ------------------------------------------------------------------------------
    def set_threshold_range(self, value_range: Optional[tuple[float, float]]) -> None:
        """Limit the brush and eraser to pixels within ``(low, high)`` (the volume's units); None: no limit."""
        self.threshold_range = None if value_range is None else (float(value_range[0]), float(value_range[1]))

    def hover_at(self, row: int, col: int) -> None:
        self.hover_pixel = (int(row), int(col))

    def range_under_cursor(self, tolerance: float) -> Optional[tuple[float, float]]:
        """The intensity of the pixel under the cursor ± ``tolerance``; None when the cursor is off the image."""
        s = self.session
        row, col = self.hover_pixel
        if s is None or row < 0 or col < 0:
            return None
        rows, cols = s.volume.voxels.shape[1:]
        if row >= rows or col >= cols:
            return None
        return range_around(float(s.volume.voxels[self.current_slice, row, col]), tolerance)

    # --- strokes ----------------------------------------------------------------------------------------------
    def begin_stroke(self, row: float, col: float, erase: bool, radius: float) -> None:
        if self.session is None:
            return
        if self._stroking:
            self.end_stroke()
        allowed = None
        if self.threshold_range is not None:
            allowed = intensity_limit(self.session.volume.voxels[self.current_slice], *self.threshold_range)
        self.session.editor.begin_limited_stroke(self.current_slice, erase=erase, radius=radius, allowed=allowed)
        self._stroking = True
        self._stroke_plane = None
        self.continue_stroke(row, col)

    def begin_plane_stroke(self, plane: str, index: int, row: float, col: float, erase: bool,
                           radius: float) -> None:
        """A drag in the coronal or sagittal view showing volume row / column ``index``; ``row``, ``col`` are in
        that plane's pixels (row = slice). One drag is one undo step over every axial slice it touches."""
        if self.session is None:
            return
        if self._stroking:
            self.end_stroke()
        self.session.editor.begin_plane_stroke(plane, index, erase=erase, radius=radius)
        self._stroking = True
        self._stroke_plane = plane
        self.continue_stroke(row, col)

    def continue_stroke(self, row: float, col: float) -> None:
        if self.session is None or not self._stroking:
            return
        if self._stroke_plane is not None:
            regions = self.session.editor.plane_stroke_to(row, col)
            if regions:
                self.session.mark_changed([r.slice_index for r in regions])
                self.maskChanged.emit(regions)
            return
        region = self.session.editor.stroke_to(row, col)
        if region is not None:
            self.session.mark_changed([region.slice_index])
            self.maskChanged.emit(region)

    def end_stroke(self) -> None:
        """Finish the stroke in progress (one undo step); nothing when none is."""
        if self.session is None or not self._stroking:
            return
        self._stroking = False
        self._stroke_plane = None
        self.session.editor.end_stroke()
        self.historyChanged.emit()
        self.reviewChanged.emit()
        self.flush_held_batches()   # prediction batches that arrived during the stroke

    def _edited(self, regions) -> None:
        if self.session is not None:
            self.session.mark_changed([r.slice_index for r in regions or []])
        self.maskChanged.emit(regions)
        self.historyChanged.emit()
        self.reviewChanged.emit()

    def edited_elsewhere(self, regions) -> None:
        """The editor was changed outside the controller (unsaved corrections recovered from a journal):
        recount those slices and redraw."""
        if self.session is not None:
            self.session.mark_changed([r.slice_index for r in regions])
        self.maskChanged.emit(None)
        self.historyChanged.emit()
        self.reviewChanged.emit()

    def mark_saved(self) -> None:
        """The working masks were written: the scan is no longer modified."""
        if self.session is not None:
            self.session.editor.mark_saved()
        self.historyChanged.emit()

    # --- slice tools ------------------------------------------------------------------------------------------
    def accept_ai_slice(self) -> None:
        s = self.session
        if s is None or not s.ai_done[self.current_slice]:
            self.statusMessage.emit("No prediction for this slice yet")
            return
        i = self.current_slice
        self._edited(s.editor.set_slices([i], s.ai_mask[i:i + 1], f"Accept AI mask (slice {i + 1})",
                                         review_state=ACCEPTED))

    def corrected_slices_ai_would_change(self) -> list[int]:
        """Predicted slices marked "corrected" whose working mask differs from the AI mask (what "accept AI on all
        slices" would overwrite)."""
        s = self.session
        if s is None:
            return []
        states = s.editor.review_states
        return [int(i) for i in np.flatnonzero(s.ai_done)
                if states[i] == CORRECTED and not np.array_equal(s.editor.slice_mask(int(i)), s.ai_mask[i])]

    def accept_ai_all(self, keep_corrected: bool = False) -> None:
        """The AI mask on every predicted slice, one undo step. ``keep_corrected``: leave slices marked
        "corrected" as they are; otherwise the corrected slices it overwrites go back to "not reviewed" (their
        correction is gone and the AI mask there has not been looked at)."""
        s = self.session
        if s is None or not s.has_prediction:
            self.statusMessage.emit("No prediction yet")
            return
        overwritten = self.corrected_slices_ai_would_change()
        idx = [int(i) for i in np.flatnonzero(s.ai_done)]
        if keep_corrected:
            idx = [i for i in idx if i not in set(overwritten)]
            review = None
        else:
            review = {i: NOT_REVIEWED for i in overwritten}
        self._edited(s.editor.set_slices(idx, s.ai_mask[idx], f"Accept AI mask ({len(idx)} slices)",
                                         review_state=review))

    # --- correction tools -------------------------------------------------------------------------------------
    def fill_between_slices(self) -> None:
        """Fill the empty slices between non-empty ones by shape interpolation (one undo step), along the axis of
        :attr:`active_plane`: axial slices, or coronal / sagittal slices (distances in mm from the spacing)."""
        s = self.session
        if s is None:
            return
        plane = self.active_plane
        if plane == AXIAL:
            regions = s.editor.interpolate_slices()
        elif stack_rows(s.volume).has_gaps:
            self.statusMessage.emit(f"This stack skips slice numbers: fill between axial slices instead (in the "
                                    f"{plane} plane the slices on either side of a gap are not neighbours)")
            return
        else:
            regions = s.editor.interpolate_planes(plane, spacing=s.volume.spacing)
        if not regions:
            where = "slices" if plane == AXIAL else f"{plane} slices"
            self.statusMessage.emit(f"No empty {where} between two {where} with a mask: nothing to fill")
            return
        n = len({r.slice_index for r in regions})
        if plane == AXIAL:
            self.statusMessage.emit(f"Filled {n} slices by interpolation: they are marked interpolated until "
                                    "reviewed")
        else:
            self.statusMessage.emit(f"{s.editor.undo_label}: {n} axial slices changed, marked corrected")
        self._edited(regions)

    def smooth_mask(self, radius: float) -> None:
        """3-D closing then opening with a ball of ``radius`` mm (px when the scan has no spacing)."""
        if self.session is not None:
            self._edited(self.session.editor.smooth_mask(radius, self.session.volume.spacing))

    def remove_small_islands(self, min_voxels: int) -> None:
        if self.session is not None:
            self._edited(self.session.editor.remove_small_islands(min_voxels))

    def keep_largest_3d_region(self) -> None:
        if self.session is not None:
            self._edited(self.session.editor.keep_largest_3d_region())

    def clear_slice(self) -> None:
        if self.session is not None:
            self._edited(self.session.editor.clear_slice(self.current_slice))

    def fill_holes(self) -> None:
        if self.session is not None:
            self._edited(self.session.editor.fill_holes(self.current_slice))

    def keep_largest_region(self) -> None:
        if self.session is not None:
            self._edited(self.session.editor.keep_largest_region(self.current_slice))

    def copy_from_neighbour(self, delta: int) -> None:
        s = self.session
        if s is None:
            return
        src = self.current_slice + int(delta)
        if not 0 <= src < s.n_slices:
            self.statusMessage.emit("No slice there to copy from")
            return
        self._edited(s.editor.copy_slice(src, self.current_slice))

    # --- history ----------------------------------------------------------------------------------------------
    def undo(self) -> None:
        """Undo the last step; a drag still open is finished first (it is the step undone: a Ctrl+Z pressed
        mid-drag left the drag open on an undone stroke, and the next mouse move raised)."""
        self.end_stroke()
        if self.session is not None and self.session.editor.can_undo:
            self._after_history(self.session.editor.undo())

    def redo(self) -> None:
        self.end_stroke()
        if self.session is not None and self.session.editor.can_redo:
            self._after_history(self.session.editor.redo())

    def _after_history(self, regions) -> None:
        regions = list(regions or [])
        if regions and all(r.slice_index != self.current_slice for r in regions):
            self.set_slice(regions[0].slice_index)  # show where the undone change happened
        self._edited(regions)

    # --- review -----------------------------------------------------------------------------------------------
    def set_review_state(self, state: str, advance: bool = False) -> None:
        """Mark the current slice (one of :data:`core.editing.REVIEW_STATES`); ``advance``: then go to the next
        slice not reviewed."""
        if self.session is None:
            return
        self.session.editor.set_review_state(self.current_slice, state)
        self.reviewChanged.emit()
        self.historyChanged.emit()
        if advance:
            self.next_unreviewed(+1)

    def next_unreviewed(self, direction: int = +1) -> None:
        if self.session is None:
            return
        found = self.session.editor.next_unreviewed(self.current_slice, direction, wrap=True)
        if found is None:
            self.statusMessage.emit("Every slice has been reviewed")
        else:
            self.set_slice(found)
