"""Where to look first, in the window: the review queue dock, the area-per-slice dock, the confidence overlay and
File ▸ Export Report…. Everything shown comes from :mod:`core.review` (computed on the prediction's worker
thread); this module only keeps the widgets in step with the controller, redrawing at most every 150 ms while
batches arrive or a stroke paints (superqt's ``qthrottled``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from PySide6.QtCore import QObject
from superqt.utils import qthrottled

from core.errors import HeartsegError
from core.postprocess import slices_adjacent
from core.review.record import session_rows, write_report
from heartseg_gui.controllers.controller import Controller
from heartseg_gui.dialogs.prompts import Prompts
from heartseg_gui.state.settings import Settings
from heartseg_gui.views.slice_view import SliceView
from heartseg_gui.widgets.area_plot import AreaPlot
from heartseg_gui.widgets.review_queue import ReviewQueue


class ReviewPanels(QObject):
    def __init__(self, controller: Controller, slice_view: SliceView, queue: ReviewQueue, area_plot: AreaPlot,
                 prompts: Prompts, settings: Settings,
                 parent: Optional[QObject] = None):
        super().__init__(parent)
        self.c, self.view, self.queue, self.area = controller, slice_view, queue, area_plot
        self.prompts, self.settings = prompts, settings
        self.confidence_visible = False
        controller.sessionChanged.connect(self.on_session)
        controller.sliceChanged.connect(self.on_slice)
        controller.predictionChanged.connect(self.on_prediction)
        controller.reviewInfoChanged.connect(self.refresh)
        controller.reviewChanged.connect(self.refresh_queue)
        controller.maskChanged.connect(self.refresh_areas)
        queue.sliceChosen.connect(controller.set_slice)
        area_plot.sliceChosen.connect(controller.set_slice)

    # --- reactions ----------------------------------------------------------------------------------------------
    def on_session(self) -> None:
        s = self.c.session
        self.view.set_confidence(None)
        if s is None:
            self.queue.clear()
            self.area.clear()
            return
        unit = "mm²" if s.pixel_area_mm2() is not None else "px"
        self.area.set_unit(unit, slices_adjacent(s.volume))
        self.refresh()

    def on_slice(self, index: int) -> None:
        self.area.set_current(index)
        self._show_confidence(index)

    def on_prediction(self, indices) -> None:
        s = self.c.session
        if s is not None and self.c.current_slice in set(indices):
            self._show_confidence(self.c.current_slice)
        self.refresh()

    def set_confidence_visible(self, on: bool) -> None:
        self.confidence_visible = bool(on)
        self.view.set_confidence_visible(on)
        self._show_confidence(self.c.current_slice)

    def _show_confidence(self, index: int) -> None:
        s = self.c.session
        if s is None or not self.confidence_visible:
            return
        self.view.set_confidence(s.confidence_slice(index))

    @qthrottled(timeout=150)
    def refresh(self, *_args) -> None:
        self.refresh_queue()
        self.refresh_areas()

    @qthrottled(timeout=150)
    def refresh_queue(self, *_args) -> None:
        s = self.c.session
        if s is None:
            return
        self.queue.set_rows(s.volume.slice_names, s.uncertainty, s.flags, s.editor.review_states, s.ai_done,
                            s.scan_flags)

    @qthrottled(timeout=150)
    def refresh_areas(self, *_args) -> None:
        s = self.c.session
        if s is None:
            return
        scale = s.pixel_area_mm2() or 1.0
        ai = s.ai_areas() * scale  # cached: a stroke recounts one slice, not the whole AI volume
        work = s.editor.areas_px().astype(np.float64) * scale
        flagged = [i for i, f in enumerate(s.flags) if f]
        self.area.set_areas(ai, work, s.ai_done, flagged)
        self.area.set_current(self.c.current_slice)

    # --- File ▸ Export Report… ----------------------------------------------------------------------------------
    def export_report_dialog(self) -> None:
        if self.c.session is None:
            return
        folder = self.prompts.choose_directory("Export the correction report into folder",
                                               self.settings.last_folder)
        if folder:
            self.export_report(folder)

    def export_report(self, folder: str | Path) -> list:
        """``record.csv``, ``report.md`` and ``area.png`` of the open scan (AI vs working mask, review states,
        seconds on screen) in ``folder``; never inside the scan's own folders."""
        s = self.c.session
        folder = Path(folder)
        inputs = {Path(p).parent.resolve() for p in s.volume.source_files}
        inputs |= {d.parent for d in inputs if d.name == "image"}  # a Kaggle patient folder
        target = folder.resolve()
        if any(target == d or d in target.parents for d in inputs):
            self.prompts.error("Export report", f"{folder}: inside the scan's own folder; choose another")
            return []
        self.c.flush_slice_time()
        rows = session_rows(s.volume.name, s.volume.slice_names, s.ai_mask, s.editor.copy_mask(),
                            s.editor.review_states, s.seconds)
        try:
            written = write_report(rows, folder, title=f"Correction record: {s.volume.name}")
        except (HeartsegError, OSError) as exc:
            self.prompts.error("Could not export the report", str(exc))
            return []
        self.c.show_status(f"Report written to {folder}")
        return written
