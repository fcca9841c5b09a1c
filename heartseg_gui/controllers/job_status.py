"""The controller's jobs in the status bar: the job bar's message and progress, the outcome message, and
``predictionFinished`` (what the ``--screenshot`` mode and tests wait for)."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QStatusBar

from core.types import Progress
from heartseg_gui.controllers.controller import Controller
from heartseg_gui.jobs import LOAD, PREDICT
from heartseg_gui.widgets.job_bar import JobBar


class JobStatus(QObject):
    predictionFinished = Signal(str)   # outcome: returned / errored / cancelled (a failed open counts too)

    def __init__(self, controller: Controller, job_bar: JobBar, status_bar: QStatusBar,
                 parent: Optional[QObject] = None):
        super().__init__(parent)
        self.c, self.job_bar, self.status_bar = controller, job_bar, status_bar
        controller.jobStarted.connect(self.on_started)
        controller.jobProgress.connect(self.on_progress)
        controller.jobFinished.connect(self.on_finished)

    def on_started(self, kind: str, message: str) -> None:
        self.job_bar.start(message)

    def on_progress(self, kind: str, item: Progress) -> None:
        done, total = int(item.done), int(item.total)
        if item.stage == "convert":  # a model never seen before is converted once (seconds)
            self.job_bar.progress(done, total, item.message or "")
            return
        label = "Predicting" if kind == PREDICT else "Reading"
        self.job_bar.progress(done, total, f"{label}: {done} / {total} slices")

    def on_finished(self, kind: str, outcome: str, message: str) -> None:
        if not self.c.is_busy():
            self.job_bar.finish()
        if outcome == "cancelled":
            self.status_bar.showMessage(f"{'Prediction' if kind == PREDICT else 'Opening'} cancelled", 6000)
        elif outcome == "returned" and kind == PREDICT:
            s = self.c.session
            hint = "" if s is None or s.editor.mask.any() else " — press Shift+I to use it as the working mask"
            self.status_bar.showMessage(f"Prediction ready{hint}", 10000)
        if kind == PREDICT or (kind == LOAD and outcome != "returned"):
            self.predictionFinished.emit(outcome)
