"""The window's controller: owns the open scan (:class:`~heartseg_gui.state.session.ScanSession`), the open
dataset and the background jobs; no widgets.

Views send *intents* here (stroke started / moved / finished, slice tool, review key); the controller applies them
through the session's :class:`core.editing.MaskEditor` and announces what changed with signals carrying the changed
:class:`core.editing.Region` so views repaint only that. It is split by responsibility: opening and navigation
here, editing intents in :mod:`~heartseg_gui.controllers.editing`, jobs (open a scan, predict; on worker threads,
results of superseded jobs dropped by generation) in :mod:`~heartseg_gui.controllers.model_jobs`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject, Signal

from core.errors import HeartsegError, LabelChoiceNeeded, SeriesChoiceNeeded
from core.review.uncertainty import review_order
from core.store.dataset import Dataset, open_dataset
from core.store.layout import state_dir
from core.store.writeback import review_states
from core.types import Volume
from heartseg_gui import jobs
from heartseg_gui.controllers.editing import EditingIntents
from heartseg_gui.controllers.model_jobs import ModelJobs
from heartseg_gui.jobs import LOAD, PREDICT
from heartseg_gui.state.session import SaveTarget, ScanSession
from heartseg_gui.workers import Job, JobRunner

__all__ = ["Controller", "LOAD", "PREDICT"]


class Controller(EditingIntents, ModelJobs, QObject):
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
    jobProgress = Signal(str, object)          # kind, core.types.Progress
    jobFinished = Signal(str, str, str)        # kind, outcome (returned/errored/cancelled), message
    errorOccurred = Signal(str, str)           # title, one-line message
    labelNeeded = Signal(object, object, object)  # scan path, mask path, labels: the mask opened is a label map
    seriesNeeded = Signal(object, object, object)  # folder, mask path, series: the folder holds several DICOM series
    statusMessage = Signal(str)
    #: a :class:`core.types.SlicePreview`: the middle slice of a DICOM series still being read, shown at once while
    #: no scan is open (display only; a scan that is open stays on screen until the new one has been read)
    previewReady = Signal(object)

    #: a single visit counts at most this long (a window left open overnight is not review time)
    MAX_VISIT_SECONDS = 300.0

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.runner = JobRunner(self)
        self.session: Optional[ScanSession] = None
        self.dataset: Optional[Dataset] = None
        self.patient_id: Optional[str] = None
        self.current_slice = 0
        self._init_jobs()
        self._pending_target: Optional[SaveTarget] = None
        self._pending_origin: Optional[Path] = None
        self._pending_mask: Optional[Path] = None  # the mask file the open scan is read with
        self._pending_patient: Optional[str] = None  # the patient being opened (None: a scan on its own)
        self._visit_start = time.monotonic()  # when the current slice came on screen (correction record)
        self._queue_last: Optional[int] = None  # the slice Next most uncertain last went to

    # --- messages (for the window's other controllers) -------------------------------------------------------
    def show_status(self, text: str) -> None:
        """A short message in the status bar."""
        self.statusMessage.emit(text)

    def report_error(self, title: str, message: str) -> None:
        """An error the user must see (a non-blocking message box)."""
        self.errorOccurred.emit(title, message)

    # --- opening -------------------------------------------------------------------------------------------------
    def open_scan(self, path: str | Path, mask_path: str | Path | None = None,
                  save_target: Optional[SaveTarget] = None, *, series_uid: Optional[str] = None,
                  label: Optional[int] = None) -> Job:
        """Read a scan in the background (Kaggle patient folder, PNG folder, DICOM series folder, NIfTI file);
        ``series_uid``: which series of a DICOM folder holding several (:class:`core.errors.SeriesChoiceNeeded`);
        ``label``: which label of a label-map mask is the heart (a mask of several labels opened without one emits
        :attr:`labelNeeded` instead of an error; a folder of several series opened without ``series_uid`` emits
        :attr:`seriesNeeded`: the headers are read once, in the job, never on the window's thread)."""
        path = Path(path)
        self._bump()
        self.cancel_job(PREDICT)
        self._pending_target = save_target
        self._pending_origin = path
        self._pending_patient = None  # a scan on its own: the dataset closes once it has opened
        self._pending_mask = None if mask_path is None else Path(mask_path)
        job = jobs.open_scan_job(path, self._pending_mask, label, series_uid)   # the mask too, series chosen or not
        return self._start(LOAD, "open scan", job, f"Opening {path.name}…", on_error=self._ask_choice)

    def _ask_choice(self, exc: BaseException) -> bool:
        """The mask opened with a scan is a label map of several labels (:attr:`labelNeeded`), or the folder holds
        several DICOM series (:attr:`seriesNeeded`): ask rather than fail; the answer opens it again with that label
        or series."""
        if isinstance(exc, SeriesChoiceNeeded) and exc.series:
            self.jobFinished.emit(LOAD, "cancelled", "Which series of the folder?")
            self.seriesNeeded.emit(exc.path, self._pending_mask, exc.series)
            return True
        if not (isinstance(exc, LabelChoiceNeeded) and self._pending_mask is not None):
            return False
        self.jobFinished.emit(LOAD, "cancelled", "Which label of the mask is the heart?")
        self.labelNeeded.emit(self._pending_origin, self._pending_mask, exc.counts)
        return True

    def open_dataset(self, root: str | Path) -> None:
        """Index a dataset (synchronous: reads only folder listings); raises HeartsegError."""
        self.dataset = open_dataset(Path(root))
        self.datasetChanged.emit(self.dataset)

    def close_dataset(self) -> None:
        """A single scan is opened on its own: no patient list."""
        self.dataset = None
        self.datasetChanged.emit(None)

    def open_patient(self, patient_id: str) -> None:
        if self.dataset is None:
            return
        self._bump()
        self.cancel_job(PREDICT)
        self._pending_target = None  # a Kaggle patient's own folder is found from the volume
        self._pending_origin = Path(self.dataset.patient_dir(str(patient_id)))
        self._pending_patient = str(patient_id)
        self._start(LOAD, "open patient", jobs.load_patient_job(self.dataset, str(patient_id)),
                    f"Opening patient {patient_id}…")

    def _on_loaded(self, job: Job, volume: Volume) -> None:
        if not self._current(LOAD, job):
            return
        self._jobs.pop(LOAD, None)
        self.jobFinished.emit(LOAD, "returned", f"Opened {volume.name}")
        # only an open that worked changes what is open: a failed one keeps the dataset and its patient list
        self.patient_id = self._pending_patient
        if self._pending_patient is None and self.dataset is not None:
            self.close_dataset()
        self.set_volume(volume, self._pending_origin, self._pending_target)

    def set_volume(self, volume: Volume, origin: Path | None = None,
                   save_target: Optional[SaveTarget] = None) -> None:
        """Show ``volume`` (main thread). Starts the prediction when a model is set."""
        self._stroking = False   # a drag still open belonged to the scan being left (its editor goes with it)
        self._stroke_plane = None
        self._held_batches = []
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

    def _load_review_record(self) -> None:
        """Review states saved in an earlier sitting (the patient's sidecar) come back with the scan: without this
        the next save would reset every slice to "not reviewed"."""
        t = self.session.save_target
        if t is None or not state_dir(t.patient_dir).is_dir():
            return
        try:
            by_name = review_states(t.patient_dir, t.slice_names)
        except HeartsegError as exc:
            self.errorOccurred.emit("Review record unreadable", f"{exc} — the review states of earlier sittings are "
                                    "not shown; the file is left as it is")
            return
        self.session.editor.load_review_states([by_name[n] for n in t.slice_names])

    # --- navigation ----------------------------------------------------------------------------------------------
    def set_slice(self, index: int) -> None:
        if self.session is None:
            return
        index = max(0, min(self.session.n_slices - 1, int(index)))
        if index != self.current_slice:
            self.end_stroke()
            self.flush_slice_time()
            self.current_slice = index
            self.sliceChanged.emit(index)

    def step_slice(self, delta: int) -> None:
        self.set_slice(self.current_slice + int(delta))

    def flush_slice_time(self) -> None:
        """Add the time the current slice has been on screen to its record (the correction record's seconds)."""
        now = time.monotonic()
        start, self._visit_start = self._visit_start, now
        if self.session is not None:
            self.session.add_seconds(self.current_slice, min(now - start, self.MAX_VISIT_SECONDS))

    def next_most_uncertain(self) -> None:
        """Review ▸ Next most uncertain: the slices not reviewed yet, in descending uncertainty. Pressed again on
        the slice it went to, it goes on to the next one; from anywhere else it starts at the most uncertain."""
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
