"""Runs one retraining at a time for the window and switches model versions through the controller.

* Starting: when a prediction is running, the retraining waits for it; while the retraining runs, predictions
  wait (:meth:`Controller.block_model_jobs`) and start afterwards; :attr:`running` is what the window's
  :class:`~heartseg_gui.actions.ActionPolicy` reads to disable the model actions (``runningChanged`` says when).
* Finished: the dock shows old vs new validation Dice on the same held-out patients and
  :attr:`RetrainManager.ask_activate` asks whether to switch (tests replace it).
* Versions: :meth:`activate` / :meth:`rollback` write the registry's ``active.json`` and call
  ``controller.set_model``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QMainWindow

from core.errors import HeartsegError
from core.versions.registry import ModelRegistry, default_registry_dir
from core.versions.retrain import RetrainRequest, compare_text
from heartseg_gui import jobs
from heartseg_gui.actions import RETRAINING_BUSY as BUSY_REASON
from heartseg_gui.controllers.controller import Controller
from heartseg_gui.dialogs.activate_bar import ActivateModelBar
from heartseg_gui.jobs import PREDICT, RETRAIN
from heartseg_gui.widgets.retrain_dock import RetrainDock
from heartseg_gui.workers import Job, error_text


class RetrainManager(QObject):
    runningChanged = Signal(bool)
    finished = Signal(str, object)        # outcome ("returned" / "errored" / "cancelled"), RetrainOutcome or text
    versionActivated = Signal(int, str)   # version, model path

    """``window``: where the dock goes, the status bar and the question's parent."""

    def __init__(self, window: QMainWindow, controller: Controller, *, base_model: Optional[Path] = None):
        super().__init__(window)
        self.window = window
        self.controller = controller
        self.base_model = base_model
        self.ask_activate: Callable = self._ask_activate_dialog
        self.activate_bar: Optional[ActivateModelBar] = None   # the open "Use the new model?" bar
        self.job: Optional[Job] = None
        self.last_outcome = None
        self.last_request: Optional[RetrainRequest] = None
        self._pending: Optional[RetrainRequest] = None
        self._generation = 0
        self._dock: Optional[RetrainDock] = None  # built on first use: keeps start-up lean
        controller.jobFinished.connect(self._on_controller_job_finished)
        controller.datasetChanged.connect(self._on_dataset)

    @property
    def dock(self) -> RetrainDock:
        """The Retraining dock (progress, ETA, live loss / Dice curves, Cancel), created when first needed."""
        if self._dock is None:
            self._dock = RetrainDock(self.window)
            self.window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self._dock)
            self._dock.setVisible(False)
            self._dock.panel.cancelRequested.connect(self.cancel)
        return self._dock

    # --- state ----------------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.job is not None or self._pending is not None

    def busy_reason(self) -> Optional[str]:
        if self.running:
            return BUSY_REASON
        return None

    def registry_for(self, dataset_root) -> ModelRegistry:
        return ModelRegistry(default_registry_dir(dataset_root), base_model=self.base_model)

    def current_registry(self) -> Optional[ModelRegistry]:
        dataset = self.controller.dataset
        return None if dataset is None else self.registry_for(dataset.root)

    def _status(self, text: str, ms: int = 8000) -> None:
        self.window.statusBar().showMessage(text, ms)

    # --- starting and stopping ------------------------------------------------------------------------------------
    def start(self, request: RetrainRequest) -> bool:
        """Start ``request`` (:class:`core.versions.retrain.RetrainRequest`); waits for a running prediction first."""
        if self.running:
            self._status("A retraining is already running")
            return False
        self.last_request = request
        self.dock.setVisible(True)
        self.dock.raise_()
        self.dock.panel.start("Starting…", request.config.epochs)
        self._block(True)
        if self.controller.is_busy(PREDICT):
            self._pending = request
            self.dock.panel.stage_label.setText("Waiting for the running prediction to finish…")
            self.runningChanged.emit(True)
            return True
        self._launch(request)
        return True

    def _launch(self, request: RetrainRequest) -> None:
        self._pending = None
        self._generation += 1
        job = Job(RETRAIN, jobs.retrain_job(request), self._generation)
        self.job = job
        # the controller's runner waits for it when the window closes
        self.controller.runner.start(job, progress=lambda item: self._on_progress(job, item),
                                     returned=lambda outcome: self._on_returned(job, outcome),
                                     errored=lambda exc: self._on_errored(job, exc),
                                     aborted=lambda: self._on_cancelled(job),
                                     finished=lambda: self._on_finished(job))
        self.dock.panel.stage_label.setText("Loading TensorFlow and reading slices…")
        self.runningChanged.emit(True)

    @Slot()
    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.dock.panel.stage_label.setText("Cancelling after this batch…")
            self.dock.panel.cancel_button.setEnabled(False)
        elif self._pending is not None:
            self._pending = None
            self._block(False)
            self.runningChanged.emit(False)
            self._done("cancelled", "Retraining cancelled before it started", None)

    @Slot(str, str, str)
    def _on_controller_job_finished(self, kind: str, outcome: str, message: str) -> None:
        if kind == PREDICT and self._pending is not None and not self.controller.is_busy(PREDICT):
            self._launch(self._pending)

    # --- the job's callbacks (GUI thread) -------------------------------------------------------------------------
    def _mine(self, job: Job) -> bool:
        return self.job is job and job.generation == self._generation

    def _on_progress(self, job: Job, item) -> None:
        if self._mine(job):
            self.dock.panel.show_progress(item)

    def _on_returned(self, job: Job, outcome) -> None:
        if not self._mine(job):
            return
        self.last_outcome = outcome
        text = compare_text(outcome)
        self.dock.panel.finish(f"Finished: registered v{outcome.version}", text)
        self._finished_job()
        self.finished.emit("returned", outcome)
        if self.ask_activate(outcome):
            try:
                self.activate(outcome.version, ModelRegistry(outcome.registry_dir, base_model=self.base_model))
            except HeartsegError as exc:
                self.controller.report_error("Could not activate the new model", str(exc))
        else:
            self._status(f"v{outcome.version} registered; still using the previous model (Model ▸ Versions… "
                         f"to switch)")

    def _on_errored(self, job: Job, exc: BaseException) -> None:
        if self._mine(job):
            message = error_text(job.name, exc)
            self._finished_job()
            self._done("errored", "Retraining failed", message)
            self.controller.report_error("Retraining failed", message)

    def _on_cancelled(self, job: Job) -> None:
        if self._mine(job):
            self._finished_job()
            self._done("cancelled", "Retraining cancelled — no version was registered", None)

    def _on_finished(self, job: Job) -> None:
        if self._mine(job):  # a job that ended without a verdict
            self._finished_job()

    def _finished_job(self) -> None:
        self.job = None
        self._block(False)
        self.runningChanged.emit(False)

    def _done(self, outcome: str, text: str, detail) -> None:
        self.dock.panel.finish(text, detail or "")
        self.finished.emit(outcome, detail)
        self._status(text)

    def _ask_activate_dialog(self, outcome) -> bool:
        """Ask without blocking: a bar in the status bar ("Use vN" / "Keep the current model"); returns False now
        and activates the version when "Use vN" is clicked (a modal box would pop up while painting)."""
        if self.activate_bar is not None:
            self.activate_bar.deleteLater()
        text = (f"Retraining finished: v{outcome.version}. {' '.join(compare_text(outcome).split())} "
                "Model ▸ Versions… can switch back at any time.")
        bar = self.activate_bar = ActivateModelBar(outcome.version, text)
        bar.accepted.connect(lambda o=outcome: self._activate_outcome(o))
        bar.destroyed.connect(lambda *_: setattr(self, "activate_bar", None) if self.activate_bar is bar else None)
        self.window.statusBar().insertPermanentWidget(0, bar, 1)  # temporary messages never hide it
        bar.show()
        return False

    def _activate_outcome(self, outcome) -> None:
        self.activate_bar = None
        try:
            self.activate(outcome.version, ModelRegistry(outcome.registry_dir, base_model=self.base_model))
        except HeartsegError as exc:
            self.controller.report_error("Could not activate the new model", str(exc))

    # --- one model job at a time ----------------------------------------------------------------------------------
    def _block(self, on: bool) -> None:
        """Hold predictions back while the retraining runs (the window's policy disables the model actions)."""
        self.controller.block_model_jobs(BUSY_REASON if on else None)
        if on:
            self._status(BUSY_REASON, 0)
        else:
            self.window.statusBar().clearMessage()

    # --- versions -------------------------------------------------------------------------------------------------
    def activate(self, version: int, registry: Optional[ModelRegistry] = None) -> Path:
        """Make ``version`` active in ``registry`` (default: the open dataset's) and use it in the window."""
        if self.running:
            raise HeartsegError(BUSY_REASON)
        registry = registry or self.current_registry()
        if registry is None:
            raise HeartsegError("open a dataset first: model versions live next to the dataset")
        registry.activate(version)
        return self._use(registry, version)

    def rollback(self, registry: Optional[ModelRegistry] = None) -> Path:
        if self.running:
            raise HeartsegError(BUSY_REASON)
        registry = registry or self.current_registry()
        if registry is None:
            raise HeartsegError("open a dataset first: model versions live next to the dataset")
        entry = registry.rollback()
        return self._use(registry, entry.version)

    def _use(self, registry: ModelRegistry, version: int) -> Path:
        path = registry.model_path(version)
        self.controller.set_model(path)
        self.versionActivated.emit(int(version), str(path))
        self._status(f"Model v{version} active ({path.name})")
        return path

    @Slot(object)
    def _on_dataset(self, dataset) -> None:
        """Opening a dataset whose registry has an active version other than the bundled model uses it (when the
        window runs the bundled model, i.e. the user did not load another one)."""
        if dataset is None or self.running:
            return
        registry = self.registry_for(dataset.root)
        try:
            if not registry.has_active_pointer() or registry.active_version() == 0:
                return
            path = registry.active_model_path()
        except HeartsegError as exc:
            self._status(f"Model registry: {exc}")
            return
        current = self.controller.model_path
        if current is None or Path(current) == registry.base_model:
            self.controller.set_model(path)
            self._status(f"Using the dataset's active model v{registry.active_version()}")
