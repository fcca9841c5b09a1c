"""The controller's editing intents: strokes, slice tools, undo / redo and review states.

:class:`EditingIntents` is the part of :class:`~heartseg_gui.controllers.controller.Controller` that applies what
the views ask for through the session's :class:`core.editing.MaskEditor` (the one owner of the mask) and
announces the changed :class:`core.editing.Region` so views repaint only that.
"""

from __future__ import annotations

import numpy as np

from core.editing import REVIEW_STATES

#: the review states by name (core.editing declares them, in this order)
NOT_REVIEWED, ACCEPTED, CORRECTED, FLAGGED = REVIEW_STATES


class EditingIntents:
    """Mixed into the controller (a QObject with its signals); needs ``session`` and ``current_slice``."""

    _stroking = False

    @property
    def editor(self):
        return None if self.session is None else self.session.editor

    # --- strokes ----------------------------------------------------------------------------------------------
    def begin_stroke(self, row: float, col: float, erase: bool, radius: float) -> None:
        if self.session is None:
            return
        if self._stroking:
            self.end_stroke()
        self.session.editor.begin_stroke(self.current_slice, erase=erase, radius=radius)
        self._stroking = True
        self.continue_stroke(row, col)

    def continue_stroke(self, row: float, col: float) -> None:
        if self.session is None or not self._stroking:
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
        self.session.editor.end_stroke()
        self.historyChanged.emit()
        self.reviewChanged.emit()

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

    def accept_ai_all(self) -> None:
        s = self.session
        if s is None or not s.has_prediction:
            self.statusMessage.emit("No prediction yet")
            return
        idx = [int(i) for i in np.flatnonzero(s.ai_done)]
        self._edited(s.editor.set_slices(idx, s.ai_mask[idx], f"Accept AI mask ({len(idx)} slices)"))

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
        if self.session is not None and self.session.editor.can_undo:
            self._after_history(self.session.editor.undo())

    def redo(self) -> None:
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
