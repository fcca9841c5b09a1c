"""Model ▸ Retrain… and Model ▸ Versions… on the main window: :func:`install_retraining` wires the two actions
(declared with the others in :class:`~heartseg_gui.actions.Actions`) to the dialogs and the
:class:`~heartseg_gui.controllers.retrain_manager.RetrainManager` (and through it the Retraining dock).

The host is typed (:class:`RetrainHost`): the main window's controller, actions, prompts, file commands and
status bar; everything computes in :mod:`core.versions`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Protocol

from PySide6.QtWidgets import QMainWindow

from core.errors import HeartsegError
from core.training.config import TrainConfig
from heartseg_gui.actions import Actions
from heartseg_gui.controllers.controller import Controller
from heartseg_gui.controllers.file_flows import FileFlows
from heartseg_gui.controllers.retrain_manager import RetrainManager
from heartseg_gui.dialogs.prompts import Prompts
from heartseg_gui.dialogs.retrain_dialog import RetrainDialog
from heartseg_gui.dialogs.versions_dialog import VersionsDialog


class RetrainHost(Protocol):
    """What retraining needs of the main window (a ``QMainWindow``)."""

    controller: Controller
    actions: Actions
    prompts: Prompts
    files: FileFlows
    retraining: Optional["RetrainingUi"]


class RetrainingUi:
    """What :func:`install_retraining` added: the two actions' reactions, the manager (and through it the dock)."""

    def __init__(self, window: QMainWindow, host: RetrainHost, base_model: Optional[Path] = None,
                 base_config: Optional[TrainConfig] = None):
        self.window = window
        self.host = host
        self.controller = host.controller
        self.base_config = base_config
        self.retrain_action = host.actions.retrain
        self.versions_action = host.actions.versions
        self.manager = RetrainManager(window, self.controller, base_model=base_model)
        self.retrain_action.triggered.connect(self.open_retrain_dialog)
        self.versions_action.triggered.connect(self.open_versions_dialog)
        self.dialog: Optional[RetrainDialog] = None
        self.versions_dialog: Optional[VersionsDialog] = None

    def make_retrain_dialog(self) -> RetrainDialog:
        dataset = self.controller.dataset
        return RetrainDialog(None if dataset is None else Path(dataset.root), base_config=self.base_config,
                             base_model=self.manager.base_model, unsaved=self.host.files.has_unsaved(),
                             choose_directory=self.host.prompts.choose_directory, parent=self.window)

    def open_retrain_dialog(self) -> Optional[RetrainDialog]:
        """Show Model ▸ Retrain… (non-blocking); accepting it starts the retraining."""
        if self.manager.running:
            self.window.statusBar().showMessage("A retraining is already running", 6000)
            return None
        dialog = self.make_retrain_dialog()
        self.dialog = dialog

        def accepted():
            try:
                request = dialog.request()
            except HeartsegError as exc:
                self.controller.report_error("Cannot retrain", str(exc))
                return
            self.manager.start(request)

        dialog.accepted.connect(accepted)
        dialog.open()
        return dialog

    def open_versions_dialog(self) -> Optional[VersionsDialog]:
        registry = self.manager.current_registry()
        if registry is None:
            self.controller.report_error("No dataset open", "Model versions live next to a dataset: open one "
                                                            "with File ▸ Open Dataset… first.")
            return None
        dialog = VersionsDialog(registry, lambda v: self.manager.activate(v, registry),
                                lambda: self.manager.rollback(registry), self.manager.busy_reason, self.window)
        self.manager.runningChanged.connect(lambda _on: dialog.refresh())
        self.versions_dialog = dialog
        dialog.open()
        return dialog


def install_retraining(main_window: RetrainHost, controller: Optional[Controller] = None, *,
                       base_model: Optional[Path] = None, base_config: Optional[TrainConfig] = None) -> RetrainingUi:
    """Wire Model ▸ Retrain… and Model ▸ Versions… (and the Retraining dock) on ``main_window``.

    ``controller``: the window's controller (default and only sensible value: ``main_window.controller``).
    ``base_model``: the file that is version 0 (default: the bundled model); ``base_config``: the recipe the
    Retrain dialog starts from (default :class:`core.training.config.TrainConfig` with 5 epochs). Installed once
    per window (``main_window.retraining``); a second call only reconfigures ``base_model`` / ``base_config``.
    """
    existing = main_window.retraining
    if existing is not None:
        if base_model is not None:
            existing.manager.base_model = Path(base_model)
        if base_config is not None:
            existing.base_config = base_config
        return existing
    if controller is not None and controller is not main_window.controller:
        raise ValueError("install_retraining: the controller must be the window's own")
    ui = RetrainingUi(main_window, main_window, base_model=base_model, base_config=base_config)
    main_window.retraining = ui
    return ui
