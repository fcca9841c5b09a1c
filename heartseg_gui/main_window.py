"""The annotator's main window: builds the widgets and wires actions and signals together. No logic lives here:
data and edits are in :mod:`~heartseg_gui.controllers.controller`, display state in
:mod:`~heartseg_gui.controllers.viewer`, file commands in :mod:`~heartseg_gui.controllers.file_flows`, the edit
lock and journal in :mod:`~heartseg_gui.controllers.safety`, retraining in
:mod:`~heartseg_gui.controllers.retraining`; which actions are enabled is decided by
:class:`~heartseg_gui.actions.ActionPolicy` alone (:meth:`MainWindow.refresh_actions`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSlider,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from heartseg_gui.actions import ActionPolicy, Actions, WindowState
from heartseg_gui.bool_guard import BoolRefGuard
from heartseg_gui.controllers.compare import install_compare
from heartseg_gui.controllers.controller import Controller
from heartseg_gui.controllers.file_flows import FileFlows
from heartseg_gui.controllers.interop import install_interop
from heartseg_gui.controllers.job_status import JobStatus
from heartseg_gui.controllers.planes import install_planes
from heartseg_gui.controllers.retraining import RetrainingUi, install_retraining
from heartseg_gui.controllers.review_panels import ReviewPanels
from heartseg_gui.controllers.safety import EditSafety
from heartseg_gui.controllers.viewer import Viewer
from heartseg_gui.dialogs.prompts import CANCEL, KEEP, Prompts
from heartseg_gui.dialogs.shortcuts_dialog import ShortcutsDialog
from heartseg_gui.display import PRESETS
from heartseg_gui.state.settings import Settings, make_settings
from heartseg_gui.views.compare_view import CompareView
from heartseg_gui.views.planes_layout import PlanesLayout
from heartseg_gui.views.slice_view import BRUSH, ERASER, NAVIGATE, SliceView
from heartseg_gui.widgets.area_plot import AreaPlot
from heartseg_gui.widgets.job_bar import JobBar
from heartseg_gui.widgets.layer_panel import LayerPanel
from heartseg_gui.widgets.measurements import MeasurementsPanel
from heartseg_gui.widgets.patient_list import PatientList
from heartseg_gui.widgets.review_queue import ReviewQueue
from heartseg_gui.widgets.tool_panel import ToolPanel
from heartseg_gui.wiring import wire_actions

TITLE = "heartseg — heart segmentation review"


class MainWindow(QMainWindow):
    predictionFinished = Signal(str)   # outcome: returned / errored / cancelled

    def __init__(self, settings: Optional[Settings] = None, parent: Optional[QWidget] = None):
        super().__init__(parent)
        if QCoreApplication.instance() is not None:
            BoolRefGuard.install(QCoreApplication.instance())
        self.setWindowTitle(TITLE)
        self.setObjectName("heartsegMainWindow")
        self.settings = settings if settings is not None else make_settings()
        self.controller = Controller(self)
        self.prompts = Prompts(self)
        self.files = FileFlows(self.controller, self.prompts, self.settings, self)
        self.actions = Actions(self)
        self.policy = ActionPolicy()
        self.retraining: Optional[RetrainingUi] = None
        self._build_central()
        self._build_docks()
        self._build_status_bar()
        self.recent_menu = QMenu("Open &Recent", self)
        menus = self.actions.build_menus(self, self.recent_menu)
        menus["View"].addSeparator()
        for dock in (self.queue_dock, self.area_dock):
            menus["View"].addAction(dock.toggleViewAction())
        self.viewer = Viewer(self.controller, self.slice_view, self.compare_view, self.measurements,
                             self.layer_panel, self)
        self.review_panels = ReviewPanels(self.controller, self.slice_view, self.review_queue, self.area_plot,
                                          self.prompts, self.settings, self)
        self._wire()
        self.plane_viewer = install_planes(self)  # coronal / sagittal views, crosshair, View ▸ Layout
        install_compare(self)  # compare mode: paint in its working panel
        self.retraining = install_retraining(self)  # Model ▸ Retrain… / Versions…, the training dock
        self.retraining.manager.runningChanged.connect(self.refresh_actions)
        self.interop = install_interop(self)  # File ▸ Export DICOM-SEG… / Attach Mask…, the geometry notice
        # edit lock, read-only mode, autosave journal, recovery
        self.safety = EditSafety(self.controller, self.files, self.prompts, self.statusBar(), self)
        self.safety.readOnlyChanged.connect(self._on_read_only)
        self._restore_settings()
        self.plane_viewer.set_layout(self.settings.layout)
        self.setAcceptDrops(True)
        self._update_history_actions()

    # --- construction -------------------------------------------------------------------------------------------
    def _build_central(self) -> None:
        self.slice_view = SliceView()
        self.compare_view = CompareView()
        self.stack = QStackedWidget()
        self.planes = PlanesLayout(self.slice_view)  # axial only, three planes or the 2 x 2 grid
        self.stack.addWidget(self.planes)
        self.stack.addWidget(self.compare_view)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slice_label = QLabel("No scan open — File ▸ Open Scan… or drop a folder here")
        bottom = QHBoxLayout()
        bottom.addWidget(self.slider, 1)
        bottom.addWidget(self.slice_label)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.stack, 1)
        layout.addLayout(bottom)
        self.setCentralWidget(central)

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.patient_list = PatientList()
        self.patients_dock = self._dock("Patients", "patientsDock", self.patient_list, left)
        self.patients_dock.setVisible(False)
        presets = [(p.key, p.label) for p in PRESETS] + [("custom", "Custom (right-drag)")]
        self.tool_panel = ToolPanel(self.actions, presets)
        self._dock("Tools", "toolsDock", self.tool_panel, left)
        self.layer_panel = LayerPanel()
        self._dock("Layers", "layersDock", self.layer_panel, right)
        self.measurements = MeasurementsPanel()
        self._dock("Measurements", "measurementsDock", self.measurements, right)
        self.review_queue = ReviewQueue()
        self.queue_dock = self._dock("Review queue", "reviewQueueDock", self.review_queue, right)
        self.area_plot = AreaPlot()
        self.area_dock = self._dock("Area per slice", "areaDock", self.area_plot,
                                    Qt.DockWidgetArea.BottomDockWidgetArea)
        self.area_plot.setMinimumHeight(110)
        self.resizeDocks([self.area_dock], [150], Qt.Orientation.Vertical)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_slice = QLabel("")
        self.status_pixel = QLabel("")
        self.status_model = QLabel("Model: none")
        self.job_bar = JobBar()
        bar.addPermanentWidget(self.status_slice)
        bar.addPermanentWidget(self.status_pixel)
        bar.addPermanentWidget(self.job_bar)
        bar.addPermanentWidget(self.status_model)

    # --- wiring ---------------------------------------------------------------------------------------------------
    def _wire(self) -> None:
        wire_actions(self)
        c = self.controller
        # controller -> window
        c.sessionChanged.connect(self._on_session)
        c.sliceChanged.connect(self._on_slice)
        c.historyChanged.connect(self._update_history_actions)
        c.modelChanged.connect(self._on_model)
        c.datasetChanged.connect(self._on_dataset)
        self.job_status = JobStatus(c, self.job_bar, self.statusBar(), self)
        self.job_status.predictionFinished.connect(self.predictionFinished)
        c.errorOccurred.connect(self.prompts.error)
        c.statusMessage.connect(lambda text: self.statusBar().showMessage(text, 6000))
        self.patient_list.patientChosen.connect(self.files.open_patient)
        c.reviewChanged.connect(self._update_patient_review)
        c.reviewChanged.connect(self._show_interpolated)
        c.sliceChanged.connect(self._show_interpolated)

    # --- reactions ------------------------------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        for view in self.planes.views.values():
            view.set_tool(tool)
        {NAVIGATE: self.actions.tool_navigate, BRUSH: self.actions.tool_brush,
         ERASER: self.actions.tool_eraser}[tool].setChecked(True)

    def set_opacity(self, value: float) -> None:
        for view in self.planes.views.values():  # axial, coronal, sagittal
            for key in view.layers:
                view.set_layer_opacity(key, value if key == "working" else min(1.0, value + 0.35))
        for view in self.compare_view.panels.values():
            for key in view.layers:
                view.set_layer_opacity(key, value)

    def set_compare(self, on: bool) -> None:
        self.viewer.set_compare_mode(on)
        self.stack.setCurrentWidget(self.compare_view if on else self.planes)

    def show_levels(self, low: float, high: float) -> None:
        s = self.controller.session
        unit = "HU" if s is not None and s.volume.intensity == "hu" else ""
        self.tool_panel.show_levels((low, high), unit)
        self.tool_panel.show_preset(self.viewer.preset_key)

    def _on_session(self) -> None:
        s = self.controller.session
        self.refresh_actions()
        if s is None:
            self.setWindowTitle(TITLE)
            return
        self.slider.blockSignals(True)
        self.slider.setRange(0, s.n_slices - 1)
        self.slider.setValue(self.controller.current_slice)
        self.slider.blockSignals(False)
        self._on_slice(self.controller.current_slice)
        for p in PRESETS:
            self.tool_panel.set_preset_enabled(p.key, self.viewer.preset_applies(p))
        self.tool_panel.set_pixel_spacing(s.volume.spacing[1] if s.volume.spacing else None)
        self.tool_panel.set_intensity_unit("HU" if s.volume.intensity == "hu" else "")
        self._update_title()

    def _on_slice(self, index: int) -> None:
        s = self.controller.session
        if s is not None:
            self.slice_label.setText(f"{index + 1} / {s.n_slices}")
            self.viewer.on_hover(*self.controller.hover_pixel)  # the read-out shows the new slice's pixel
        if self.slider.value() != index:
            self.slider.blockSignals(True)
            self.slider.setValue(index)
            self.slider.blockSignals(False)

    def accept_ai_all(self) -> None:
        """Shift+I: ask first when the AI mask would overwrite slices corrected by hand."""
        overwritten = self.controller.corrected_slices_ai_would_change()
        keep = False
        if overwritten:
            answer = self.prompts.keep_overwrite_cancel(len(overwritten))
            if answer == CANCEL:
                return
            keep = answer == KEEP
        self.controller.accept_ai_all(keep_corrected=keep)

    def pick_threshold(self) -> None:
        picked = self.controller.range_under_cursor(self.tool_panel.tolerance.value())
        if picked is None:
            self.statusBar().showMessage("Point at a pixel of the image to pick its intensity range", 6000)
            return
        self.tool_panel.set_threshold_range(picked)

    def _update_title(self) -> None:
        s = self.controller.session
        if s is None:
            self.setWindowTitle(TITLE)
            return
        star = "*" if s.editor.modified else ""
        self.setWindowTitle(f"{s.volume.name}{star} — heartseg")

    def _update_history_actions(self) -> None:
        e = self.controller.editor
        self.actions.show_history(e.undo_label if e else "", e.redo_label if e else "")
        self.refresh_actions()
        self._update_title()

    def window_state(self) -> WindowState:
        """What :class:`ActionPolicy` decides from, read from the controller and the retraining manager."""
        s, e = self.controller.session, self.controller.editor
        return WindowState(session_open=s is not None, read_only_reason=s.read_only_reason if s else "",
                           retraining=self.retraining is not None and self.retraining.manager.running,
                           can_undo=bool(e and e.can_undo), can_redo=bool(e and e.can_redo),
                           scan_kind=s.volume.kind if s else "")

    def refresh_actions(self, *_args) -> None:
        """Enable every action as the policy says for the state now (the only place actions are enabled)."""
        self.actions.apply(self.policy.decide(self.window_state(), self.actions.by_name))

    def _on_read_only(self, reason: str) -> None:
        if reason:
            self.set_tool(NAVIGATE)
        self.refresh_actions()

    def _on_model(self, name: str) -> None:
        self.status_model.setText(f"Model: {name}" if name else "Model: none")

    def _on_dataset(self, dataset) -> None:
        if dataset is None:
            self.patients_dock.setVisible(False)
            return
        self.patient_list.set_patients(dataset.patients)
        self.patients_dock.setVisible(True)

    def _update_patient_review(self) -> None:
        """The open patient's row in the Patients dock shows its review states as they are now."""
        c = self.controller
        if c.dataset is None or c.session is None or not c.patient_id:
            return
        self.patient_list.set_review(c.patient_id, dict(Counter(c.session.editor.review_states)))

    def _show_interpolated(self, *_args) -> None:
        e = self.controller.editor
        if e is not None:
            self.measurements.show_interpolated(e.interpolated_slices, self.controller.current_slice)

    def fill_recent(self, paths: list) -> None:
        self.recent_menu.clear()
        for p in paths:
            self.recent_menu.addAction(str(p), lambda path=p: self.files.open_path(path))
        self.recent_menu.setEnabled(bool(paths))

    def show_shortcuts(self) -> ShortcutsDialog:
        dialog = ShortcutsDialog(self.actions.shortcut_rows(), self)
        dialog.open()
        return dialog

    def show_about(self) -> None:
        QMessageBox.about(self, "About heartseg",
                          "heartseg: review and correct AI heart segmentations on CT.\n"
                          "Not a medical device: every mask must be checked by a qualified reader.")

    # --- drag and drop -----------------------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            event.acceptProposedAction()
            self.files.open_path(urls[0])

    # --- settings and closing ------------------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        geometry, state = self.settings.geometry, self.settings.window_state
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        if state is not None:
            self.restoreState(state)
        self.actions.full_precision.setChecked(self.settings.full_precision)  # toggled -> controller.set_precision
        radius = self.settings.brush_radius
        if radius is not None:
            self.tool_panel.set_radius(radius)
        self.slice_view.set_brush_radius(self.tool_panel.radius_px())

    def save_settings(self) -> None:
        self.settings.save_window(self.saveGeometry(), self.saveState())
        self.settings.brush_radius = self.tool_panel.radius.value()
        self.settings.full_precision = self.actions.full_precision.isChecked()
        self.settings.sync()

    def closeEvent(self, event) -> None:
        if not self.files.maybe_keep_changes("Quit"):
            event.ignore()
            return
        self.safety.shutdown()  # releases the edit lock; keeps the journal only for edits not saved/discarded
        self.controller.shutdown()
        self.save_settings()
        event.accept()

    def open_path(self, path: str | Path, mask_path: str | Path | None = None) -> bool:
        return self.files.open_path(path, mask_path)
