"""Layer panel: show/hide each mask layer, fill or outline, opacity."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout, QLabel, QSlider, QWidget

from heartseg_gui.display import LAYERS


def _swatch(rgb) -> QIcon:
    pix = QPixmap(12, 12)
    pix.fill(QColor(*rgb))
    return QIcon(pix)


class LayerPanel(QWidget):
    visibilityChanged = Signal(str, bool)   # layer key, visible
    outlineChanged = Signal(str, bool)      # layer key, outline (False: filled)
    opacityChanged = Signal(float)          # 0..1, all layers

    def __init__(self, parent=None):
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 6, 6, 6)
        self.checks: dict[str, QCheckBox] = {}
        self.modes: dict[str, QComboBox] = {}
        for row, style in enumerate(LAYERS):
            check = QCheckBox(f"{style.label}  ({style.shortcut})")
            check.setIcon(_swatch(style.rgb))
            check.setChecked(True)
            check.toggled.connect(lambda on, k=style.key: self.visibilityChanged.emit(k, on))
            mode = QComboBox()
            mode.addItems(["Fill", "Outline"])
            mode.setCurrentIndex(0 if style.key == "working" else 1)
            mode.currentIndexChanged.connect(lambda i, k=style.key: self.outlineChanged.emit(k, i == 1))
            grid.addWidget(check, row, 0)
            grid.addWidget(mode, row, 1)
            self.checks[style.key] = check
            self.modes[style.key] = mode
        grid.addWidget(QLabel("Opacity"), len(LAYERS), 0)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(55)
        self.opacity.valueChanged.connect(lambda v: self.opacityChanged.emit(v / 100.0))
        grid.addWidget(self.opacity, len(LAYERS), 1)
        grid.setRowStretch(len(LAYERS) + 1, 1)

    def toggle(self, key: str) -> None:
        self.checks[key].toggle()

    def toggle_fill_outline(self) -> None:
        """Switch every layer to outline if any is filled, else all to fill."""
        to_outline = any(m.currentIndex() == 0 for m in self.modes.values())
        for m in self.modes.values():
            m.setCurrentIndex(1 if to_outline else 0)

    def set_layer_available(self, key: str, available: bool, why: str = "") -> None:
        self.checks[key].setEnabled(available)
        self.checks[key].setToolTip("" if available else why)

    def opacity_value(self) -> float:
        return self.opacity.value() / 100.0
