"""Compare mode: three linked panels side by side — image | dataset mask | predicted mask (the seed's figure)."""

from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from heartseg_gui.views.slice_view import SliceView

PANELS = (("image", "Image"), ("dataset", "Dataset mask"), ("ai", "Predicted mask"))


class CompareView(QWidget):
    sliceStepRequested = Signal(int)
    hovered = Signal(int, int)

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.panels: dict[str, SliceView] = {}
        self.titles: dict[str, QLabel] = {}
        first: Optional[SliceView] = None
        for key, title in PANELS:
            box = QVBoxLayout()
            label = QLabel(title)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            view = SliceView(interactive=False)
            for layer in view.layers.values():
                layer.set_outline(False)
            box.addWidget(label)
            box.addWidget(view, 1)
            layout.addLayout(box, 1)
            view.sliceStepRequested.connect(self.sliceStepRequested)
            view.hovered.connect(self.hovered)
            if first is None:
                first = view
            else:
                view.viewbox.setXLink(first.viewbox)
                view.viewbox.setYLink(first.viewbox)
            self.panels[key] = view
            self.titles[key] = label

    def set_image(self, pixels: np.ndarray, levels) -> None:
        for view in self.panels.values():
            view.set_image(pixels, levels)

    def set_levels(self, levels) -> None:
        for view in self.panels.values():
            view.set_levels(levels)

    def set_pixel_aspect(self, aspect: float) -> None:
        for view in self.panels.values():
            view.set_pixel_aspect(aspect)

    def set_masks(self, dataset_mask: Optional[np.ndarray], ai_mask: Optional[np.ndarray]) -> None:
        for key, view in self.panels.items():
            view.set_layer_mask("dataset", dataset_mask if key == "dataset" else None)
            view.set_layer_mask("ai", ai_mask if key == "ai" else None)
            view.set_layer_mask("working", None)

    def set_titles(self, dataset_title: str, ai_title: str) -> None:
        self.titles["dataset"].setText(dataset_title)
        self.titles["ai"].setText(ai_title)

    def clear(self) -> None:
        for view in self.panels.values():
            view.clear()
