"""The window's controller: owns the open scan (:class:`ScanSession`) and the background jobs; no widgets.

Views send *intents* here (stroke started / moved / finished, slice tool, review key); the controller applies them
through the session's :class:`core.editing.MaskEditor` and announces what changed with signals carrying the changed
:class:`core.editing.Region` so views repaint only that. Jobs (open a scan, predict) run on worker threads;
their results come back tagged with a generation number and results of superseded jobs are dropped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from core.types import Volume
from heartseg_gui import jobs
from heartseg_gui.session import SaveTarget, ScanSession
from heartseg_gui.workers import Job, JobRunner

LOAD = "load"
PREDICT = "predict"


class Controller(QObject):
    sessionChanged = Signal()                  # a new scan is open (or none)
    sliceChanged = Signal(int)
    maskChanged = Signal(object)               # core.editing.Region, a list of them, or None (everything)
    predictionChanged = Signal(object)         # list of slice indices whose prediction arrived
    reviewChanged = Signal()
    reviewInfoChanged = Signal()               # QC flags of the AI mask arrived (core.review)
    historyChanged = Signal()                  # undo/redo availability or labels, modified flag
    modelChanged = Signal(str)                 # active model name ("" when none)
    datasetChanged = Signal(object)            # core.store.dataset.Dataset or None
    jobStarted = Signal(str, str)              # kind, message
    jobProgress = Signal(str, int, int, str)   # kind, done, total, message
    jobFinished = Signal(str, str, str)        # kind, outcome (returned/errored/cancelled), message
    errorOccurred = Signal(str, str)           # title, one-line message
    statusMessage = Signal(str)

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.runner = JobRunner(self)
        self.session: Optional[ScanSession] = None
        self.dataset = None
        self.patient_id: Optional[str] = None
        self.current_slice = 0
        self.model_path: Optional[Path] = None
        self.model_name = ""
        self.auto_predict = True
        self.model_jobs_blocked: Optional[str] = None  # set while a retraining runs (one model job at a time)
        self._prediction_waiting = False
        self._predictors = jobs.PredictorCache()
        #: "auto" (bfloat16 where the CPU has AMX and the model passed its check) or "float32" (Model menu)
        self.precision = "auto"
        self._generation = 0
        self._jobs: dict[str, Job] = {}
        self._pending_target: Optional[SaveTarget] = None
        self._stroking = False
        self._visit_start = time.monotonic()  # when the current slice came on screen (correction record)
        self._queue_last: Optional[int] = None  # the slice Next most uncertain last went to

    # --- generations and jobs -----------------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self._generation

    def _bump(self) -> int:
        self._generation += 1
        return self._generation

    def is_busy(self, kind: Optional[str] = None) -> bool:
        return (kind in self._jobs) if kind else bool(self._jobs)

    def _start(self, kind: str, name: str, fn, message: str) -> Job:
        old = self._jobs.pop(kind, None)
        if old is not None:
            old.cancel()
        job = Job(name, fn, self._generation)
        job.progress.connect(self._on_progress)
        job.finished.connect(self._on_finished)
        if kind == LOAD:
            job.returned.connect(self._on_loaded)
        else:
            job.partial.connect(self._on_prediction_batch)
            job.returned.connect(self._on_prediction_done)
        job.errored.connect(self._on_errored)
        job.cancelled.connect(self._on_cancelled)
        job.setProperty("kind", kind)
        self._jobs[kind] = job
        self.runner.start(job)
        self.jobStarted.emit(kind, message)
        return job

    def _kind_of(self, generation: int) -> Optional[str]:
        sender = self.sender()
        if isinstance(sender, Job):
            kind = sender.property("kind")
            if self._jobs.get(kind) is sender and generation == self._generation:
                return kind
        return None

    @Slot(int, object)
    def _on_progress(self, generation: int, item) -> None:
        kind = self._kind_of(generation)
        if kind:
            self.jobProgress.emit(kind, int(item.done), int(item.total), item.message or "")

    @Slot(int, str)
    def _on_errored(self, generation: int, message: str) -> None:
        kind = self._kind_of(generation)
        if kind:
            self._jobs.pop(kind, None)
            self.jobFinished.emit(kind, "errored", message)
            title = "Could not open the scan" if kind == LOAD else "Prediction failed"
            self.errorOccurred.emit(title, message)

    @Slot(int)
    def _on_cancelled(self, generation: int) -> None:
        kind = self._kind_of(generation)
        if kind:
            self._jobs.pop(kind, None)
            self.jobFinished.emit(kind, "cancelled", "Cancelled")

    @Slot(int)
    def _on_finished(self, generation: int) -> None:
        sender = self.sender()
        if isinstance(sender, Job):
            kind = sender.property("kind")
            if self._jobs.get(kind) is sender and sender.outcome is None:
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

    # --- opening -------------------------------------------------------------------------------------------------
    def open_scan(self, path: str | Path, mask_path: str | Path | None = None,
                  save_target: Optional[SaveTarget] = None) -> None:
        """Read a scan in the background (Kaggle patient folder, PNG folder, DICOM series folder, NIfTI file)."""
        path = Path(path)
        self._bump()
        self.cancel_job(PREDICT)
        self._pending_target = save_target
        self._pending_origin = path
        self.patient_id = None
        self._start(LOAD, "open scan", jobs.open_scan_job(path, None if mask_path is None else Path(mask_path)),
                    f"Opening {path.name}…")

    def open_dataset(self, root: str | Path) -> None:
        """Index a dataset (synchronous: reads only folder listings); raises HeartsegError."""
        from core.store.dataset import open_dataset

        dataset = open_dataset(Path(root))
        self.dataset = dataset
        self.datasetChanged.emit(dataset)

    def open_patient(self, patient_id: str) -> None:
        if self.dataset is None:
            return
        self._bump()
        self.cancel_job(PREDICT)
        self._pending_target = None  # a Kaggle patient's own folder is found from the volume
        self._pending_origin = Path(self.dataset.patient_dir(str(patient_id)))
        self.patient_id = str(patient_id)
        self._start(LOAD, "open patient", jobs.load_patient_job(self.dataset, str(patient_id)),
                    f"Opening patient {patient_id}…")

    @Slot(int, object)
    def _on_loaded(self, generation: int, volume: Volume) -> None:
        if self._kind_of(generation) != LOAD:
            return
        self._jobs.pop(LOAD, None)
        self.jobFinished.emit(LOAD, "returned", f"Opened {volume.name}")
        self.set_volume(volume, getattr(self, "_pending_origin", None), self._pending_target)

    def set_volume(self, volume: Volume, origin: Path | None = None,
                   save_target: Optional[SaveTarget] = None) -> None:
        """Show ``volume`` (main thread). Starts the prediction when a model is set."""
        self._bump()
        self.cancel_job(PREDICT)
        self.session = ScanSession(volume, origin, save_target)
        self._visit_start = time.monotonic()
        self._load_review_record()
        self.current_slice = volume.n_slices // 2
        self.sessionChanged.emit()
        self.sliceChanged.emit(self.current_slice)
        self.historyChanged.emit()
        self.reviewChanged.emit()
        if self.auto_predict and self.model_path is not None:
            self.start_prediction()

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
            if not getattr(self, "_missing_reported", False):  # one dialog, then the status bar keeps saying it
                self._missing_reported = True
                self.errorOccurred.emit("No model", message)
            else:
                self.statusMessage.emit(message)
            return None
        volume = jobs.copy_volume(self.session.volume)
        fn = jobs.predict_job(self._predictors, self.model_path, volume, self.current_slice, self.precision)
        return self._start(PREDICT, "prediction", fn, f"Predicting with {self.model_path.name}…")

    @Slot(int, object)
    def _on_prediction_batch(self, generation: int, payload) -> None:
        if self._kind_of(generation) != PREDICT or self.session is None:
            return
        indices, masks, scores, maps = payload
        self.session.set_prediction(indices, masks)
        self.session.set_uncertainty(indices, scores, maps)
        self.predictionChanged.emit(list(indices))

    @Slot(int, object)
    def _on_prediction_done(self, generation: int, result) -> None:
        if self._kind_of(generation) != PREDICT or self.session is None:
            return
        self._jobs.pop(PREDICT, None)
        name, masks, changed, review = result
        # every batch arrived already (same generation); apply what the whole-volume clean-up changed since, and
        # anything not delivered: no full-volume copy on the GUI thread (128 MB for a 512-slice scan)
        todo = sorted(set(changed) | {int(i) for i in np.flatnonzero(~self.session.ai_done)})
        if todo:
            self.session.set_prediction(todo, masks[todo])
        self.session.set_flags(review["flags"], review["scan_flags"])
        self.reviewInfoChanged.emit()
        if not review.get("adjacent", True):
            self.statusMessage.emit("These slices are not neighbours (gaps in the numbering, or no positions): "
                                    "clean-up and QC flags work per slice")
        if name:
            self.model_name = str(name)
            self.modelChanged.emit(self.model_name)
        self.predictionChanged.emit(todo)
        self.jobFinished.emit(PREDICT, "returned", "Prediction ready")

    # --- navigation ----------------------------------------------------------------------------------------------
    def set_slice(self, index: int) -> None:
        if self.session is None:
            return
        index = max(0, min(self.session.n_slices - 1, int(index)))
        if index != self.current_slice:
            if self._stroking:
                self.end_stroke()
            self.flush_slice_time()
            self.current_slice = index
            self.sliceChanged.emit(index)

    def _load_review_record(self) -> None:
        """Review states saved in an earlier sitting (the patient's sidecar) come back with the scan: without this
        the next save would reset every slice to "not reviewed"."""
        from core.errors import HeartsegError
        from core.store.writeback import HEARTSEG_DIR, review_states

        t = self.session.save_target
        if t is None or not (t.patient_dir / HEARTSEG_DIR).is_dir():
            return
        try:
            by_name = review_states(t.patient_dir, t.slice_names)
        except HeartsegError as exc:
            self.errorOccurred.emit("Review record unreadable", f"{exc} — the review states of earlier sittings are "
                                    "not shown; the file is left as it is")
            return
        self.session.editor.load_review_states([by_name[n] for n in t.slice_names])

    #: a single visit counts at most this long (a window left open overnight is not review time)
    MAX_VISIT_SECONDS = 300.0

    def flush_slice_time(self) -> None:
        """Add the time the current slice has been on screen to its record (the correction record's seconds)."""
        now = time.monotonic()
        start, self._visit_start = self._visit_start, now
        if self.session is not None:
            self.session.add_seconds(self.current_slice, min(now - start, self.MAX_VISIT_SECONDS))

    def next_most_uncertain(self) -> None:
        """Review ▸ Next most uncertain: the slices not reviewed yet, in descending uncertainty. Pressed again on
        the slice it went to, it goes on to the next one; from anywhere else it starts at the most uncertain."""
        from core.review.uncertainty import review_order

        s = self.session
        if s is None:
            return
        if not s.ai_done.any():
            self.statusMessage.emit("No prediction yet: the review queue fills as the AI runs")
            return
        order = review_order(s.uncertainty, s.editor.review_states)
        order = [i for i in order if s.ai_done[i]]
        if not order:
            self.statusMessage.emit("Every predicted slice is reviewed")
            return
        nxt = order[0]
        last = self._queue_last
        if last == self.current_slice and last in order:
            k = order.index(last)
            nxt = order[k + 1] if k + 1 < len(order) else order[0]
        self.set_slice(nxt)
        self._queue_last = nxt
        score = s.uncertainty[nxt]
        self.statusMessage.emit(f"Slice {nxt + 1}: uncertainty {score:.2f} ({order.index(nxt) + 1} of {len(order)} "
                                "not reviewed, most uncertain first)")

    def step_slice(self, delta: int) -> None:
        self.set_slice(self.current_slice + int(delta))

    # --- editing intents ------------------------------------------------------------------------------------------
    @property
    def editor(self):
        return None if self.session is None else self.session.editor

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

    def accept_ai_slice(self) -> None:
        s = self.session
        if s is None or not s.ai_done[self.current_slice]:
            self.statusMessage.emit("No prediction for this slice yet")
            return
        i = self.current_slice
        self._edited(s.editor.set_slices([i], s.ai_mask[i:i + 1], f"Accept AI mask (slice {i + 1})",
                                         review_state="accepted"))

    def accept_ai_all(self) -> None:
        s = self.session
        if s is None or not s.has_prediction:
            self.statusMessage.emit("No prediction yet")
            return
        import numpy as np

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

    # --- review --------------------------------------------------------------------------------------------------
    def set_review_state(self, state: str, advance: bool = False) -> None:
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
