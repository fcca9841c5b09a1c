"""``install_retraining(window, controller)``: Model ▸ Retrain… and Model ▸ Versions… on the main window.

The window needs nothing else: the manager talks to the controller's public surface (``dataset``, ``model_path``,
``set_model``, ``is_busy``, ``runner``, ``session``, ``auto_predict``, ``start_prediction`` and the signals
``jobFinished``, ``sessionChanged``, ``datasetChanged``, ``errorOccurred``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMainWindow, QMenu

from heartseg_gui.retrain.manager import RetrainManager


def _model_menu(window: QMainWindow) -> QMenu:
    menus = getattr(window, "menus", None)
    if isinstance(menus, dict) and isinstance(menus.get("Model"), QMenu):
        return menus["Model"]
    for action in window.menuBar().actions():
        if action.menu() is not None and action.text().replace("&", "") == "Model":
            return action.menu()
    return window.menuBar().addMenu("&Model")


class RetrainingUi:
    """What :func:`install_retraining` added: the two actions, the manager (and through it the dock)."""

    def __init__(self, window, controller, base_model: Optional[Path] = None, base_config=None):
        self.window = window
        self.controller = controller
        self.base_config = base_config
        actions = getattr(window, "actions", None)
        guarded = []
        if actions is not None:
            for name in ("run_prediction", "load_model"):
                act = getattr(actions, name, None)
                if act is not None:
                    guarded.append(act)
        self.retrain_action = QAction("&Retrain…", window)
        self.retrain_action.setObjectName("retrainAction")
        self.retrain_action.setStatusTip("Fine-tune the model on the corrected masks of a dataset (in the background)")
        self.versions_action = QAction("&Versions…", window)
        self.versions_action.setObjectName("versionsAction")
        self.versions_action.setStatusTip("List the dataset's model versions; activate one or roll back")
        menu = _model_menu(window)
        menu.addSeparator()
        menu.addAction(self.retrain_action)
        menu.addAction(self.versions_action)
        self.manager = RetrainManager(window, controller, base_model=base_model,
                                      guarded_actions=tuple(guarded) + (self.retrain_action,),
                                      needs_session=(getattr(actions, "run_prediction", None),))
        self.retrain_action.triggered.connect(self.open_retrain_dialog)
        self.versions_action.triggered.connect(self.open_versions_dialog)
        self.dialog = None
        self.versions_dialog = None

    def _unsaved(self) -> bool:
        files = getattr(self.window, "files", None)
        try:
            return bool(files is not None and files.has_unsaved())
        except Exception:  # noqa: BLE001 - only a hint in the dialog
            return False

    def _choose_directory(self, title: str, start: str):
        prompts = getattr(self.window, "prompts", None)
        if prompts is not None:
            return prompts.choose_directory(title, start)
        from PySide6.QtWidgets import QFileDialog

        return QFileDialog.getExistingDirectory(self.window, title, start) or None

    def make_retrain_dialog(self):
        from heartseg_gui.retrain.dialog import RetrainDialog

        dataset = getattr(self.controller, "dataset", None)
        return RetrainDialog(None if dataset is None else Path(dataset.root), base_config=self.base_config,
                             base_model=self.manager.base_model, unsaved=self._unsaved(),
                             choose_directory=self._choose_directory, parent=self.window)

    def open_retrain_dialog(self):
        """Show Model ▸ Retrain… (non-blocking); accepting it starts the retraining."""
        if self.manager.running:
            self.window.statusBar().showMessage("A retraining is already running", 6000)
            return None
        dialog = self.make_retrain_dialog()
        self.dialog = dialog

        def accepted():
            from core.errors import HeartsegError

            try:
                request = dialog.request()
            except HeartsegError as exc:
                self.controller.errorOccurred.emit("Cannot retrain", str(exc))
                return
            self.manager.start(request)

        dialog.accepted.connect(accepted)
        dialog.open()
        return dialog

    def open_versions_dialog(self):
        from heartseg_gui.retrain.versions_dialog import VersionsDialog

        registry = self.manager.current_registry()
        if registry is None:
            self.controller.errorOccurred.emit("No dataset open", "Model versions live next to a dataset: open one "
                                                                  "with File ▸ Open Dataset… first.")
            return None
        dialog = VersionsDialog(registry, lambda v: self.manager.activate(v, registry),
                                lambda: self.manager.rollback(registry), self.manager.busy_reason, self.window)
        self.manager.runningChanged.connect(lambda _on: dialog.refresh())
        self.versions_dialog = dialog
        dialog.open()
        return dialog


def install_retraining(main_window, controller_or_context=None, *, base_model: Optional[Path] = None,
                       base_config=None) -> RetrainingUi:
    """Add Model ▸ Retrain… and Model ▸ Versions… (and the Retraining dock) to ``main_window``.

    ``controller_or_context``: the window's controller (default ``main_window.controller``). ``base_model``: the
    file that is version 0 (default: the bundled model); ``base_config``: the recipe the Retrain dialog starts from
    (default :class:`core.training.loop.TrainConfig` with 5 epochs). Returns the :class:`RetrainingUi` (keep it on the
    window, e.g. ``window.retraining``).
    """
    existing = getattr(main_window, "retraining", None)
    if isinstance(existing, RetrainingUi):  # already installed (the main window does it): reconfigure only
        if base_model is not None:
            existing.manager.base_model = Path(base_model)
        if base_config is not None:
            existing.base_config = base_config
        return existing
    controller = controller_or_context if controller_or_context is not None else main_window.controller
    ui = RetrainingUi(main_window, controller, base_model=base_model, base_config=base_config)
    main_window.retraining = ui
    return ui
