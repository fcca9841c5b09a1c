"""Keeps the views in step with the controller: the slice on screen, its layers, levels and measurements.

No data logic: it reads the open :class:`~heartseg_gui.state.session.ScanSession` and pushes copies into the views.
While painting only the changed region of the working layer is repainted; measurements are recomputed on a short
timer so a stroke never waits for a whole-scan Dice. The coronal and sagittal planes and the crosshair are
:attr:`planes` (:class:`~heartseg_gui.controllers.planes.PlaneViewer`, set by ``install_planes``), told of every
change here.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QObject, Signal
from superqt.utils import qdebounced

from heartseg_gui import display
from heartseg_gui.controllers.controller import LOAD, Controller
from heartseg_gui.controllers.editing import NOT_REVIEWED
from heartseg_gui.display import PRESETS, WindowPreset


class Viewer(QObject):
    levelsChanged = Signal(float, float)
    sliceText = Signal(str)
    pixelText = Signal(str)

    def __init__(self, controller: Controller, slice_view, compare_view, measurements, layer_panel,
                 parent: Optional[QObject] = None):
        super().__init__(parent)
        self.c = controller
        self.view = slice_view
        self.compare = compare_view
        self.measurements = measurements
        self.layer_panel = layer_panel
        self.levels: tuple[float, float] = (0.0, 255.0)
        self.preset_key: Optional[str] = None
        self.compare_mode = False
        self.planes = None   # the PlaneViewer (coronal, sagittal, crosshair), once installed
        controller.sessionChanged.connect(self.on_session)
        controller.sliceChanged.connect(self.show_slice)
        controller.maskChanged.connect(self.on_mask_changed)
        controller.predictionChanged.connect(self.on_prediction)
        controller.reviewChanged.connect(self._schedule_measurements)
        controller.previewReady.connect(self.show_preview)
        controller.jobFinished.connect(self._on_job_finished)
        slice_view.hovered.connect(self.on_hover)
        compare_view.hovered.connect(self.on_hover)
        slice_view.windowLevelDragged.connect(self.drag_levels)
        for view in compare_view.panels.values():
            view.windowLevelDragged.connect(self.drag_levels)

    # --- whole scan -----------------------------------------------------------------------------------------------
    def on_session(self) -> None:
        s = self.c.session
        if s is None:
            self.view.clear()
            self.compare.clear()
            self.measurements.clear()
            return
        v = s.volume
        self.preset_key = "mediastinum" if v.intensity == "hu" else "kaggle"
        self.levels = display.default_levels(v.intensity, s.value_range)
        self.view.set_pixel_aspect(s.pixel_aspect())
        self.compare.set_pixel_aspect(s.pixel_aspect())
        self.view.set_image(v.voxels[self.c.current_slice], self.levels)
        self.view.reset_zoom()
        self.layer_panel.set_layer_available("dataset", s.has_dataset_mask, "this scan has no mask of its own")
        self.compare.set_titles("Dataset mask" if s.has_dataset_mask else "Dataset mask (none)", "Predicted mask")
        if self.planes is not None:
            self.planes.on_session()
        self.levelsChanged.emit(*self.levels)

    def show_preview(self, preview) -> None:
        """The middle slice of a DICOM series still being read (:class:`core.types.SlicePreview`), while no scan
        is open: image only, in the levels the scan will open with; :meth:`on_session` replaces it."""
        if self.c.session is not None:
            return
        image = preview.image
        self.levels = display.default_levels(preview.intensity, (float(image.min()), float(image.max())))
        self.view.set_pixel_aspect(preview.pixel_aspect)
        self.view.set_image(image, self.levels)
        self.view.reset_zoom()
        self.levelsChanged.emit(*self.levels)
        self.sliceText.emit(f"Slice {preview.index + 1} / {preview.n_slices}  ({preview.name}: preview, reading "
                            "the other slices…)")

    def _on_job_finished(self, kind: str, outcome: str, _message: str) -> None:
        if kind == LOAD and outcome != "returned" and self.c.session is None:  # a preview of an open that failed
            self.view.clear()
            self.sliceText.emit("")

    def preset_applies(self, preset: WindowPreset) -> bool:
        s = self.c.session
        return s is not None and display.preset_applies(preset, s.volume.intensity)

    def apply_preset(self, key: str) -> None:
        s = self.c.session
        if s is None:
            return
        preset = next((p for p in PRESETS if p.key == key), None)
        if preset is None:
            return
        if key == "kaggle":
            levels = display.kaggle_levels_for(s.volume.intensity, s.value_range)
        elif not display.preset_applies(preset, s.volume.intensity):
            self.c.show_status(f"{preset.label} needs Hounsfield units; this scan is "
                                      f"{s.volume.intensity}")
            return
        else:
            levels = preset.levels
        self.preset_key = key
        self.set_levels(levels)

    def set_levels(self, levels: tuple[float, float]) -> None:
        self.levels = (float(levels[0]), float(levels[1]))
        self.view.set_levels(self.levels)
        self.compare.set_levels(self.levels)
        if self.planes is not None:
            self.planes.set_levels(self.levels)
        self.levelsChanged.emit(*self.levels)

    def drag_levels(self, dx: float, dy: float) -> None:
        """Right-drag: horizontal widens the window, vertical raises the level, scaled to the window width."""
        if self.c.session is None:
            return
        width = self.levels[1] - self.levels[0]
        step = max(width, 50.0) / 300.0
        self.preset_key = None
        self.set_levels(display.adjust_window(self.levels, dx * step, dy * step))

    # --- one slice --------------------------------------------------------------------------------------------------
    def show_slice(self, index: int) -> None:
        s = self.c.session
        if s is None:
            return
        pixels = s.volume.voxels[index]
        self.view.set_image(pixels, self.levels)
        self.view.set_layer_mask("working", s.editor.slice_mask(index))
        self.view.set_layer_mask("ai", s.ai_mask[index] if s.ai_done[index] else None)
        self.view.set_layer_mask("dataset", s.dataset_mask[index] if s.has_dataset_mask else None)
        if self.compare_mode:
            self._show_compare(index)
        if self.planes is not None:
            self.planes.on_slice(index)
        self.sliceText.emit(self._slice_text(index))
        self._schedule_measurements()

    def _show_compare(self, index: int) -> None:
        s = self.c.session
        self.compare.set_image(s.volume.voxels[index], self.levels)
        self.compare.set_masks(s.dataset_mask[index] if s.has_dataset_mask else None,
                               s.ai_mask[index] if s.ai_done[index] else None)

    def set_compare_mode(self, on: bool) -> None:
        self.compare_mode = bool(on)
        if on and self.c.session is not None:
            self._show_compare(self.c.current_slice)

    def _slice_text(self, index: int) -> str:
        s = self.c.session
        name = s.volume.slice_names[index] if index < len(s.volume.slice_names) else ""
        state = s.editor.review_state(index).replace("_", " ")
        notes = self.planes.geometry_notes() if self.planes is not None else ""
        return f"Slice {index + 1} / {s.n_slices}  ({name}, {state})" + (f"  — {notes}" if notes else "")

    def on_mask_changed(self, regions) -> None:
        s = self.c.session
        if s is None:
            return
        i = self.c.current_slice
        if regions is None:
            self.view.set_layer_mask("working", s.editor.slice_mask(i))
        else:
            items = regions if isinstance(regions, (list, tuple)) else [regions]
            current = s.editor.slice_mask(i)
            for r in items:
                if r is not None and r.slice_index == i:
                    self.view.update_layer_region("working", current, r.row0, r.row1, r.col0, r.col1)
        if self.planes is not None:
            self.planes.on_mask_changed(regions)
        self.sliceText.emit(self._slice_text(i))
        self._schedule_measurements()

    def on_prediction(self, indices) -> None:
        s = self.c.session
        if s is None:
            return
        i = self.c.current_slice
        if i in set(indices):
            self.view.set_layer_mask("ai", s.ai_mask[i] if s.ai_done[i] else None)
            if self.compare_mode:
                self._show_compare(i)
        if self.planes is not None:
            self.planes.on_prediction(indices)
        self._schedule_measurements()

    # --- measurements and status ---------------------------------------------------------------------------------
    @qdebounced(timeout=120)
    def _schedule_measurements(self, *_args) -> None:
        """Measurements 120 ms after the last change (superqt's ``qdebounced``): a stroke never waits for them."""
        self.update_measurements()

    def update_measurements(self) -> None:
        s = self.c.session
        if s is None:
            self.measurements.clear()
            return
        i = self.c.current_slice
        states = s.editor.review_states
        reviewed = sum(1 for state in states if state != NOT_REVIEWED)
        self.measurements.show_values(area=s.slice_area(i), volume_ml=s.mask_volume_ml(), voxels=s.mask_voxels(),
                                      dice_slice=s.dice_slice(i), dice_scan=s.dice_scan(),
                                      reviewed=(reviewed, len(states)))
        self.sliceText.emit(self._slice_text(i))

    def on_hover(self, row: int, col: int) -> None:
        s = self.c.session
        if s is None or row < 0:   # off the image: the crosshair's voxel where the planes are shown
            self.pixelText.emit(self.planes.crosshair_text() if self.planes is not None else "")
            return
        info = s.pixel_info(self.c.current_slice, row, col)
        if info is None:
            self.pixelText.emit("")
            return
        text = f"row {row}, col {col}: {display.format_value(info.value, s.volume.intensity)}"
        if info.position_mm is not None:
            x, y, z = info.position_mm
            text += f"  ({x:.1f}, {y:.1f}, {z:.1f}) mm"
        self.pixelText.emit(text)
