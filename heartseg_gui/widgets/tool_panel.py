"""Tool panel: navigate / brush / eraser, brush size, threshold-limited brush, window presets, slice tools, 3-D
clean-up and review buttons.

Buttons are bound to the window's ``QAction`` objects, so the panel, the menus and the shortcuts stay in step. The
brush size is set in millimetres when the scan's pixel spacing is known (pixels otherwise); the panel always
emits the radius in pixels (:attr:`ToolPanel.radiusChanged`), which is what the view and the editor use.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

MIN_RADIUS, MAX_RADIUS = 1, 60
#: the step of Shift+[ / Shift+] (in the slider's unit, mm or px)
BIG_STEP = 5
#: the smallest radius in pixels the editor accepts
MIN_RADIUS_PX = 0.5


def _button(action) -> QToolButton:
    b = QToolButton()
    b.setDefaultAction(action)
    b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    return b


def _grid_of(title: str, actions, columns: int = 2) -> QGroupBox:
    box = QGroupBox(title)
    grid = QGridLayout(box)
    grid.setContentsMargins(4, 4, 4, 4)
    for i, action in enumerate(actions):
        grid.addWidget(_button(action), i // columns, i % columns)
    return box


def _spin(low: float, high: float, value: float, decimals: int = 0, step: float = 1.0) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    box.setKeyboardTracking(False)
    return box


class ToolPanel(QWidget):
    radiusChanged = Signal(float)        # brush radius in pixels
    presetChosen = Signal(str)
    thresholdChanged = Signal(object)    # (low, high) in the volume's units, or None when the limit is off

    def __init__(self, actions, presets, parent=None):
        super().__init__(parent)
        self._mm_per_px: Optional[float] = None
        self._threshold_action = actions.threshold_brush
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(_grid_of("Tool", [actions.tool_navigate, actions.tool_brush, actions.tool_eraser], 3))

        radius_box = QGroupBox("Brush radius")
        grid = QGridLayout(radius_box)
        grid.setContentsMargins(4, 4, 4, 4)
        self.radius = QSlider(Qt.Orientation.Horizontal)
        self.radius.setRange(MIN_RADIUS, MAX_RADIUS)
        self.radius.setValue(5)
        self.radius_label = QLabel("5 px")
        self.radius.valueChanged.connect(self._radius_changed)
        grid.addWidget(self.radius, 0, 0)
        grid.addWidget(self.radius_label, 0, 1)
        layout.addWidget(radius_box)

        limit_box = QGroupBox("Threshold-limited brush")
        grid = QGridLayout(limit_box)
        grid.setContentsMargins(4, 4, 4, 4)
        self.low = _spin(-4000, 70000, 100)
        self.high = _spin(-4000, 70000, 600)
        self.tolerance = _spin(0, 5000, 100)
        self.range_unit = QLabel("")
        grid.addWidget(_button(actions.threshold_brush), 0, 0, 1, 2)
        grid.addWidget(_button(actions.pick_threshold), 0, 2, 1, 2)
        grid.addWidget(QLabel("from"), 1, 0)
        grid.addWidget(self.low, 1, 1)
        grid.addWidget(QLabel("to"), 1, 2)
        grid.addWidget(self.high, 1, 3)
        grid.addWidget(QLabel("± pick"), 2, 0)
        grid.addWidget(self.tolerance, 2, 1)
        grid.addWidget(self.range_unit, 2, 2, 1, 2)
        for w in (self.low, self.high):
            w.valueChanged.connect(self._emit_threshold)
        actions.threshold_brush.toggled.connect(self._emit_threshold)
        layout.addWidget(limit_box)

        wl_box = QGroupBox("Window / level")
        grid = QGridLayout(wl_box)
        grid.setContentsMargins(4, 4, 4, 4)
        self.preset = QComboBox()
        for key, label in presets:
            self.preset.addItem(label, key)
        self.preset.activated.connect(lambda i: self.presetChosen.emit(self.preset.itemData(i)))
        self.levels_label = QLabel("")
        grid.addWidget(self.preset, 0, 0)
        grid.addWidget(self.levels_label, 1, 0)
        layout.addWidget(wl_box)

        layout.addWidget(_grid_of("Slice tools", [actions.accept_ai_slice, actions.accept_ai_all,
                                                  actions.clear_slice, actions.fill_holes,
                                                  actions.keep_largest, actions.copy_previous,
                                                  actions.copy_next, actions.fill_between]))
        clean = _grid_of("3-D clean-up", [actions.smooth_mask, actions.remove_islands, actions.keep_largest_3d])
        grid = clean.layout()
        self.cleanup_radius = _spin(0.5, 20, 2.0, decimals=1, step=0.5)
        self.cleanup_unit = QLabel("mm")
        self.island_voxels = QSpinBox()
        self.island_voxels.setRange(1, 10 ** 7)
        self.island_voxels.setValue(500)
        grid.addWidget(QLabel("radius"), 2, 0)
        grid.addWidget(self.cleanup_radius, 2, 1)
        grid.addWidget(self.cleanup_unit, 2, 2)
        grid.addWidget(QLabel("islands <"), 3, 0)
        grid.addWidget(self.island_voxels, 3, 1)
        grid.addWidget(QLabel("voxels"), 3, 2)
        layout.addWidget(clean)
        layout.addWidget(_grid_of("Review", [actions.review_accept, actions.review_flag,
                                             actions.review_reset, actions.next_unreviewed]))
        layout.addStretch(1)

    # --- brush size ---------------------------------------------------------------------------------------------
    @property
    def unit(self) -> str:
        return "px" if self._mm_per_px is None else "mm"

    def set_pixel_spacing(self, mm_per_px: Optional[float]) -> None:
        """The open scan's in-plane pixel size in mm (None: unknown, sizes are in pixels)."""
        self._mm_per_px = None if not mm_per_px else float(mm_per_px)
        self.cleanup_unit.setText(self.unit)
        self._radius_changed(self.radius.value())

    def radius_px(self) -> float:
        """The brush radius in pixels for the slider's value (mm converted with the pixel spacing)."""
        value = float(self.radius.value())
        if self._mm_per_px is None:
            return value
        return max(MIN_RADIUS_PX, value / self._mm_per_px)

    def _radius_changed(self, value: int) -> None:
        if self._mm_per_px is None:
            self.radius_label.setText(f"{value} px")
        else:
            self.radius_label.setText(f"{value} mm ({self.radius_px():.1f} px)")
        self.radiusChanged.emit(self.radius_px())

    def set_radius(self, value: int) -> None:
        self.radius.setValue(max(MIN_RADIUS, min(MAX_RADIUS, int(value))))

    def step_radius(self, steps: int) -> None:
        """Change the radius by ``steps`` of the slider's unit (mm or px)."""
        self.set_radius(self.radius.value() + int(steps))

    # --- threshold-limited brush ------------------------------------------------------------------------------
    def threshold_range(self) -> Optional[tuple[float, float]]:
        """``(low, high)`` while the limit is on, else None."""
        if not self._threshold_action.isChecked():
            return None
        low, high = self.low.value(), self.high.value()
        return (min(low, high), max(low, high))

    def set_threshold_range(self, value_range: tuple[float, float]) -> None:
        """Show a range (e.g. picked under the cursor) and switch the limit on."""
        for w, v in zip((self.low, self.high), value_range):
            w.blockSignals(True)
            w.setValue(float(v))
            w.blockSignals(False)
        if self._threshold_action.isChecked():
            self._emit_threshold()
        else:
            self._threshold_action.setChecked(True)   # toggled -> _emit_threshold

    def set_intensity_unit(self, unit: str) -> None:
        """"HU" for CT, "" for PNG values (0..255)."""
        self.range_unit.setText(unit)

    def _emit_threshold(self, *_args) -> None:
        self.thresholdChanged.emit(self.threshold_range())

    # --- window / level -----------------------------------------------------------------------------------------
    def set_preset_enabled(self, key: str, enabled: bool) -> None:
        i = self.preset.findData(key)
        item = self.preset.model().item(i)
        if item is not None:
            item.setEnabled(enabled)

    def show_preset(self, key: str | None) -> None:
        i = self.preset.findData(key) if key else -1
        if i < 0:
            i = self.preset.findData("custom")
        if i >= 0:
            self.preset.setCurrentIndex(i)

    def show_levels(self, levels, unit: str) -> None:
        low, high = levels
        self.levels_label.setText(f"W {high - low:.0f} / L {(low + high) / 2:.0f} {unit}".rstrip())
