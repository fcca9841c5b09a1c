"""The controller's background jobs: open a scan, predict with the active model (see :mod:`heartseg_gui.jobs`).

:class:`ModelJobs` is the part of :class:`~heartseg_gui.controllers.controller.Controller` that starts, cancels
and hears jobs. Each job's callbacks are connected once, when it starts (:meth:`JobRunner.start`), and know
their job: a result counts only while that job is still the current one of its kind and its generation is the
controller's (a newer scan or model supersedes it). Prediction batches arrive through ``yielded``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np

from heartseg_gui import jobs
from heartseg_gui.jobs import LOAD, PREDICT
from heartseg_gui.workers import Job, error_text

ERROR_TITLES = {LOAD: "Could not open the scan", PREDICT: "Prediction failed"}


class ModelJobs:
    """Mixed into the controller (a QObject with its signals); needs ``runner``, ``session``, ``current_slice`` and
    ``stroke_in_progress`` (:class:`~heartseg_gui.controllers.editing.EditingIntents`)."""

    def _init_jobs(self) -> None:
        self._generation = 0
        self._jobs: dict[str, Job] = {}
        self._predictors = jobs.PredictorCache()
        self.model_path: Optional[Path] = None
        self.model_name = ""
        self.auto_predict = True
        #: "auto" (bfloat16 where the CPU has AMX and the model passed its check) or "float32" (Model menu)
        self.precision = "auto"
        self.model_jobs_blocked: Optional[str] = None  # set while a retraining runs (one model job at a time)
        self._prediction_waiting = False
        self._held_batches: list = []   # prediction batches that arrived during a stroke (applied when it ends)
        self._held_since = 0.0
        self._missing_reported = False  # "no model" was said once in a dialog; the status bar repeats it

    # --- generations and jobs -----------------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self._generation

    def _bump(self) -> int:
        self._generation += 1
        return self._generation

    def is_busy(self, kind: Optional[str] = None) -> bool:
        return (kind in self._jobs) if kind else bool(self._jobs)

    def _current(self, kind: str, job: Job) -> bool:
        """``job`` is still the running job of ``kind`` and of the current generation."""
        return self._jobs.get(kind) is job and job.generation == self._generation

    def _start(self, kind: str, name: str, fn, message: str, on_error=None) -> Job:
        """Run ``fn`` as this controller's ``kind`` job. ``on_error(exc) -> bool``: this job's own answer to an
        error (True: handled, e.g. by asking the user something; nothing is reported)."""
        old = self._jobs.pop(kind, None)
        if old is not None:
            old.cancel()
        job = Job(name, fn, self._generation)
        on_returned = self._on_loaded if kind == LOAD else self._on_prediction_done
        self._jobs[kind] = job
        self.runner.start(
            job,
            progress=lambda item: self._on_progress(kind, job, item),
            yielded=(lambda batch: self._on_prediction_batch(job, batch)) if kind == PREDICT
            else lambda preview: self._on_load_preview(job, preview),
            returned=lambda result: on_returned(job, result),
            errored=lambda exc: self._on_errored(kind, job, exc, on_error),
            aborted=lambda: self._on_cancelled(kind, job),
            finished=lambda: self._on_finished(kind, job))
        self.jobStarted.emit(kind, message)
        return job

    def _on_progress(self, kind: str, job: Job, item) -> None:
        if self._current(kind, job):
            self.jobProgress.emit(kind, item)

    def _on_load_preview(self, job: Job, preview) -> None:
        """The first slice of a series being opened: shown only while no scan is open (an open scan stays on
        screen and editable until the new one has been read, so a failed open changes nothing)."""
        if self._current(LOAD, job) and self.session is None:
            self.previewReady.emit(preview)

    def _on_errored(self, kind: str, job: Job, exc: BaseException, on_error=None) -> None:
        if self._current(kind, job):
            self._jobs.pop(kind, None)
            if on_error is not None and on_error(exc):
                return
            message = error_text(job.name, exc)
            self.jobFinished.emit(kind, "errored", message)
            self.errorOccurred.emit(ERROR_TITLES[kind], message)

    def _on_cancelled(self, kind: str, job: Job) -> None:
        if self._current(kind, job):
            self._jobs.pop(kind, None)
            self.jobFinished.emit(kind, "cancelled", "Cancelled")

    def _on_finished(self, kind: str, job: Job) -> None:
        if self._jobs.get(kind) is job and job.outcome is None:  # ended without a verdict
            self._jobs.pop(kind, None)

    def cancel_job(self, kind: Optional[str] = None) -> None:
        """Cancel the running job of ``kind`` (all when None). Its results will be dropped."""
        for k in ([kind] if kind else list(self._jobs)):
            job = self._jobs.get(k)
            if job is not None:
                job.cancel()

    def shutdown(self) -> None:
        """Cancel every job and wait for the threads (window closing)."""
        self._bump()
        self._jobs.clear()
        self.runner.shutdown()

    # --- model and prediction ------------------------------------------------------------------------------------
    def set_model(self, path: str | Path | None) -> None:
        """Use the ``.keras`` model at ``path``; a running prediction is superseded and restarted."""
        self.model_path = None if path is None else Path(path)
        self.model_name = "" if path is None else Path(path).name
        if self.model_path is not None and not self.model_path.is_file():
            self.model_name += " (file missing)"
        self._missing_reported = False
        self.modelChanged.emit(self.model_name)
        if self.session is not None and self.model_path is not None:
            self._bump()
            self.session.reset_prediction()
            self.predictionChanged.emit(list(range(self.session.n_slices)))
            self.start_prediction()

    def set_precision(self, precision: str) -> None:
        """``"auto"`` or ``"float32"``; a changed precision predicts again (the AI layer only: edits stay)."""
        if precision == self.precision:
            return
        self.precision = precision
        if self.session is not None and self.model_path is not None:
            self.set_model(self.model_path)

    def block_model_jobs(self, reason: Optional[str]) -> None:
        """While ``reason`` is set (a retraining runs) predictions wait; clearing it starts the waiting one."""
        self.model_jobs_blocked = reason
        if reason is None and self._prediction_waiting:
            self._prediction_waiting = False
            self.start_prediction()

    def start_prediction(self) -> Optional[Job]:
        if self.session is None:
            return None
        if self.model_jobs_blocked:
            self._prediction_waiting = True
            self.statusMessage.emit(f"Prediction waits: {self.model_jobs_blocked}")
            return None
        if self.model_path is None or not self.model_path.is_file():
            where = self.model_path if self.model_path is not None else "(none chosen)"
            message = f"{where}: model file not found — choose one with Model ▸ Load Model…"
            if not self._missing_reported:  # one dialog, then the status bar keeps saying it
                self._missing_reported = True
                self.errorOccurred.emit("No model", message)
            else:
                self.statusMessage.emit(message)
            return None
        volume = jobs.copy_volume(self.session.volume)
        fn = jobs.predict_job(self._predictors, self.model_path, volume, self.current_slice, self.precision)
        return self._start(PREDICT, "prediction", fn, f"Predicting with {self.model_path.name}…")

    #: a batch is held back during a stroke for at most this long (a stroke whose release never came)
    HOLD_BATCHES_S = 1.0

    def _on_prediction_batch(self, job: Job, batch) -> None:
        """A prediction batch. While a brush stroke is in progress it is held back and applied when the stroke
        ends (:meth:`flush_held_batches`), so applying it and repainting the layers and panels never delays a
        stamp (the sagittal stamp's slow samples were those that handled a batch in the same turn)."""
        if not self._current(PREDICT, job) or self.session is None:
            return
        if self.stroke_in_progress:
            now = time.monotonic()
            if not self._held_batches:
                self._held_since = now
            if now - self._held_since < self.HOLD_BATCHES_S:
                self._held_batches.append((job, batch))
                return
        self.flush_held_batches()
        self._apply_batch(batch)

    def flush_held_batches(self) -> None:
        """Apply the batches held back during a stroke, with one :attr:`predictionChanged` for all of them (those
        of a job that is no longer current are dropped)."""
        held, self._held_batches = self._held_batches, []
        indices = []
        for job, batch in held:
            if self._current(PREDICT, job) and self.session is not None:
                indices += self._apply_batch(batch, emit=False)
        if indices:
            self.predictionChanged.emit(indices)

    def _apply_batch(self, batch, emit: bool = True) -> list:
        indices, masks, scores, maps = batch
        self.session.set_prediction(indices, masks)
        self.session.set_uncertainty(indices, scores, maps)
        if emit:
            self.predictionChanged.emit(list(indices))
        return list(indices)

    def _on_prediction_done(self, job: Job, result) -> None:
        if not self._current(PREDICT, job) or self.session is None:
            return
        self.flush_held_batches()   # before the final masks: a held batch must not land over them
        self._jobs.pop(PREDICT, None)
        name, masks, changed, review = result
        # every batch arrived already (same generation); apply what the whole-volume clean-up changed since, and
        # anything not delivered: no full-volume copy on the GUI thread (128 MB for a 512-slice scan)
        todo = sorted(set(changed) | {int(i) for i in np.flatnonzero(~self.session.ai_done)})
        if todo:
            self.session.set_prediction(todo, masks[todo])
        self.session.set_flags(review["flags"], review["scan_flags"])
        self.reviewInfoChanged.emit()
        if not review["adjacent"]:
            self.statusMessage.emit("These slices are not neighbours (gaps in the numbering, or no positions): "
                                    "clean-up and QC flags work per slice")
        if name:
            self.model_name = str(name)
            self.modelChanged.emit(self.model_name)
        self.predictionChanged.emit(todo)
        self.jobFinished.emit(PREDICT, "returned", "Prediction ready")
