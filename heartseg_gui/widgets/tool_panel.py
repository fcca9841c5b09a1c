"""Tool panel: navigate / brush / eraser, brush radius, window presets, slice tools and review buttons.

Buttons are bound to the window's ``QAction`` objects, so the panel, the menus and the shortcuts stay in step.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QSizePolicy,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

MIN_RADIUS, MAX_RADIUS = 1, 60


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


class ToolPanel(QWidget):
    radiusChanged = Signal(int)
    presetChosen = Signal(str)

    def __init__(self, actions, presets, parent=None):
        super().__init__(parent)
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
                                                  actions.copy_next]))
        layout.addWidget(_grid_of("Review", [actions.review_accept, actions.review_flag,
                                             actions.review_reset, actions.next_unreviewed]))
        layout.addStretch(1)

    def _radius_changed(self, value: int) -> None:
        self.radius_label.setText(f"{value} px")
        self.radiusChanged.emit(value)

    def set_radius(self, value: int) -> None:
        self.radius.setValue(max(MIN_RADIUS, min(MAX_RADIUS, int(value))))

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
